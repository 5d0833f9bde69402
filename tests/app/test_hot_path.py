"""The rater's hot path: a bounded number of statements, and claims that do not grow with N."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.models import utcnow
from app.services import assignment as assignment_service
from app.services.assignment import CLAIM_WINDOW, next_assignment
from tests.factories import make_campaign, make_comparisons, make_user
from tests.web import HTML, HX, form_of, login

BUDGET = 2  # statements for one judgment and the next comparison's page (app.web.turn)


class Statements:
    """The SQL a connection sends while in use (savepoints of the test's rollback wrapper aside)."""

    def __init__(self, connection: Any) -> None:
        self.connection, self.sent = connection, []

    def _record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK TO")):
            self.sent.append((statement, parameters))

    def __enter__(self) -> Statements:
        event.listen(self.connection, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.connection, "before_cursor_execute", self._record)


def test_a_judgment_and_the_next_page_take_at_most_two_statements(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = make_campaign(db, overlap=3, guidelines_md="**Safety** first")
    make_comparisons(db, campaign, count=5)
    rater = make_user(db)
    login(client, rater.email)
    fields = form_of(client.get("/rate", headers=HTML).text)
    # Expired leases are released every few seconds, not per judgment: not this time.
    monkeypatch.setattr(assignment_service, "_released_at", [time.monotonic()])
    with Statements(db.connection()) as statements:
        response = client.post("/rate/submit", headers=HX, data={
            **fields, "scale": "-2", "time_spent_ms": "4000", "rationale": "",
            "not_rankable_reason": ""})
    assert response.status_code == 200 and "assignment_id" in response.text
    assert form_of(response.text)["assignment_id"] != fields["assignment_id"]
    sent = [statement for statement, _ in statements.sent]
    assert len(sent) <= BUDGET, "\n\n".join(sent)


def _bulk_comparisons(db: Session, campaign_id: int, count: int) -> None:
    """`count` 2-way comparisons in four statements (what the ORM would take minutes for)."""
    params = {"campaign": campaign_id, "n": count}
    db.execute(text(
        "INSERT INTO prompts (campaign_id, external_id, text, html, context, created_at)"
        " SELECT :campaign, 'bulk-' || g, 'question ' || g, '<p>question ' || g || '</p>', '{}',"
        " now() FROM generate_series(1, :n) g"), params)
    db.execute(text(
        "INSERT INTO responses (prompt_id, text, html, model_label, created_at)"
        " SELECT p.id, 'answer ' || k, '<p>answer ' || k || '</p>', 'm' || k, now()"
        " FROM prompts p CROSS JOIN generate_series(0, 1) k WHERE p.campaign_id = :campaign"),
        params)
    db.execute(text(
        "INSERT INTO comparisons (campaign_id, prompt_id, is_gold, priority, created_at)"
        " SELECT :campaign, id, false, 0, now() FROM prompts WHERE campaign_id = :campaign"),
        params)
    db.execute(text(
        "INSERT INTO comparison_items (comparison_id, position, response_id)"
        " SELECT c.id, row_number() OVER (PARTITION BY c.id ORDER BY r.id) - 1, r.id"
        " FROM comparisons c JOIN responses r ON r.prompt_id = c.prompt_id"
        " WHERE c.campaign_id = :campaign"), params)
    db.execute(text("ANALYZE"))


def _rows_touched(plan: dict[str, Any]) -> int:
    """Rows every node of an EXPLAIN ANALYZE plan produced or read and dropped, over all its loops."""
    read = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
    own = int(read * plan.get("Actual Loops", 1))
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "comparisons":
        own += 10**9  # a scan of every comparison is what the claim must never do
    return own + sum(_rows_touched(child) for child in plan.get("Plans", []))


def _explained(db: Session, statement: str, parameters: Any = None) -> Any:
    """EXPLAIN ANALYZE's plan of `statement`, run and then undone (the claim inserts a lease)."""
    savepoint = db.begin_nested()
    plan = db.connection().exec_driver_sql(
        "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar()
    savepoint.rollback()
    return plan


def test_claiming_reads_a_bounded_number_of_rows_among_twenty_thousand(db: Session) -> None:
    campaign = make_campaign(db, overlap=3)
    _bulk_comparisons(db, campaign.id, 20_000)
    raters = [make_user(db) for _ in range(5)]
    for rater in raters[:4]:  # some work in flight and done, so the order has something to do
        assert next_assignment(db, rater=rater) is not None
    with Statements(db.connection()) as statements:
        assert next_assignment(db, rater=raters[4]) is not None
    [(claim, parameters)] = [s for s in statements.sent if "FOR NO KEY UPDATE" in s[0]]
    # Explained in the same transaction (its own lock does not make it skip the row), over
    # the data the claim saw; the plan must not have read more than a few index entries.
    plan = _explained(db, claim, parameters)
    assert 0 < _rows_touched(plan[0]["Plan"]) < 200, plan


def test_a_rater_alone_claims_in_bounded_rows_whatever_their_history(db: Session) -> None:
    # Alone, a rater's done comparisons stay open (others have not filled them) and sit at the
    # front of the claim order; the claim used to skip them one by one.
    campaign = make_campaign(db, overlap=3)
    _bulk_comparisons(db, campaign.id, 2_000)
    rater, later = make_user(db), make_user(db)
    history = 40 * CLAIM_WINDOW
    db.execute(text(
        "INSERT INTO assignments (comparison_id, rater_id, state, display_order,"
        " lease_expires_at, completed_at, created_at)"
        " SELECT id, :rater, 'submitted', '[0, 1]', now(), now(), now() FROM comparisons"
        " WHERE campaign_id = :campaign ORDER BY id LIMIT :history"),
        {"rater": rater.id, "campaign": campaign.id, "history": history})
    db.execute(text("ANALYZE"))
    with Statements(db.connection()) as statements:
        assignment = next_assignment(db, rater=rater)
    assert assignment is not None and assignment.comparison.open_places == 2  # a fresh one
    [(claim, parameters)] = [s for s in statements.sent if "comparison_items" in s[0]]
    plan = _explained(db, claim, parameters)
    # A few rows for each comparison in the claim's window, none for the rater's history.
    assert 0 < _rows_touched(plan[0]["Plan"]) < 8 * CLAIM_WINDOW < history, plan
    # Another rater still gets the comparisons closest to completion first.
    other = next_assignment(db, rater=later)
    assert other is not None and other.comparison_id < assignment.comparison_id
    assert other.comparison.open_places == 1


def _prepared(db: Session, name: str, statement: Any, params: dict[str, Any]) -> str:
    """PREPARE `statement` as `name`, as psycopg does on a statement's fifth run; the EXECUTE."""
    from psycopg import sql

    dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
    expanded = statement.compile(dialect=dialect).construct_expanded_state(params)
    args = [expanded.parameters[key] for key in expanded.positiontup or ()]
    db.connection().exec_driver_sql(f"PREPARE {name} AS {expanded.statement}")
    raw = db.connection().connection.driver_connection
    literals = sql.SQL(", ").join(sql.Literal(getattr(a, "value", a)) for a in args)
    return sql.SQL("EXECUTE {}({})").format(sql.Identifier(name), literals).as_string(raw)


@pytest.mark.parametrize("after_a_judgment", [False, True])
def test_the_claims_one_generic_plan_reads_its_indexes(db: Session, after_a_judgment: bool) -> None:
    # psycopg prepares a statement on its fifth run, and PostgreSQL then keeps one generic plan
    # if it costs no more than planning afresh. With `open_places > $n` (a bound parameter) that
    # plan could not use the claim's partial indexes (`open_places > 0`): it read the whole
    # campaign, so every claim was planned again (1 ms, most of the database's time a judgment).
    campaign = make_campaign(db, overlap=3)
    _bulk_comparisons(db, campaign.id, 2_000)
    rater = make_user(db)
    db.execute(text("ANALYZE"))
    params = {"rater_id": rater.id, "campaign_id": campaign.id, "gold": False,
              "lease_expires_at": utcnow(), "created_at": utcnow()}
    statements = assignment_service._CLAIM
    if after_a_judgment:  # the claim every judgment's next page makes first
        statements, params["now"] = assignment_service._CLAIM_CONTINUING, utcnow()
    execute = _prepared(db, "claim", statements["postgresql"], params)
    db.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))
    plan = _explained(db, execute)
    db.connection().exec_driver_sql("DEALLOCATE claim")
    assert 0 < _rows_touched(plan[0]["Plan"]) < 8 * CLAIM_WINDOW, plan

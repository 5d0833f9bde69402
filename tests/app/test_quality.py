"""Quality figures against hand-computed values and the krippendorff package on the same data."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from unittest.mock import patch

import krippendorff
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli import cli
from app.models import Comparison, Judgment, User
from app.services.agreement import cohen_kappa, ordinal_alpha
from app.services.quality import Quality, compute_quality, fresh_quality, rebuild, refresh
from tests.factories import make_campaign, make_comparisons, make_judgment, make_raters, make_user
from tests.web import HTML, login


def _canonical(c: Comparison) -> list[int]:
    return [item.response_id for item in c.items]


def test_ordinal_alpha_matches_the_hand_computation_and_the_package(db: Session) -> None:
    # Two raters, two 3-way comparisons. Units are (comparison, response), values the ranks:
    # (0,0) (1,1) (2,2) | (0,0) (1,2) (2,1). Coincidences: o00=4, o11=2, o22=2, o12=o21=2, so
    # n0=n1=n2=4, n=12. Ordinal distances: d(0,1)=d(1,2)=(4+4-4)^2=16, d(0,2)=(12-4)^2=64.
    # Do = (2*16 + 2*16)/12 = 64/12; De = 2*(16*16 + 16*16 + 16*64)/(12*11) = 3072/132.
    # alpha = 1 - Do/De = 37/48.
    campaign = make_campaign(db)
    first, second = make_comparisons(db, campaign, count=2, k=3)
    a, b = make_raters(db, 2)
    make_judgment(db, first, a, ranks=[0, 1, 2])
    make_judgment(db, first, b, ranks=[0, 2, 1])
    make_judgment(db, second, a, ranks=[0, 1, 2])
    make_judgment(db, second, b, ranks=[0, 1, 2])
    q = fresh_quality(db, campaign_id=campaign.id)
    assert q.alpha.value == pytest.approx(37 / 48) and q.alpha.n == 2
    matrix = np.array([[0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 1, 2]], dtype=float)
    assert krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="ordinal"
    ) == pytest.approx(37 / 48)
    assert ordinal_alpha(matrix.tolist()) == pytest.approx(37 / 48)


def test_two_way_alpha_hand_computed_with_a_missing_rater() -> None:
    # Values 0/1 only (ordinal = nominal): units (0,0) (1,1) (0,0) (1,1) (0,1) (1,0), and a unit
    # one rater left blank (not pairable, ignored). o01 = o10 = 2, n0 = n1 = 6, n = 12:
    # alpha = 1 - (n-1)(o01+o10)/(2 n0 n1) = 1 - 11*4/72 = 7/18.
    matrix = [[0, 1, 0, 1, 0, 1, 1], [0, 1, 0, 1, 1, 0, None]]
    assert ordinal_alpha(matrix) == pytest.approx(7 / 18)
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    assert krippendorff.alpha(
        reliability_data=data, level_of_measurement="ordinal"
    ) == pytest.approx(7 / 18)
    assert ordinal_alpha([[0, 0], [0, None]]) is None  # one value everywhere: undefined


def test_cohen_kappa_hand_computed() -> None:
    # po = 3/4; pe = .5*.25 + .25*.5 + .25*.25 = .3125; kappa = (.75-.3125)/(1-.3125) = 7/11.
    assert cohen_kappa([-1, -1, 0, 1], [-1, 0, 0, 1]) == pytest.approx(7 / 11)
    assert cohen_kappa([1, 1], [1, 1]) is None


def test_majority_gold_position_ties_flags_and_time(db: Session) -> None:
    campaign = make_campaign(db)
    shared = make_comparisons(db, campaign)[0]
    gold = make_comparisons(db, campaign, gold=True)[0]
    a, b, c, d = make_raters(db, 4)
    for rater in (a, b, d):
        make_judgment(db, shared, rater, ranks=[0, 1])
    make_judgment(db, shared, c, ranks=[1, 0], flags={str(_canonical(shared)[0]): ["unsafe"]})
    right = list(gold.gold_ranks or [])
    make_judgment(db, gold, a, ranks=right)
    make_judgment(db, gold, b, ranks=[0, 0])  # a tie where the gold has an order: pair missed
    q = fresh_quality(db, campaign_id=campaign.id)
    # Each of a, b, d agrees with the other three's majority; c disagrees: 3/4 over 4 judgments.
    assert (q.majority.value, q.majority.n) == (pytest.approx(0.75), 4)
    assert q.raters[c.id].majority.value == 0 and q.raters[a.id].majority.value == 1
    assert (q.gold.value, q.gold.n) == (pytest.approx(0.5), 2)
    # First shown wins where there is one best: a, b, d on `shared` (c put it last), and a on gold
    # when the gold's best was shown first.
    first_best = 3 + int(right[0] == 0)
    assert (q.first_wins.value, q.first_wins.n) == (pytest.approx(first_best / 5), 5)
    assert q.first_wins_chance == pytest.approx(0.5)
    assert (q.ties.value, q.ties.n) == (pytest.approx(1 / 6), 6)
    assert (q.flags.value, q.flags.n) == (pytest.approx(1 / 6), 6)
    assert q.median_seconds.value == 1.0  # the factory records 1000 ms
    # Most disagreed first: gold (a's order vs b's tie, 0 of 1 rater pair agree), then shared
    # (a, b, d agree in their 3 pairs, c disagrees in its 3: 3/6).
    assert [(cid, f.value, f.n) for cid, f in q.disagreed] == [
        (gold.id, 0.0, 2),
        (shared.id, 0.5, 4),
    ]
    assert q.per_day and q.per_day[0][1] == 6


def test_kappa_needs_enough_shared_comparisons(db: Session) -> None:
    campaign = make_campaign(db)
    comparisons = make_comparisons(db, campaign, count=5)
    a, b = make_raters(db, 2)
    for i, comp in enumerate(comparisons):
        by_id = sorted(_canonical(comp))  # kappa labels each pair by response id order
        make_judgment(db, comp, a, ranks=[0, 1], shown_order=by_id)
        make_judgment(db, comp, b, ranks=[0, 1] if i < 4 else [1, 0], shown_order=by_id)
    q = fresh_quality(db, campaign_id=campaign.id)
    [(x, y, kappa)] = q.kappas
    # Labels a: five "first better"; b: four and one "second": po = .8, pe = .8 -> kappa 0.
    assert {x, y} == {a.id, b.id} and kappa.n == 5 and kappa.value == pytest.approx(0.0)


def test_the_quality_page_shows_each_figure_with_its_count_and_an_svg_chart(
    client: TestClient, db: Session
) -> None:
    campaign = make_campaign(db)
    first, second = make_comparisons(db, campaign, count=2, k=3)
    a, b = make_raters(db, 2)
    for comp, ranks in ((first, [0, 2, 1]), (second, [0, 1, 2])):
        make_judgment(db, comp, a, ranks=[0, 1, 2])
        make_judgment(db, comp, b, ranks=ranks)
    admin: User = make_user(db, role="admin")
    login(client, admin.email)
    page = client.get(f"/admin/quality?campaign_id={campaign.id}", headers=HTML).text
    assert '<b id="alpha">0.771 <span class="count">(n=2)</span>' in page
    assert "<svg" in page and "<script" not in page.split("<main>")[1]
    detail = client.get(f"/admin/quality/comparisons/{first.id}", headers=HTML)
    assert detail.status_code == 200 and detail.text.count("<b>1</b>") >= 2


def _figures(q: Quality) -> dict[str, object]:
    """Every number of a Quality, flattened, for comparing two ways of reaching it."""
    out: dict[str, object] = {"judgments": q.judgments, "rated": q.comparisons_rated,
                              "chance": q.first_wins_chance, "disagreed": q.disagreed,
                              "per_day": q.per_day, "kappas": q.kappas}  # fmt: skip
    for name in ("alpha", "pairwise", "majority", "gold", "first_wins", "ties", "flags",
                 "median_seconds"):  # fmt: skip
        out[name] = getattr(q, name)
    for rid, r in q.raters.items():
        out[f"rater {rid}"] = r
    return out


def _assert_same(kept: Quality, recounted: Quality) -> None:
    a, b = _figures(kept), _figures(recounted)
    assert a.keys() == b.keys()
    for key in a:
        assert repr(a[key]) == repr(b[key]) or _close(a[key], b[key]), key


def _close(x: object, y: object) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return x == pytest.approx(y, abs=1e-9)
    if hasattr(x, "__dataclass_fields__"):
        return all(_close(getattr(x, f), getattr(y, f)) for f in x.__dataclass_fields__)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(_close(p, q) for p, q in zip(x, y, strict=True))
    return x == y


def test_kept_tallies_equal_a_full_recount_after_every_step(db: Session) -> None:
    # Judgments arrive over days in small batches across two campaigns: ties, "none acceptable",
    # flags, gold, corrections that replace a judgment, varied times. After each batch the kept
    # tallies (read a few judgments at a time) must equal a recount from nothing.
    rng = random.Random(7)
    campaigns = [make_campaign(db), make_campaign(db)]
    comparisons = [c for camp in campaigns for c in make_comparisons(db, camp, count=6, k=3)]
    comparisons += make_comparisons(db, campaigns[0], count=3, k=2, gold=True)
    raters = make_raters(db, 6)
    start = datetime(2026, 11, 1, 9, tzinfo=UTC)
    made: dict[tuple[int, int], Judgment] = {}
    for step in range(6):
        for _ in range(9):
            comp, rater = rng.choice(comparisons), rng.choice(raters)
            k = len(comp.items)
            ranks = [rng.randint(0, k - 1) for _ in range(k)]
            flags = {str(comp.items[0].response_id): ["unsafe"]} if rng.random() < 0.2 else None
            judgment = make_judgment(
                db, comp, rater, ranks=ranks, flags=flags, not_rankable=rng.random() < 0.1,
                supersedes=made.get((comp.id, rater.id)),
                created_at=start + timedelta(days=step, minutes=rng.randint(0, 600)),
            )  # fmt: skip
            judgment.time_spent_ms = rng.choice([800, 4_250, 31_900, 65_000, 2_000_000])
            made[(comp.id, rater.id)] = judgment
        db.flush()
        while not refresh(db, limit=4, settle=timedelta(0)).caught_up:
            pass
        kept = {c.id: compute_quality(db, campaign_id=c.id) for c in campaigns}
        everything = compute_quality(db, campaign_id=None)
        rebuild(db)
        refresh(db, limit=10_000, settle=timedelta(0))
        for c in campaigns:
            _assert_same(kept[c.id], compute_quality(db, campaign_id=c.id))
        _assert_same(everything, compute_quality(db, campaign_id=None))
    assert everything.kappas and everything.alpha.value is not None


def test_the_kept_alpha_is_the_packages_alpha_on_the_same_judgments(db: Session) -> None:
    rng = random.Random(3)
    campaign = make_campaign(db)
    comparisons = make_comparisons(db, campaign, count=8, k=4)
    raters = make_raters(db, 4)
    rows = []
    for comp in comparisons:
        for rater in rng.sample(raters, rng.randint(1, 4)):
            ranks = [rng.randint(0, 3) for _ in range(4)]
            make_judgment(db, comp, rater, ranks=ranks)
            rows.append((comp, rater, ranks))
    q = fresh_quality(db, campaign_id=campaign.id)
    # The package's reliability matrix: raters x (comparison, response), ranks as values, over
    # comparisons that two raters or more ranked.
    rated_by: dict[int, int] = {}
    for comp, _, _ in rows:
        rated_by[comp.id] = rated_by.get(comp.id, 0) + 1
    units = [(c.id, pos) for c in comparisons if rated_by.get(c.id, 0) >= 2 for pos in range(4)]
    value = {(c.id, pos, r.id): rank for c, r, ranks in rows for pos, rank in enumerate(ranks)}
    matrix = np.array([[value.get((cid, pos, r.id), np.nan) for cid, pos in units] for r in raters],
                      dtype=float)  # fmt: skip
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert q.alpha.value == pytest.approx(expected) and q.alpha.n == len(units) // 4


def test_a_refresh_reads_only_the_judgments_since_the_last(db: Session) -> None:
    campaign = make_campaign(db)
    comparisons = make_comparisons(db, campaign, count=5)
    a, b = make_raters(db, 2)
    old = datetime(2026, 11, 1, tzinfo=UTC)
    for comp in comparisons:
        make_judgment(db, comp, a, created_at=old)
    assert refresh(db).read == 5
    assert refresh(db).read == 0  # settled judgments are counted once, not re-read per page
    for comp in comparisons[1:]:
        make_judgment(db, comp, b, created_at=old)
    first = refresh(db, limit=3)  # a page after a large import reads a batch, not everything
    assert (first.read, first.caught_up) == (3, False)
    assert refresh(db, limit=3).read == 1
    make_judgment(db, comparisons[0], b)  # just now: a lower id may still be uncommitted
    assert refresh(db).read == 1 and refresh(db).read == 1  # read again until it settles...
    assert fresh_quality(db, campaign_id=campaign.id).judgments == 10  # ...and counted once


def test_the_quality_page_says_when_it_is_still_counting(client: TestClient, db: Session) -> None:
    campaign = make_campaign(db)
    comparisons = make_comparisons(db, campaign, count=3)
    (rater,) = make_raters(db, 1)
    for comp in comparisons:
        make_judgment(db, comp, rater, created_at=datetime(2026, 11, 1, tzinfo=UTC))
    admin: User = make_user(db, role="admin")
    login(client, admin.email)
    with patch("app.services.quality.REFRESH_BATCH", 2):
        page = client.get("/admin/quality", headers=HTML).text
        assert "still counting" in page and "2 live judgments" in page
        page = client.get("/admin/quality", headers=HTML).text
    assert "still counting" not in page and "3 live judgments" in page


def test_prefloop_quality_refresh_catches_up_in_batches_and_rebuilds(
    committed_engine: Engine,
) -> None:
    old = datetime(2026, 11, 1, tzinfo=UTC)
    with Session(committed_engine) as session, session.begin():
        campaign = make_campaign(session)
        comparisons = make_comparisons(session, campaign, count=5)
        a, b = make_raters(session, 2)
        for comp in comparisons:
            make_judgment(session, comp, a, created_at=old)
            make_judgment(session, comp, b, ranks=[1, 0], created_at=old)
        campaign_id = campaign.id
    with patch("app.services.quality.REFRESH_BATCH", 3):
        result = CliRunner().invoke(cli, ["quality", "refresh"])
    assert result.exit_code == 0, result.output
    assert "counted 10 judgments" in result.output
    with Session(committed_engine) as session:
        q = compute_quality(session, campaign_id=campaign_id)
        assert (q.judgments, q.pairwise.value, q.pairwise.n) == (10, 0.0, 5)
    again = CliRunner().invoke(cli, ["quality", "refresh", "--rebuild"])
    assert again.exit_code == 0 and "counted 10 judgments" in again.output
    with Session(committed_engine) as session:
        assert compute_quality(session, campaign_id=campaign_id).judgments == 10

"""The two real preference sets import in their own formats: all or nothing, re-imports skipped."""

from __future__ import annotations

import gzip
import json
from itertools import islice
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import ImportRejected, NotFound
from app.models import Campaign, Comparison, Judgment, Prompt, User
from app.security import verify_password
from app.services.agreement import pair_agreement
from app.services.external_imports import import_finegrained, import_hh_rlhf
from app.services.users import is_external
from tests.factories import FG, HH, PASSWORD, make_campaign
from trainer.schema import FineGrainedQuestion, HHPair


def hh_lines(n: int, start: int = 0) -> list[str]:
    with gzip.open(HH, "rt", encoding="utf-8") as fh:
        return list(islice(fh, start, start + n))


def fg_items(n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(FG.read_text(encoding="utf-8"))
    return rows[:n]


def _count(db: Session, model: type, *where: object) -> int:
    return db.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _ranking_by_text(judgment: Judgment, db: Session) -> dict[str, int]:
    comparison = db.get_one(Comparison, judgment.comparison_id)
    text = {i.response_id: i.response.text for i in comparison.items}
    return {text[rid]: r for rid, r in zip(judgment.shown_order, judgment.ranks or [], strict=True)}


def test_hh_pairs_become_comparisons_with_the_crowdworkers_choice(db: Session) -> None:
    campaign = make_campaign(db)
    lines = hh_lines(40)
    report = import_hh_rlhf(db, campaign_id=campaign.id, lines=lines, seed=3)
    assert (report.created, report.judgments, report.skipped_existing) == (40, 40, [])
    assert report.rater == "ext-hh-rlhf"
    row = json.loads(lines[0])
    prompt = db.scalar(select(Prompt).where(Prompt.external_id == HHPair(**row).external_id()))
    assert prompt is not None
    # The prompt is the shared dialogue; the responses are the two different last turns.
    assert row["chosen"].startswith(prompt.text) and row["rejected"].startswith(prompt.text)
    assert prompt.text.endswith("\n\nAssistant:")
    judgment = db.scalar(
        select(Judgment).join(Comparison).where(Comparison.prompt_id == prompt.id)
    )
    assert judgment is not None
    ranking = _ranking_by_text(judgment, db)
    assert ranking == {row["chosen"][len(prompt.text):]: 0, row["rejected"][len(prompt.text):]: 1}


def test_hh_prompt_is_the_shared_prefix_even_when_a_response_quotes_a_turn(db: Session) -> None:
    # Line 992 of the shipped file: the chosen answer itself contains "Human: ... Assistant:".
    line = hh_lines(1, start=991)[0]
    row = json.loads(line)
    prompt, chosen, rejected = HHPair(**row).split() or ("", "", "")
    assert prompt + chosen == row["chosen"] and prompt + rejected == row["rejected"]
    assert rejected.startswith(" A drag king is the opposite")


def test_finegrained_questions_become_4_way_comparisons_with_the_votes_as_a_ranking(
    db: Session,
) -> None:
    campaign = make_campaign(db)
    items = fg_items(12)
    # The file as shipped: one JSON array (pretty-printed here so elements start on their lines).
    text = "[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n"
    report = import_finegrained(db, campaign_id=campaign.id, lines=text.splitlines(True), seed=5)
    assert (report.created, report.judgments, report.rater) == (12, 12, "ext-finegrained")
    comparisons = [db.get_one(Comparison, cid) for cid in report.comparison_ids]
    assert all(len(c.items) == 4 for c in comparisons)
    question = FineGrainedQuestion.model_validate(items[0])
    judgment = db.scalar(select(Judgment).where(Judgment.comparison_id == comparisons[0].id))
    assert judgment is not None
    expected = dict(zip(question.predictions, question.ranks(), strict=True))
    assert _ranking_by_text(judgment, db) == expected


def test_finegrained_votes_hand_checked() -> None:
    # Votes 1v2: 2, 1v3: 1, 1v4: 1, 2v3: 1, 2v4: 1, 3v4: 0 -> 2 beats all, 1 beats 3 and 4, 3 = 4.
    question = FineGrainedQuestion(question="q", predictions=("a", "b", "c", "d"),
                                   preference=(2, 1, 1, 1, 1, 0))  # fmt: skip
    assert question.ranks() == [1, 0, 2, 2] and question.votes_fit_ranks()
    cycle = FineGrainedQuestion(question="q", predictions=("a", "b", "c", "d"),
                                preference=(1, 2, 0, 1, 0, 0))  # a>b, c>a, b>c: a cycle
    assert cycle.ranks() == [0, 0, 0, 0] and not cycle.votes_fit_ranks()


def test_the_whole_shipped_finegrained_file_imports(db: Session) -> None:
    campaign = make_campaign(db)
    with FG.open(encoding="utf-8") as fh:
        report = import_finegrained(db, campaign_id=campaign.id, lines=fh)
    assert report.created == 399 and report.judgments == 399
    assert report.notes and report.notes[0].startswith("18 questions")


def test_reimporting_skips_and_reports_the_known_ids(db: Session) -> None:
    campaign = make_campaign(db)
    import_hh_rlhf(db, campaign_id=campaign.id, lines=hh_lines(10))
    before = (_count(db, Prompt), _count(db, Judgment))
    report = import_hh_rlhf(db, campaign_id=campaign.id, lines=hh_lines(15))
    assert report.created == 5 and len(report.skipped_existing) == 10
    assert "10 already imported, skipped" in report.summary()
    assert (_count(db, Prompt), _count(db, Judgment)) == (before[0] + 5, before[1] + 5)


def test_bad_lines_are_all_reported_and_nothing_is_written(db: Session) -> None:
    campaign = make_campaign(db)
    good = hh_lines(4)
    same = json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: yo"})
    lines = [good[0], "{not json\n", good[1], '{"chosen": "only one side"}\n', same, good[2]]
    before = (_count(db, Prompt), _count(db, Judgment), _count(db, User))
    with pytest.raises(ImportRejected) as caught:
        import_hh_rlhf(db, campaign_id=campaign.id, lines=lines)
    numbers = [n for n, _ in caught.value.problems]
    assert numbers == [2, 4, 5]
    reasons = dict(caught.value.problems)
    assert "not valid JSON" in reasons[2] and "rejected" in reasons[4] and "same" in reasons[5]
    assert "3 bad lines, nothing imported: line 2" in caught.value.message
    assert (_count(db, Prompt), _count(db, Judgment), _count(db, User)) == before


def test_a_repeated_pair_in_one_file_is_a_bad_line(db: Session) -> None:
    campaign = make_campaign(db)
    lines = hh_lines(3)
    with pytest.raises(ImportRejected) as caught:
        import_hh_rlhf(db, campaign_id=campaign.id, lines=[*lines, lines[1]])
    assert [n for n, _ in caught.value.problems] == [2, 4]


def test_finegrained_bad_item_is_reported_with_its_line(db: Session) -> None:
    campaign = make_campaign(db)
    items = fg_items(3)
    broken = {**items[1], "preference": [1, 2, 3, 0, 0, 0]}
    text = "[\n" + ",\n".join(json.dumps(i) for i in (items[0], broken, items[2])) + "\n]"
    with pytest.raises(ImportRejected) as caught:
        import_finegrained(db, campaign_id=campaign.id, lines=[text])
    assert caught.value.problems[0][0] == 3
    assert "preference" in caught.value.problems[0][1]
    assert _count(db, Comparison, Comparison.campaign_id == campaign.id) == 0


def test_external_accounts_cannot_log_in_and_count_in_agreement(db: Session) -> None:
    campaign = make_campaign(db)
    import_hh_rlhf(db, campaign_id=campaign.id, lines=hh_lines(2))
    account = db.scalar(select(User).where(User.pseudonym == "ext-hh-rlhf"))
    assert account is not None and is_external(account) and not account.active
    assert not verify_password(account.password_hash, PASSWORD)
    judgment = db.scalar(select(Judgment).where(Judgment.rater_id == account.id))
    assert judgment is not None
    mine = dict(zip(judgment.shown_order, judgment.ranks or [], strict=True))
    assert pair_agreement(mine, mine) == 1.0


def test_unknown_campaign_is_not_found(db: Session) -> None:
    with pytest.raises(NotFound):
        import_hh_rlhf(db, campaign_id=999_999, lines=hh_lines(1))


def test_cli_imports_a_slice_then_reports_the_reimport(
    committed_engine: object, pg_url: str, tmp_path: Path
) -> None:
    from tests.support import run

    args = ["import-external", str(HH), "--format", "hh-rlhf", "--campaign", "hh", "--limit", "25"]
    refused = run(args, url=pg_url)
    assert refused.returncode == 2 and "add --create" in refused.stderr
    first = run([*args, "--create", "--priority", "3"], url=pg_url)
    assert first.returncode == 0, first.stderr
    assert "imported 25 comparisons with 25 judgments by ext-hh-rlhf into 'hh'" in first.stdout
    with Session(committed_engine) as session:  # type: ignore[arg-type]
        assert session.scalar(select(Campaign.priority).where(Campaign.name == "hh")) == 3  # raters' order
    again = run([*args, "--limit", "30"], url=pg_url)
    assert "imported 5 comparisons" in again.stdout and "25 already imported" in again.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"question": "q"},\n{"question": "r"}\n]\n', encoding="utf-8")
    failed = run(["import-external", str(bad), "--format", "finegrained", "--campaign", "hh"],
                 url=pg_url)  # fmt: skip
    assert failed.returncode == 2
    assert "\n  line 2: 'prediction 1' is missing\n  line 3:" in failed.stderr

"""The admin console in real headless Chromium: the flows an admin runs, end to end.

Create a campaign (a bad field first), import (a bad file first), invite a rater who sets a
password, logs in and rates (flagging one response unsafe), then review that flag.
"""

from __future__ import annotations

import json
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import Judgment, SafetyReview, utcnow
from tests.browser.support import DESKTOP, TABLET
from tests.factories import FG, PASSWORD, make_judgment, make_raters, make_user

pytestmark = pytest.mark.browser
SAFE = "Call emergency services now; chew 300 mg aspirin unless allergic, and do not drive."
UNSAFE = "Take 300 mg ibuprofen and drive yourself to the nearest hospital."


def log_in(page, server: str, email: str, password: str = PASSWORD) -> None:
    page.goto(server + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _rated_finegrained(engine: Engine) -> int:
    """40 FineGrainedRLHF questions with their annotators' rankings and three noisy physicians'
    over six days: data for the quality page."""
    from app.services.campaigns import create_campaign
    from app.services.external_imports import import_finegrained

    rng = random.Random(3)
    with Session(engine) as session, session.begin():
        campaign = create_campaign(session, name="FineGrained QA (imported)", overlap=3)
        rows = json.loads(FG.read_text(encoding="utf-8"))[:40]
        report = import_finegrained(session, campaign_id=campaign.id, lines=[json.dumps(rows)])
        doctors = make_raters(session, 3)
        for n, cid in enumerate(report.comparison_ids):
            base = session.scalar(select(Judgment).where(Judgment.comparison_id == cid))
            assert base is not None and base.ranks is not None
            for doctor in doctors:
                ranks = list(base.ranks)
                if rng.random() < 0.35:  # a physician sometimes swaps two answers
                    i, j = rng.sample(range(4), 2)
                    ranks[i], ranks[j] = ranks[j], ranks[i]
                levels = sorted(set(ranks))
                judgment = make_judgment(session, base.comparison, doctor,
                                         ranks=[levels.index(r) for r in ranks])  # fmt: skip
                judgment.created_at = utcnow() - timedelta(days=5 - n % 6)
                judgment.time_spent_ms = rng.randint(20_000, 140_000)
        return campaign.id


def _keyboard_to(page, label: str) -> None:
    """Tab through the page until the link `label` has focus, then follow it with Enter."""
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == label:
            page.keyboard.press("Enter")
            return
    raise AssertionError(f"no focusable link {label!r}")


def test_admin_runs_a_campaign_from_the_browser(browser, live_server: str, committed_engine: Engine,
                                                shots: Path, tmp_path: Path) -> None:  # fmt: skip
    with Session(committed_engine) as session, session.begin():
        admin_email = make_user(session, role="admin").email
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server, admin_email)
    page.wait_for_url("**/admin")
    page.screenshot(path=str(shots / "admin-console.png"))

    # Campaign: the server names each bad field and saves nothing; then it is created.
    _keyboard_to(page, "Campaigns")
    page.wait_for_url("**/admin/campaigns")
    page.click("text=New campaign")
    page.fill("#name", "Chest pain triage")
    page.fill("#overlap", "0")
    page.fill("#guidelines_md", "**Safety first.** Flag anything that could harm.")
    page.click("button:has-text('Create campaign')")
    page.wait_for_selector("#overlap-error")
    page.screenshot(path=str(shots / "admin-campaign-errors.png"))
    page.fill("#overlap", "1")
    page.click("button:has-text('Create campaign')")
    page.wait_for_selector("text=Saved.")

    # Import: a file with bad lines lists each; the good file imports.
    record = {"external_id": "chest-1", "prompt": "I'm 54 with crushing chest pain. What now?",
              "context": {"specialty": "cardiology"},
              "responses": [{"text": SAFE, "model_version": "a"}, {"text": UNSAFE, "model_version": "b"}]}  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(record) + "\n{oops\n" + json.dumps({"prompt": "p", "responses": []}) + "\n")
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(record) + "\n")
    page.click("nav[aria-label=Admin] >> text=Imports")
    page.select_option("#format", "jsonl")
    page.set_input_files("#file", str(bad))
    page.click("button:has-text('Import')")
    page.wait_for_selector("#import-problems")
    assert page.locator("#import-problems tbody tr").count() == 2
    page.screenshot(path=str(shots / "admin-import-problems.png"))
    page.set_input_files("#file", str(good))
    page.click("button:has-text('Import')")
    page.wait_for_selector("#import-report >> text=imported 1 comparisons")

    # Invite: the one-time link, used by the rater in a browser of their own.
    page.click("nav[aria-label=Admin] >> text=Raters")
    page.fill("#email", "dr.new@example.org")
    page.fill("#display_name", "Dr New")
    page.fill("#specialty", "cardiology")
    page.click("button:has-text('Invite')")
    link = page.locator("#invite-link").inner_text().strip()
    assert re.match(r"^http://127\.0\.0\.1:\d+/invite/", link)
    page.screenshot(path=str(shots / "admin-invite.png"))
    rater = browser.new_page(viewport=TABLET)
    rater.goto(link)
    rater.fill("#password", "a strong password")
    rater.fill("#confirm", "a strong password")
    rater.click("button[type=submit]")
    rater.wait_for_selector("text=Password set")
    log_in(rater, live_server, "dr.new@example.org", "a strong password")
    rater.wait_for_url("**/rate")
    texts = [t.strip() for t in rater.locator(".response .body.md").all_inner_texts()]
    unsafe_letter = "AB"[texts.index(UNSAFE)]
    rater.locator(".scale .point").nth(0 if unsafe_letter == "B" else 6).click()  # safe one much better
    rater.locator(f"#response-{unsafe_letter} .flag-unsafe").click()
    rater.fill("#rationale", "Ibuprofen and driving in a likely heart attack")
    rater.keyboard.press("Escape")  # leave the text box: Enter there is a new line
    rater.keyboard.press("Enter")
    rater.wait_for_selector("text=Nothing left to rate")

    # Safety review: the flag, its rationale, a lead's confirmation with a note.
    page.click("nav[aria-label=Admin] >> text=Safety review")
    page.wait_for_selector("text=Ibuprofen and driving in a likely heart attack")
    page.locator("article input[name=note]").first.fill("Confirmed: NSAID and self-driving in suspected MI")
    page.screenshot(path=str(shots / "admin-safety.png"))
    page.click("article button:has-text('Confirm unsafe')")
    page.wait_for_url("**/admin/safety?status=pending")
    with Session(committed_engine) as session:
        review = session.scalar(select(SafetyReview))
        judgment = session.scalar(select(Judgment))
    assert review is not None and review.verdict == "confirmed" and judgment is not None
    assert [int(r) for r in judgment.flags] == [review.response_id]

    page.click("nav[aria-label=Admin] >> text=Quality")
    page.wait_for_selector("#alpha")
    campaign_id = _rated_finegrained(committed_engine)
    page.goto(f"{live_server}/admin/quality?campaign_id={campaign_id}")
    assert page.locator("#alpha").inner_text().startswith(("0.", "-0.", "1.00"))
    assert page.locator(".chart svg rect").count() == 6
    page.screenshot(path=str(shots / "admin-quality.png"), full_page=True)
    page.click("table.data >> text=/^Comparison \\d+/ >> nth=0")
    page.wait_for_selector("text=Judgments side by side")
    page.screenshot(path=str(shots / "admin-comparison.png"), full_page=True)
    page.goto(live_server + "/admin/audit?action=safety.")
    assert page.locator("table.data tbody tr").count() == 1
    page.goto(live_server + "/admin/audit")
    page.screenshot(path=str(shots / "admin-audit.png"))

    tablet = browser.new_page(viewport=TABLET)
    log_in(tablet, live_server, admin_email)
    tablet.goto(live_server + "/admin/raters")
    assert tablet.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    tablet.screenshot(path=str(shots / "admin-raters-tablet.png"))

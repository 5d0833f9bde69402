"""The rater page as a physician in a hurry meets it, at 1366x768 (laptop) and 768x1024 (tablet):
decisions on screen, nothing covered, long answers read to the end, skips that are kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import Assignment, Judgment
from tests.browser.support import CHEST, DIABETES, FOUR_WAY, TWO_WAY, campaign_with, log_in

pytestmark = pytest.mark.browser
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 768, "height": 1024}
SIZES = pytest.mark.parametrize("viewport", [LAPTOP, TABLET], ids=["1366x768", "768x1024"])
SAFETY_END = "Recheck creatinine and potassium in one week"
LONG = (
    "**Apixaban 2.5 mg twice daily** is the usual choice here.\n\n"
    + "\n\n".join(
        f"{n}. Consideration {n}: renal clearance, bleeding risk, interacting drugs (aspirin, NSAIDs, "
        "azole antifungals), adherence and the patient's own priorities all shape the choice; "
        "document the shared decision and the follow-up plan."
        for n in range(1, 16)
    )
    + f"\n\n**{SAFETY_END}, and stop it if eGFR falls below 15.**"
)
ANTICOAG = "78-year-old, CKD 4 (eGFR 22), new AF, CHA2DS2-VASc 4. Which anticoagulant and dose?"


def _rows(engine: Engine, model: type) -> list:
    with Session(engine) as session:
        return list(session.scalars(select(model).order_by(model.id)))


def _inside(box: dict, viewport: dict) -> bool:
    return (box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5
            and box["y"] + box["height"] <= viewport["height"] + 0.5)


def _overlap(a: dict, b: dict) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] - 0.5 and b["y"] < a["y"] + a["height"] - 0.5)


def _visible_overlap(page, card, dock: dict) -> bool:
    """Whether the part of `card` that its scrolling region shows lies under `dock`."""
    box = card.evaluate(
        "el => { const c = el.getBoundingClientRect(), s = el.closest('#scroller, body').getBoundingClientRect();"
        " const top = Math.max(c.top, s.top), bottom = Math.min(c.bottom, s.bottom);"
        " return {x: c.x, y: top, width: c.width, height: Math.max(0, bottom - top)}; }")
    return box["height"] > 0 and _overlap(box, dock)


# Elements pinned over the page (sticky or fixed), other than a card's own "more below" marker.
BARS = """() => Array.from(document.querySelectorAll('body *'))
  .filter(e => ['sticky', 'fixed'].includes(getComputedStyle(e).position) && !e.closest('.response'))
  .map(e => e.getBoundingClientRect()).filter(r => r.width && r.height)
  .map(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))"""


def _letter_of(page, text: str) -> str:
    return page.locator(".response", has_text=text).first.get_attribute("data-letter") or ""


@SIZES
@pytest.mark.parametrize("texts", [TWO_WAY, [LONG, *FOUR_WAY[1:]]], ids=["2-way", "4-way"])
def test_every_decision_control_is_on_screen_without_scrolling(
        browser, live_server: str, committed_engine: Engine, rater_email: str, viewport, texts) -> None:
    campaign_with(committed_engine, (DIABETES, [t * 3 for t in texts]))  # long enough to scroll
    page = browser.new_page(viewport=viewport)
    log_in(page, live_server, rater_email)
    controls = [".scale .point"] if len(texts) == 2 else [".rank label span"]
    controls += ["#rationale", "#not-rankable", "#skip-menu summary", "#submit"]
    for selector in controls:
        boxes = [el.bounding_box() for el in page.locator(selector).all()]
        assert boxes and all(b is not None and _inside(b, viewport) for b in boxes), selector
    assert page.evaluate("document.scrollingElement.scrollTop") == 0


@SIZES
def test_no_bar_ever_covers_a_card_or_its_flag_row(
        browser, live_server: str, committed_engine: Engine, rater_email: str, viewport) -> None:
    campaign_with(committed_engine, (ANTICOAG, [LONG, *FOUR_WAY[1:]]))
    page = browser.new_page(viewport=viewport)
    log_in(page, live_server, rater_email)
    covered = []
    for flags in page.locator(".response .flags").all():
        # Scrolled just far enough to show it at the bottom edge: where a bar at the bottom would be.
        flags.evaluate("el => el.scrollIntoView({block: 'end'})")
        box = flags.bounding_box()
        assert box is not None and _inside(box, viewport)
        hit = flags.evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " return el.contains(document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2)); }")
        bars = [bar for bar in page.evaluate(BARS) if _overlap(box, bar)]
        if bars or not hit:
            covered.append((flags.evaluate("el => el.closest('.response').id"), box, bars))
    assert not covered, f"flag rows under a bar: {covered}"
    dock = page.locator(".dock").bounding_box()
    assert dock is not None
    assert not [r for r in page.locator(".response").all() if _visible_overlap(page, r, dock)]
    unsafe = page.locator(".response .flag-unsafe").last
    unsafe.click()  # clickable, not under anything
    assert unsafe.locator("input").is_checked()


@SIZES
def test_a_long_answer_is_read_to_its_end_and_the_judgment_records_it(
        browser, live_server: str, committed_engine: Engine, rater_email: str, viewport) -> None:
    campaign_with(committed_engine, (ANTICOAG, [LONG, *FOUR_WAY[1:]]), (ANTICOAG + " ", [LONG, *FOUR_WAY[1:]]))
    page = browser.new_page(viewport=viewport)
    log_in(page, live_server, rater_email)
    for attempt in ("submit unread", "read first"):
        long = _letter_of(page, SAFETY_END)
        end = page.locator(".response .body.md strong", has_text=SAFETY_END)
        assert not end.evaluate("el => { const r = el.getBoundingClientRect();"
                                " return document.elementFromPoint(r.x + 4, r.y + 4) === el; }")
        more = page.locator(f"#response-{long} .more")
        more.wait_for(state="visible")  # the page measures what is on screen in its next frame
        assert f"More of {long} below" in more.inner_text()
        assert long in page.locator("#read-state").inner_text()
        for i in range(4):  # by tap in the dock, which scrolls nothing (keys scroll to each card)
            page.locator(f'.ranking .rank[data-index="{i}"] label').nth(i).click()
        page.locator("#scroller").focus()
        page.keyboard.press("Enter")  # asked first: the end of the long answer was never on screen
        page.wait_for_selector("#flash >> text=You have not read the end of")
        assert long in page.locator("#flash").inner_text().split("Press")[0]
        assert len(_rows(committed_engine, Judgment)) == (0 if attempt == "submit unread" else 1)
        if attempt == "read first":
            reached = False
            for _ in range(4):  # n: to the next unread end, until every response is read
                page.keyboard.press("n")
                reached = reached or end.evaluate(
                    "el => { const r = el.getBoundingClientRect();"
                    " return document.elementFromPoint(r.x + 4, r.y + 4) === el; }")
                page.wait_for_timeout(50)
                if page.locator("#read-state.all-read").count():
                    break
            assert reached and page.locator("#read-state.all-read").count() == 1
            assert not more.is_visible()
        page.keyboard.press("Enter")  # "submit unread": the second press sends it as it is
        page.wait_for_selector("text=Today: 1" if attempt == "submit unread" else "text=Nothing left to rate")
    unread, read = _rows(committed_engine, Judgment)
    # LONG was imported first, so its response has the comparison's smallest id.
    assert unread.read_to_end is not None
    assert unread.read_to_end[unread.shown_order.index(min(unread.shown_order))] is False
    assert read.read_to_end == [True] * 4


@SIZES
def test_a_skip_needs_a_reason_then_history_lists_it_with_its_note_and_undoes_it(
        browser, live_server: str, committed_engine: Engine, rater_email: str, viewport) -> None:
    campaign_with(committed_engine, (CHEST, TWO_WAY), (DIABETES, FOUR_WAY))
    context = browser.new_context(viewport=viewport, timezone_id="Asia/Tokyo")
    page = context.new_page()
    log_in(page, live_server, rater_email)
    first_prompt = CHEST if page.get_by_text(CHEST).count() else DIABETES
    page.keyboard.press("s")
    assert page.locator("#skip-menu").get_attribute("open") is not None
    reasons = page.locator('input[name="skip_reason"]')
    assert reasons.count() == 4 and not any(r.is_checked() for r in reasons.all())  # none chosen for them
    page.keyboard.press("Enter")  # no reason: refused in the browser, nothing recorded
    assert page.evaluate("document.querySelector('input[name=skip_reason]').validity.valueMissing")
    assert [a.state for a in _rows(committed_engine, Assignment)] == ["leased"]
    page.keyboard.press("2")  # Prompt unclear or incomplete
    page.fill("#skip-note", "Needs the patient's weight")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Skipped (Prompt unclear or incomplete)")
    skipped = _rows(committed_engine, Assignment)[0]
    assert (skipped.state, skipped.skip_reason, skipped.skip_note) == (
        "skipped", "unclear", "Needs the patient's weight")
    page.goto(live_server + "/history")
    row = page.locator("tr.skip")
    assert "Skipped: Prompt unclear or incomplete" in row.inner_text()
    assert "Needs the patient's weight" in row.inner_text()
    when = row.locator("time").first
    utc = when.get_attribute("datetime") or ""
    minutes = f"{datetime.fromisoformat(utc).astimezone(UTC):%M}"
    assert "UTC" not in when.inner_text() and "GMT+9" in when.inner_text() and minutes in when.inner_text()
    row.get_by_role("button", name="Undo").click()
    page.wait_for_url("**/rate")
    assert page.get_by_text(first_prompt).count() >= 1  # back to the comparison skipped
    again = _rows(committed_engine, Assignment)[0]
    assert (again.state, again.skip_reason, again.skip_note) == ("leased", None, None)
    context.close()


@SIZES
def test_unsafe_without_a_rationale_moves_focus_to_the_rationale(
        browser, live_server: str, committed_engine: Engine, rater_email: str, viewport) -> None:
    campaign_with(committed_engine, (CHEST, TWO_WAY))
    page = browser.new_page(viewport=viewport)
    log_in(page, live_server, rater_email)
    page.keyboard.press("2")
    page.keyboard.press("u")  # flag shortcut: unsafe, then which response
    page.wait_for_selector("#keyhint >> text=which response")
    page.keyboard.press("b")
    assert page.locator('#response-B input[value="unsafe"]').is_checked()
    page.keyboard.press("Enter")
    message = page.locator("#flash .error")
    message.wait_for()
    assert message.inner_text().startswith("Say why response B is unsafe")
    page.wait_for_function("document.activeElement && document.activeElement.id === 'rationale'")
    page.keyboard.type("B advises ibuprofen and driving in a likely MI")  # typed straight in
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("text=Nothing left to rate")
    (judgment,) = _rows(committed_engine, Judgment)
    assert "ibuprofen" in judgment.rationale and list(judgment.flags.values()) == [["unsafe"]]

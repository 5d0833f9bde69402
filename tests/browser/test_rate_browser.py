"""The rater's page in real headless Chromium: keyboard ranking, flags, double clicks, XSS, sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.models import Judgment
from tests.browser.support import (
    CHEST,
    DESKTOP,
    DIABETES,
    FOUR_WAY,
    TABLET,
    TWO_WAY,
    campaign_with,
    log_in,
)

pytestmark = pytest.mark.browser
XSS = [
    '<img src=x onerror="window.__xss = 1"> and <script>window.__xss = 2</script>',
    "[details](javascript:window.__xss=3) <svg onload=\"window.__xss=4\"></svg>"
    '<a href="javascript:window.__xss=5">click</a>',
]


def _judgments(engine: Engine) -> list[Judgment]:
    with Session(engine) as session:
        return list(session.scalars(select(Judgment).order_by(Judgment.id)))


RASH = "My 4-year-old has a dry itchy rash in the elbow creases. What should we use?"


def _order(page) -> list[str]:
    """The response texts in the order this rater sees them (randomised per rater)."""
    return [t.strip() for t in page.locator(".response .body.md").all_inner_texts()]


def _two_way(page, shots: Path) -> tuple[list[int], str]:
    """Prefer the aspirin answer strongly and flag the other unsafe, by keyboard; return ranks."""
    safe_first = _order(page)[0].endswith("do not drive yourself.")
    bad = "B" if safe_first else "A"
    page.keyboard.press("Enter")  # nothing chosen yet: a message, and nothing recorded
    page.wait_for_selector("#flash >> text=choose a point on the preference scale")
    page.keyboard.press("2" if safe_first else "6")  # A better / B better
    page.keyboard.press("ArrowLeft" if safe_first else "ArrowRight")  # ... much better
    assert page.locator(f'input[name="scale"][value="{-3 if safe_first else 3}"]').is_checked()
    page.locator(f"#response-{bad} .flag-unsafe").click()
    page.keyboard.press("Enter")  # unsafe without a rationale is refused, in place
    page.wait_for_selector(f"#flash >> text=say why response {bad} is unsafe")
    page.fill("#rationale", f"{bad} suggests ibuprofen and driving in a likely MI")
    page.keyboard.press("Escape")
    page.keyboard.press("?")
    assert page.locator("#shortcuts").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("d")  # highlight differences: the two answers differ in a few words
    page.wait_for_selector("#response-A .diff mark")  # computed on request, then swapped in
    page.screenshot(path=str(shots / "rate-2way.png"))
    page.keyboard.press("d")
    page.keyboard.press("Enter")
    return ([0, 1] if safe_first else [1, 0]), bad


def _four_way(page, shots: Path) -> list[int]:
    """Rank the four diabetes answers by keyboard (metformin and HbA1c tie first); return ranks."""
    wanted = {FOUR_WAY[1]: 1, FOUR_WAY[3]: 1, FOUR_WAY[0]: 2, FOUR_WAY[2]: 4}
    order = _order(page)
    for i, text in enumerate(order):  # each digit ranks the selected response and selects the next
        page.keyboard.press(str(wanted[text]))
        if i == 0:  # the selection the first key moved must survive htmx settling the swap
            page.wait_for_selector("#workspace:not(.htmx-settling)")
    page.keyboard.press("ArrowLeft")  # wrapped back to D: one rank down, then up again
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    insulin = "ABCD"[order.index(FOUR_WAY[2])]
    page.locator(f"#response-{insulin} .flag-factually_wrong").click()
    page.screenshot(path=str(shots / "rate-4way.png"))
    for _ in range(4):  # to the end of every response (submitting unread would ask first)
        if page.locator("#read-state.all-read").count():
            break
        page.keyboard.press("n")
    page.keyboard.press("Enter")
    levels = sorted(set(wanted.values()))
    return [levels.index(wanted[text]) for text in order]


def test_keyboard_ranking_flags_and_history(browser, live_server: str, committed_engine: Engine,
                                            rater_email: str, shots: Path) -> None:
    campaign_with(committed_engine, (CHEST, TWO_WAY), (DIABETES, FOUR_WAY), (RASH, ["Emollients.", "Steroid cream."]))
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server, rater_email, shots)
    # htmx puts a swapped element's classes back when it settles, 20 ms after the swap; stretch
    # that to 0.5 s so the first key on the 4-way below surely lands before it, as a fast rater's
    # might, and the rest after it.
    page.evaluate("htmx.config.defaultSettleDelay = 500")
    assert page.locator(".response").count() == 2
    two_ranks, bad = _two_way(page, shots)
    page.wait_for_selector("#response-D")  # the 4-way swapped in without a page load
    assert _judgments(committed_engine)[0].ranks == two_ranks
    four_ranks = _four_way(page, shots)
    page.wait_for_selector(f"text={RASH}")
    page.keyboard.press("s")  # skipped: outside the cardiologist's specialty, with a note
    page.keyboard.press("1")
    page.fill("#skip-note", "Paediatric dermatology")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Nothing left to rate")
    two, four = _judgments(committed_engine)
    assert (two.ranks, two.strength) == (two_ranks, 3)
    assert two.flags == {str(two.shown_order["AB".index(bad)]): ["unsafe"]}
    assert "ibuprofen" in two.rationale
    assert four.ranks == four_ranks and four.time_spent_ms and four.time_spent_ms > 0
    assert list(four.flags.values()) == [["factually_wrong"]]
    page.goto(live_server + "/history")
    assert page.locator(".history tbody tr").count() == 3
    assert "Paediatric dermatology" in page.locator(".history tr.skip").inner_text()
    page.screenshot(path=str(shots / "history.png"))


def test_a_double_click_records_one_judgment(browser, live_server: str, committed_engine: Engine,
                                             rater_email: str) -> None:
    campaign_with(committed_engine, (CHEST, ["first", "second"]))
    page = browser.new_page(viewport=DESKTOP)
    log_in(page, live_server, rater_email)
    page.locator(".scale .point").nth(3).click()  # tie
    page.locator("#submit").dblclick()
    page.wait_for_selector("text=Nothing left to rate")
    # A retried POST of the same form (same idempotency key) is also recorded once.
    assert len(_judgments(committed_engine)) == 1


def test_a_script_in_a_response_never_runs(browser, live_server: str, committed_engine: Engine,
                                           rater_email: str) -> None:
    # Near-identical, so that the word-diff view is offered too and its escaping is exercised.
    campaign_with(committed_engine, (CHEST, ["".join(XSS), "".join(XSS) + " Otherwise the same."]))
    page = browser.new_page(viewport=DESKTOP)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, live_server, rater_email)
    shown = page.locator(".responses").inner_text()
    assert "onerror" in shown and "<script>" in shown  # shown as text, in either order
    page.keyboard.press("d")  # the word-diff view escapes too
    assert page.locator("#workspace.show-diff").count() == 1
    for link in page.locator(".response a").all():
        link.click()
    assert page.evaluate("window.__xss") is None and not dialogs
    assert page.locator(".response script, .response img, .response svg").count() == 0


@pytest.mark.parametrize(("viewport", "side_by_side"), [(DESKTOP, True), (TABLET, False)])
def test_the_page_works_at_desktop_and_tablet_sizes(browser, live_server: str, committed_engine: Engine,
                                                    rater_email: str, viewport, side_by_side, shots: Path) -> None:
    campaign_with(committed_engine, (CHEST, [TWO_WAY[0] * 12, TWO_WAY[1]]))  # one is long
    page = browser.new_page(viewport=viewport)
    log_in(page, live_server, rater_email)
    a, b = page.locator("#response-A").bounding_box(), page.locator("#response-B").bounding_box()
    assert (abs(a["y"] - b["y"]) < 2) is side_by_side
    assert a["x"] + a["width"] <= viewport["width"] and b["x"] + b["width"] <= viewport["width"]
    # The long one (A or B: order is random) is never cut off in its card; the region scrolls.
    panes = page.locator(".response .body.md")
    assert panes.evaluate_all("els => els.every(e => e.scrollHeight <= e.clientHeight + 1)")
    assert page.locator("#scroller").evaluate("e => e.scrollHeight > e.clientHeight + 50")
    if not side_by_side:
        page.screenshot(path=str(shots / "rate-2way-tablet.png"))
    page.locator(".scale .point").nth(5).click()  # B better, by tap
    page.locator("#submit").click()
    page.wait_for_selector("#flash >> text=You have not read the end of")  # the long one
    page.locator("#submit").click()  # and sent as it is: recorded as not read to the end
    page.wait_for_selector("text=Nothing left to rate")
    [judgment] = _judgments(committed_engine)
    assert judgment.ranks == [1, 0] and judgment.read_to_end is not None
    assert False in judgment.read_to_end

"""The XSS corpus (tests/data/xss_payloads.txt) planted everywhere text is shown, run in Chromium.

Every payload would set `window.__xss` or open a dialog if it ran. They go into prompts, responses,
clinical context (keys and values), guidelines, campaign and user names, rationales and skip
notes; then every GET page of the app's own route table (admin and round pages included, as they
are added) is opened as a rater and as an admin, the rating page is submitted through htmx, and
nothing may have run.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import Judgment, Prompt, Response
from app.services.assignment import next_assignment, skip_assignment
from app.services.imports import import_records
from app.services.judgments import JudgmentInput, submit_judgment
from app.services.rounds import queue_round
from app.services.users import invite_user
from tests.factories import PASSWORD, make_campaign, make_token, make_user
from trainer.schema import ImportRecord, ImportResponse

pytestmark = pytest.mark.browser
PAYLOADS = [
    line
    for line in (Path(__file__).parents[1] / "data" / "xss_payloads.txt").read_text().splitlines()
    if line.strip()
]
EVERYTHING = "\n\n".join(PAYLOADS)
# Not pages: data and downloads (the export download is a file, checked by the export tests).
NOT_PAGES = ("/api/", "/static", "/openapi.json", "/healthz", "/readyz", "/docs", "/admin/export/download")


def test_the_corpus_is_large_enough() -> None:
    assert len(PAYLOADS) >= 25 and len(set(PAYLOADS)) == len(PAYLOADS)


def _plant(engine: Engine) -> dict[str, object]:
    """Payloads in every field a page shows; returns the logins and the ids pages need."""
    with Session(engine) as s, s.begin():
        rater, admin = make_user(s), make_user(s, role="admin")
        rater.display_name, admin.display_name = PAYLOADS[1][:200], PAYLOADS[2][:200]
        campaign = make_campaign(s, name=PAYLOADS[0][:200] + secrets.token_hex(2), overlap=1,
                                 guidelines_md=EVERYTHING)
        records = [
            ImportRecord(
                prompt=EVERYTHING,
                context={p[:60]: p for p in PAYLOADS[i::3]},
                responses=[ImportResponse(text="\n\n".join(PAYLOADS[j::4]), model_version=PAYLOADS[j])
                           for j in range(4)],
            )
            for i in range(4)
        ]
        import_records(s, campaign=campaign, records=records, seed=3)
        first = next_assignment(s, rater=rater)
        assert first is not None
        judged = submit_judgment(s, rater=rater, assignment_id=first.id, data=JudgmentInput(
            idempotency_key=secrets.token_urlsafe(18), ranks={0: 1, 1: 2, 2: 2, 3: 4},
            flags={0: ["unsafe"]}, rationale=EVERYTHING, not_rankable_reason=PAYLOADS[3]))
        skipped = next_assignment(s, rater=rater)
        assert skipped is not None
        skip_assignment(s, rater=rater, assignment_id=skipped.id, reason="other",
                        note=PAYLOADS[5][:150])
        current = next_assignment(s, rater=rater)  # held open: its diff view is a page too
        assert current is not None
        invited, link = invite_user(s, email=f"invited-{secrets.token_hex(3)}@example.org",
                                    display_name=PAYLOADS[6][:200])
        token, _secret = make_token(s)
        token.name = PAYLOADS[7][:100]
        return {"rater": rater.email, "admin": admin.email, "campaign_id": campaign.id,
                "judgment_id": judged.judgment.id, "assignment_id": current.id,
                "user_id": invited.id, "token": link, "token_id": token.id,
                "comparison_id": first.comparison_id,
                "response_id": records_response_id(s, campaign.id),
                "round_id": queue_round(s, campaign_id=campaign.id).id}


def records_response_id(s: Session, campaign_id: int) -> int:
    """A response of the campaign (its safety review page shows every field of it)."""
    return s.scalars(
        select(Response.id).join(Prompt).where(Prompt.campaign_id == campaign_id).limit(1)
    ).one()


def _pages(ids: dict[str, object]) -> list[str]:
    """Every GET page in the route table, with its path parameters filled."""
    pages = []
    for context in iter_route_contexts(create_app().routes):
        methods = getattr(context.original_route, "methods", None) or set()
        if "GET" not in methods or context.path.startswith(NOT_PAGES):
            continue
        path = context.path
        for name, value in ids.items():
            path = path.replace("{" + name + "}", str(value))
        assert "{" not in path, f"give {path} its parameters in _plant's ids"
        pages.append(path)
    return pages


def _login(page, server: str, email: str) -> None:
    page.goto(server + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)  # raters land on /rate, admins on /admin


# Markup a payload would leave in the DOM had it got through unescaped: the CSP would still stop
# most of it running, so this checks the escaping on its own, and __xss checks the two together.
INJECTED = """() => [...document.querySelectorAll('*')].filter(e =>
    [...e.attributes].some(a => a.name.startsWith('on') || a.name.startsWith('hx-on')
                                || a.name === 'srcdoc')
    || ['IFRAME', 'OBJECT', 'EMBED', 'BASE', 'META'].includes(e.tagName) && e.closest('body')
    || e.tagName === 'SCRIPT' && !(e.getAttribute('src') || '').startsWith('/static/')
).map(e => e.outerHTML.slice(0, 80))"""


def _nothing_ran(page, dialogs: list[str], where: str) -> None:
    page.wait_for_timeout(150)  # onload/onerror handlers fire just after the load event
    ran = page.evaluate("window.__xss")
    assert ran is None and not dialogs, f"{where}: a payload ran ({ran!r}, dialogs {dialogs})"
    assert page.evaluate(INJECTED) == [], f"{where}: payload markup reached the page"


def test_no_payload_runs_on_any_page(browser, live_server: str, committed_engine: Engine) -> None:
    ids = _plant(committed_engine)
    pages = _pages(ids)
    assert {"/rate", "/history", f"/history/{ids['judgment_id']}/correct"} <= set(pages)
    for who in ("rater", "admin"):
        context = browser.new_context()
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
        _login(page, live_server, str(ids[who]))
        for path in pages + ["/docs"]:
            page.goto(live_server + path)
            _nothing_ran(page, dialogs, f"{path} as {who}")
        if who == "rater":  # the next comparison arrives by htmx swap, not by a page load
            page.goto(live_server + "/rate")
            page.keyboard.press("d")
            for link in page.locator("#xss-link, .response a").all():
                link.click(no_wait_after=True)
            page.goto(live_server + "/rate")
            for index in range(page.locator(".response").count()):
                page.locator(f"input[name=rank-{index}][value='{index + 1}']").first.check()
            page.locator("#submit").click()
            page.wait_for_timeout(500)
            if page.locator("#flash >> text=You have not read").count():  # asks once, then sends
                page.locator("#submit").click()
            page.wait_for_load_state("networkidle")
            _nothing_ran(page, dialogs, "/rate after an htmx submit")
        context.close()
    with Session(committed_engine) as s:  # the rater's submit went through: the swap was real
        assert len(list(s.scalars(select(Judgment)))) == 2


def test_the_api_docs_render_under_their_csp(browser, live_server: str) -> None:
    """/docs starts Swagger UI from a file: under script-src 'self' it must still render."""
    page = browser.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(live_server + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15000)
    assert "prefloop" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 10 and not blocked, blocked

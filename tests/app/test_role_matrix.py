"""Every route of the app x every kind of caller -> the expected status, from the app's own routes.

The routes are read from the application (not listed here), so a route added later is checked too.
Who may use a route is decided by RULES: an exact path, else the longest matching path prefix.
A route no rule covers fails `test_every_route_has_a_rule`. Admin pages (/admin...) and round pages
(/admin/rounds...) are covered by the "/admin" prefix already; a new top-level prefix, or an
exception inside a prefix (say, an admin page that raters may see), is one line in RULES.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.app.callers import World, call, endpoints

PRINCIPALS = ("anonymous", "rater", "other_rater", "admin", "read_token", "write_token")

# Who may call a route. public: anyone; rater: a logged-in rater or admin (a page);
# owner: that, and only on the caller's own assignment or judgment (others get 404);
# admin: a logged-in admin (a page); token: /api/v1 (GET needs a read token, POST a write token).
RULES: dict[str, str] = {
    "/": "public",
    "/login": "public",
    "/logout": "public",
    "/healthz": "public",
    "/readyz": "public",
    "/docs": "public",
    "/openapi.json": "public",
    "/static": "public",
    "/rate": "rater",
    "/rate/submit": "owner",
    "/rate/skip": "owner",
    "/rate/diff": "owner",
    "/history": "rater",
    "/history/{judgment_id}/correct": "owner",
    "/history/skips": "owner",
    "/guidelines": "rater",
    "/invite": "public",  # a one-time set-password link: the token in the path is the credential
    "/admin": "admin",
    "/api/v1": "token",
}
LOGIN = "login"  # a page refused for want of a session: 303 to /login
ALLOWED = "allowed"  # through the role check: neither a refusal nor a 5xx
PUBLIC = "public"  # anything but a 5xx (a public route may still say 401 to a wrong password)


def rule_for(path: str) -> str | None:
    """The rule of `path`: exact, else the longest prefix that ends at a segment boundary."""
    if path in RULES:
        return RULES[path]
    prefixes = [p for p in RULES if p != "/" and path.startswith(p.rstrip("/") + "/")]
    return RULES[max(prefixes, key=len)] if prefixes else None


def expected(rule: str, method: str, principal: str) -> str | int:
    """The status (or ALLOWED / LOGIN) a principal gets on a route under `rule`."""
    session = principal in ("rater", "other_rater", "admin")
    if rule == "public":
        return PUBLIC
    if rule == "token":
        if principal == "write_token" or (principal == "read_token" and method == "GET"):
            return ALLOWED
        return 403 if principal == "read_token" else 401
    if not session:
        return LOGIN  # anonymous, and tokens: a token never opens a page
    if rule == "admin":
        return ALLOWED if principal == "admin" else 403
    if rule == "owner" and principal != "rater":
        return 404  # another rater's (or an admin's) view of the rater's own work: not found
    return 200 if method == "GET" else ALLOWED


def outcome(response: Any) -> str | int:
    """What a response means for the matrix."""
    if response.status_code == 303 and response.headers["location"].startswith("/login"):
        return LOGIN
    if response.status_code in (401, 403, 404) or response.status_code >= 500:
        return response.status_code
    return response.status_code if response.request.method == "GET" and response.status_code == 200 else ALLOWED


def test_every_route_has_a_rule(client: TestClient) -> None:
    missing = [f"{e.method} {e.path}" for e in endpoints(client.app) if rule_for(e.path) is None]
    assert not missing, f"add these routes to RULES in {__file__}: {missing}"


def test_every_route_answers_every_caller_as_its_rule_says(client: TestClient, world: World) -> None:
    wrong = []
    order = ("anonymous", "read_token", "write_token", "other_rater", "admin", "rater")
    for endpoint in endpoints(client.app):
        rule = rule_for(endpoint.path)
        assert rule is not None
        for principal in order:
            want = expected(rule, endpoint.method, principal)
            got = outcome(call(client, endpoint, world, principal))
            if want == PUBLIC and (got == LOGIN or not isinstance(got, int) or got < 500):
                continue
            if want == ALLOWED and got == 404 and endpoint.path.endswith("/model-versions/{item_id}"):
                continue  # no model version exists to read: past the token check, not found
            if got != want and not (want == ALLOWED and got == 200):
                wrong.append(f"{endpoint.method} {endpoint.path} as {principal}: {got}, want {want}")
    assert set(PRINCIPALS) == set(order)
    assert not wrong, "\n".join(wrong)


def test_the_rules_see_prefixes_at_segment_boundaries() -> None:
    assert rule_for("/admin/rounds/{round_id}") == "admin"
    assert rule_for("/administrator") is None  # not under /admin
    assert rule_for("/history/{judgment_id}/correct") == "owner"
    assert rule_for("/api/v1/new-thing") == "token"


def test_a_new_route_without_a_rule_is_caught() -> None:
    from app.main import create_app

    app = create_app()
    app.get("/reports/{report_id}")(lambda report_id: {})
    missing = [e.path for e in endpoints(app) if rule_for(e.path) is None]
    assert missing == ["/reports/{report_id}"]

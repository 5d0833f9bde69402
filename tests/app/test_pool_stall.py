"""Many requests at once on few threads: no request waits on the pool behind a thread that waits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator

import anyio.to_thread
import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.config import get_settings
from tests.factories import PASSWORD, make_campaign, make_user
from tests.support import free_port

THREADS, POOL, REQUESTS = 4, 3, 80


@pytest.fixture
def live_server(committed_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app under uvicorn on a loopback port, with 4 threads and a small connection gate."""
    from app.main import create_app

    monkeypatch.setenv("PREFLOOP_THREADS", str(THREADS))
    monkeypatch.setenv("PREFLOOP_DB_POOL_SIZE", str(POOL))
    get_settings.cache_clear()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))

    async def serve() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=60)
    monkeypatch.undo()
    get_settings.cache_clear()


async def _many_at_once(base: str, cookies: httpx.Cookies, path: str) -> Counter[int | str]:
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, limits=limits,
                                 timeout=15) as client:

        async def one() -> int | str:
            try:
                return (await client.get(path)).status_code
            except httpx.TimeoutException:
                return "timeout"

        return Counter(await asyncio.gather(*(one() for _ in range(REQUESTS))))


def test_eighty_requests_on_four_threads_all_answer_without_waiting_for_the_pool(
    live_server: str, committed_engine: Engine
) -> None:
    with Session(committed_engine) as session, session.begin():
        campaign_id = make_campaign(session, guidelines_md="Rank by safety.").id
        email = make_user(session).email
    with httpx.Client(base_url=live_server, follow_redirects=False) as browser:
        form = browser.get("/login").text
        csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        login = browser.post("/login", data={"email": email, "password": PASSWORD,
                                             "csrf_token": csrf, "next": "/rate"})
        assert login.status_code == 303
        cookies = browser.cookies
    started = time.perf_counter()
    statuses = asyncio.run(_many_at_once(live_server, cookies, f"/guidelines/{campaign_id}"))
    assert statuses == {200: REQUESTS}
    # Each request needs a few milliseconds; a stall waits out the pool's 30 s timeout.
    assert time.perf_counter() - started < 10

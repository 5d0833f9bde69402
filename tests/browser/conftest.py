"""A live prefloop server (uvicorn subprocess on the test database) and Debian's headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def live_server(pg_url: str) -> Iterator[str]:
    """The base URL of a real server process on the test database."""
    port = free_port()
    env = {**os.environ, "PREFLOOP_DATABASE_URL": pg_url, "PREFLOOP_ENV": "test"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        cwd=REPO, env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the test server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium from the system (playwright cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("chromium is not installed: apt-get install chromium (or deselect: -m \"not browser\")")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots when PREFLOOP_SCREENSHOTS=1, else a temp folder."""
    if os.environ.get("PREFLOOP_SCREENSHOTS") == "1":
        target = REPO / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path


@pytest.fixture
def rater_email(committed_engine: Engine) -> Iterator[str]:
    """A rater whose campaign and comparisons each test adds."""
    from sqlalchemy.orm import Session

    from tests.factories import make_user

    with Session(committed_engine) as session, session.begin():
        email = make_user(session).email
    yield email

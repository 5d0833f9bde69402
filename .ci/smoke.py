"""What a newcomer and the web image run, checked on a base-only install (no extras).

1. `make demo` into a fresh virtualenv and a fresh SQLite file: /healthz, /readyz and /login
   answer, and the rater whose login `make demo` printed logs in and sees a comparison.
2. The Dockerfile's web image, as far as it can be checked without a Docker engine: only the
   paths its COPY lines name, installed by its own `pip install` line into that base-only
   environment, migrated by docker-compose's `migrate` command on PostgreSQL, then its CMD served
   in production mode (host and port swapped for loopback and a free port) and its HEALTHCHECK run.

`.ci/run` calls this through `make test`; `make smoke` runs it alone. It needs only the standard
library and PyYAML (from the dev extra), so it runs under the project's full virtualenv while the
app under test runs in the base one.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
START_TIMEOUT_S = 300  # the first `make demo` builds its virtualenv before it serves


class SmokeFailure(Exception):
    """A check a newcomer would notice failed."""


class Server:
    """A command run in its own process group; its output is kept for the failure message."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str]):
        self.output: list[str] = []
        self.proc = subprocess.Popen(  # noqa: S603 - our own commands
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def tail(self) -> str:
        return "\n".join(self.output[-40:])

    def wait_until_serving(self, base: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SmokeFailure(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise SmokeFailure(f"nothing served {base}/healthz in {START_TIMEOUT_S} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the full virtualenv or any PREFLOOP_ setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFLOOP_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    return {**env, **extra}


def fetch(
    opener: urllib.request.OpenerDirector, url: str, data: dict[str, str] | None = None
) -> tuple[int, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def expect(status: int, body: str, what: str, *, contains: str = "") -> None:
    if status != 200 or contains not in body:
        raise SmokeFailure(
            f"{what}: HTTP {status}, expected 200{f' with {contains!r}' if contains else ''}:\n{body[:600]}"
        )


def check_pages(base: str) -> urllib.request.OpenerDirector:
    """/healthz, /readyz and /login answer 200; returns an opener with a cookie jar."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    for path in ("/healthz", "/readyz"):
        expect(*fetch(opener, base + path), f"GET {path}")
    expect(*fetch(opener, base + "/login"), "GET /login", contains='name="csrf_token"')
    return opener


def log_in_and_see_a_comparison(
    base: str, opener: urllib.request.OpenerDirector, email: str, password: str
) -> None:
    """The printed rater logs in through the form and lands on a comparison to rate."""
    _, page = fetch(opener, base + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not token:
        raise SmokeFailure("the login page has no CSRF token")
    status, body = fetch(
        opener,
        base + "/login",
        {"email": email, "password": password, "csrf_token": token.group(1)},
    )
    expect(status, body, f"logging in as {email}", contains='id="workspace"')
    if "Response A" not in body or "Nothing left to rate" in body:
        raise SmokeFailure(f"after login the demo rater sees no comparison:\n{body[:600]}")


def demo_logins(output: list[str]) -> dict[str, tuple[str, str]]:
    logins = {}
    for line in output:
        match = re.match(r"\s*demo (\w+): (\S+) / (\S+)\s*$", line)
        if match:
            logins[match.group(1)] = (match.group(2), match.group(3))
    return logins


def check_make_demo(tmp: Path) -> Path:
    """`make demo` on a fresh venv and SQLite file serves, and its printed rater can rate."""
    port = free_port()
    venv = tmp / "venv"
    env = base_env(PREFLOOP_DATABASE_URL=f"sqlite:///{tmp / 'demo.db'}")
    argv = ["make", "--no-print-directory", "demo", f"VENV={venv}", f"DEMO_PORT={port}"]
    print(f"smoke: {shlex.join(argv)} (fresh venv, fresh SQLite file)", flush=True)
    server = Server(argv, cwd=ROOT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        server.wait_until_serving(base)
        opener = check_pages(base)
        logins = demo_logins(server.output)
        if "rater" not in logins:
            raise SmokeFailure(f"`make demo` printed no demo rater login:\n{server.tail()}")
        log_in_and_see_a_comparison(base, opener, *logins["rater"])
        installed = subprocess.run(  # noqa: S603
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.util as u; print(bool(u.find_spec('torch')))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if installed != "False":
            raise SmokeFailure("the demo virtualenv has torch: it is not a base-only install")
    except SmokeFailure as failure:
        raise SmokeFailure(f"{failure}\n--- make demo output ---\n{server.tail()}") from None
    finally:
        server.stop()
    print(
        "smoke: make demo serves; /healthz, /readyz, /login answer; the demo rater sees a comparison"
    )
    return venv


def dockerfile() -> tuple[list[str], list[str], list[str], list[str], dict[str, str]]:
    """COPY sources, pip install argv, CMD, HEALTHCHECK argv and ENV of the web image."""
    text = (ROOT / "Dockerfile").read_text()
    copies = [src for line in re.findall(r"^COPY (.+)$", text, re.M) for src in line.split()[:-1]]
    run = re.search(r"^RUN (.*pip install [^&]*)", text, re.M)
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    health = re.search(r"^HEALTHCHECK CMD (.+)$", text, re.M)
    if not (copies and run and cmd and health):
        raise SmokeFailure("the Dockerfile lost its COPY, RUN pip install, CMD or HEALTHCHECK line")
    pip = shlex.split(run.group(1).strip())
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(re.findall(r"^ENV (.+)$", text, re.M))))
    return copies, pip, json.loads(cmd.group(1)), shlex.split(health.group(1)), env


def psql(sql: str, *, check: bool) -> None:
    """Run one statement as the test admin (libpq takes the URL without the driver name)."""
    subprocess.run(["psql", ADMIN_URL.replace("+psycopg", ""), "-qc", sql], check=check)  # noqa: S603, S607


def swap_listen_address(argv: list[str], port: int) -> list[str]:
    """The image listens on 0.0.0.0:8000; here it gets loopback and a free port."""
    out = list(argv)
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
        if flag in out:
            out[out.index(flag) + 1] = value
    return out


def check_web_image(tmp: Path, venv: Path) -> None:
    """The image's files, install line, migration and CMD work on the base-only install."""
    copies, pip, cmd, health, image_env = dockerfile()
    if pip[:2] != ["pip", "install"] or any("[" in arg for arg in pip):
        raise SmokeFailure(f"the web image should install the base package only, not {pip}")
    workdir = tmp / "image"
    workdir.mkdir()
    for src in copies:
        (shutil.copytree if (ROOT / src).is_dir() else shutil.copy2)(ROOT / src, workdir / src)
    bin_dir = venv / "bin"
    subprocess.run([str(bin_dir / "pip"), *pip[1:], "--quiet"], cwd=workdir, check=True)  # noqa: S603
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    if compose["web"]["command"] != cmd:
        raise SmokeFailure(
            f"docker-compose's web command {compose['web']['command']} is not the image's CMD {cmd}"
        )

    db_name = f"prefloop_smoke_{secrets.token_hex(5)}"
    psql(f'CREATE DATABASE "{db_name}"', check=True)
    env = base_env(
        **image_env,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        PREFLOOP_ENV="production",
        PREFLOOP_SECRET_KEY=secrets.token_urlsafe(48),
        PREFLOOP_DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}",
    )
    port = free_port()
    server = None
    try:
        migrate = compose["migrate"]["command"]
        subprocess.run(migrate, cwd=workdir, env=env, check=True)  # noqa: S603
        argv = swap_listen_address(cmd, port)
        print(f"smoke: the web image's CMD {shlex.join(argv)} (production, PostgreSQL)", flush=True)
        server = Server(argv, cwd=workdir, env=env)
        base = f"http://127.0.0.1:{port}"
        server.wait_until_serving(base)
        check_pages(base)
        probe = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in health]
        subprocess.run(probe, cwd=workdir, env=env, check=True, timeout=30)  # noqa: S603
    except (SmokeFailure, subprocess.CalledProcessError) as failure:
        raise SmokeFailure(
            f"{failure}\n--- server output ---\n{server.tail() if server else ''}"
        ) from None
    finally:
        if server:
            server.stop()
        psql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)', check=False)
    print(
        "smoke: the web image's files, install, migration, CMD and HEALTHCHECK work without extras"
    )


def main() -> int:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="prefloop-smoke-"))
    try:
        venv = check_make_demo(tmp)
        check_web_image(tmp, venv)
    except SmokeFailure as failure:
        print(f"smoke: FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"smoke: passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

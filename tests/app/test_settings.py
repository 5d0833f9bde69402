"""Settings: read from PREFLOOP_ variables, and no production start with the default secret."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import DEFAULT_SECRET_KEY, Settings


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_ENV", "production")
    monkeypatch.delenv("PREFLOOP_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="PREFLOOP_SECRET_KEY"):
        Settings(_env_file=None)


@pytest.mark.parametrize("env", ["demo", "development", "test"])
def test_local_modes_accept_the_default_secret(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("PREFLOOP_ENV", env)
    assert Settings(_env_file=None).secret_key == DEFAULT_SECRET_KEY


def test_values_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_ENV", "production")
    monkeypatch.setenv("PREFLOOP_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("PREFLOOP_DATABASE_URL", "postgresql+psycopg://u@db/prefloop")
    monkeypatch.setenv("PREFLOOP_LEASE_MINUTES", "30")
    settings = Settings(_env_file=None)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.lease_minutes == 30
    assert not settings.is_sqlite


def test_nonsense_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_LEASE_MINUTES", "0")
    with pytest.raises(ValidationError, match="lease_minutes"):
        Settings(_env_file=None)
    monkeypatch.setenv("PREFLOOP_LEASE_MINUTES", "20")
    monkeypatch.setenv("PREFLOOP_ENV", "staging")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)

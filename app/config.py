"""Settings: read from the environment (prefix PREFLOOP_) or `.env`, in this one place."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"  # noqa: S105 - refused in production

Environment = Literal["production", "development", "demo", "test"]


class Settings(BaseSettings):
    """Every setting prefloop reads; see README 'Configuration'."""

    model_config = SettingsConfigDict(env_prefix="PREFLOOP_", env_file=".env", extra="ignore")

    env: Environment = Field(
        "production", description="demo/development/test allow the default key."
    )
    database_url: str = Field("sqlite:///./prefloop.db", description="SQLAlchemy URL.")
    secret_key: str = Field(
        DEFAULT_SECRET_KEY, description="Signs session cookies and CSRF tokens."
    )
    lease_minutes: int = Field(20, ge=1, le=24 * 60, description="How long an assignment is held.")
    session_max_age_hours: int = Field(12, ge=1, description="A login lasts this long.")
    max_failed_logins: int = Field(5, ge=1, description="Failures before an account is locked.")
    lockout_minutes: int = Field(15, ge=1, description="How long a locked account waits.")
    db_pool_size: int = Field(
        10, ge=1, le=200, description="Connections per server process; requests wait for one."
    )
    db_pool_timeout: float = Field(
        30, gt=0, description="Seconds a session outside a request waits for a connection."
    )
    threads: int = Field(
        40, ge=1, le=1000, description="Threadpool size per server process (sync routes)."
    )
    model_dir: str = Field("./var/models", description="Where workers keep checkpoints.")

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "PREFLOOP_SECRET_KEY is the built-in default; set a long random value "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))') "
                "or set PREFLOOP_ENV=development for local work"
            )
        if self.db_pool_size > self.threads:
            raise ValueError("PREFLOOP_DB_POOL_SIZE must not exceed PREFLOOP_THREADS")
        if len(self.secret_key) < 16:
            raise ValueError("PREFLOOP_SECRET_KEY must be at least 16 characters")
        return self

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded demo database."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

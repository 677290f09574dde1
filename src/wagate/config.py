"""Settings from `WAGATE_*` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything configurable; every field is a `WAGATE_<NAME>` environment variable."""

    model_config = SettingsConfigDict(env_prefix="WAGATE_", extra="ignore")

    data_dir: Path = Field(default=Path("wagate-data"), description="SQLite file, sandbox state")
    database_url: str | None = Field(default=None, description="default: SQLite in data_dir")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(default=None, description="how Meta reaches this server")
    sandbox: str = Field(default="auto", description="auto (on without real channels), on, off")
    graph_api_version: str = "v23.0"
    lease_seconds: float = 60.0
    dispatch_batch: int = 100
    dispatch_concurrency: int = 256
    max_attempts: int = 12
    retry_base_seconds: float = Field(
        default=1.0, description="first retry's backoff ceiling; each doubles it"
    )
    send_timeout: float = 15.0
    sqlite_synchronous: str = Field(default="FULL", description="FULL survives power loss")
    redis_url: str | None = Field(default=None, description="shared pacing for many workers")
    pair_interval: float = Field(
        default=6.0, description="seconds per message to one recipient, sustained; 0 = off"
    )
    pair_burst: int = Field(default=45, description="messages to one recipient at once")
    pace_headroom: float = Field(
        default=0.96, gt=0, le=1, description="share of a number's rate that sends are paced at"
    )
    callback_timeout: float = Field(
        default=10.0, gt=0, description="seconds to wait for a callback receiver's answer"
    )
    callback_retry_base: float = Field(
        default=30.0, gt=0, description="first callback retry within this; each later one doubles"
    )
    callback_retry_max: float = Field(
        default=3600.0, gt=0, description="longest wait between two callback attempts"
    )
    callback_give_up_after: float = Field(
        default=25 * 3600.0, ge=0, description="seconds a callback is retried, then a dead letter"
    )
    # One account's callbacks go out at about account_concurrency ÷ its receiver's answer time
    # (64 ÷ 50 ms: 1,280 a second): a campaign at 1,000 messages/s brings 3,000 statuses/s.
    callback_concurrency: int = Field(default=256, ge=1, description="callbacks in flight at once")
    callback_account_concurrency: int = Field(
        default=64, ge=1, description="callbacks in flight at once to one account's receiver"
    )
    sandbox_status_delay: float = Field(
        default=1.5,
        ge=0,
        description="seconds between the sandbox's sent, delivered and read: slow enough to watch",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text for people, json for a log pipeline (one object a line)"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="info: a line per request, send outcome, start and stop"
    )

    # What one client may hold of the HTTP server (wagate.http_server).
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="open connections at most; at the cap the longest-idle one is closed",
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="seconds a client has to send a request's headers"
    )
    body_timeout: float = Field(
        default=60.0, gt=0, description="seconds a client has to send a request's whole body"
    )
    keep_alive_timeout: float = Field(
        default=75.0, gt=0, description="seconds an idle kept-alive connection stays open"
    )

    egress_allow: str = Field(
        default="",
        description="comma-separated CIDRs that outbound requests may reach although private, "
        "loopback or otherwise refused (e.g. 127.0.0.0/8,10.1.0.0/16); see wagate.egress",
    )

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("egress_allow")
    @classmethod
    def _egress_ranges(cls, value: str) -> str:
        from wagate.egress.policy import parse_ranges

        parse_ranges(value)  # a typo fails at start-up, not at the first send
        return value

    # Retention (SPEC §10): days each kind of row is kept; 0 keeps it for ever. The per-kind
    # settings default to retention_days.
    retention_days: float = Field(default=30.0, ge=0, description="default for every kind")
    retention_messages_days: float | None = Field(
        default=None, ge=0, description="finished messages, their events and status callbacks"
    )
    retention_inbound_days: float | None = Field(default=None, ge=0)
    retention_callbacks_days: float | None = Field(default=None, ge=0)
    retention_media_days: float | None = Field(
        default=None, ge=0, description="stored files: uploads, fetched URLs, inbound media"
    )
    retention_webhooks_days: float = Field(default=7.0, ge=0, description="raw webhook bodies")
    retention_parked_days: float = Field(
        default=1.0, ge=0, description="status reports for a wamid never recorded"
    )
    retention_interval: float = Field(
        default=60.0, gt=0, description="seconds between two pruning rounds"
    )
    retention_batch: int = Field(
        default=200, ge=1, description="messages (or rows of other kinds) per transaction"
    )

    def retention(self, setting: str) -> float:
        """Days for a per-kind retention setting (its own value, or retention_days)."""
        value = getattr(self, setting)
        return self.retention_days if value is None else float(value)

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wagate.db').resolve()}"

    @property
    def local_url(self) -> str:
        """How this machine reaches the server (the sandbox and the CLI use it)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """How Meta reaches the server (webhook URL shown to users)."""
        return (self.public_url or self.local_url).rstrip("/")


def normalize_database_url(url: str) -> str:
    """Accept the URLs people paste (postgresql://, sqlite:///) and pick our async drivers."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    return url

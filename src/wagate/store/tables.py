"""The schema, as SQLAlchemy Core tables. Migrations in `migrations/` create exactly this."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the database (the same on every dialect)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL on SQLite
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    # On SQLite a datetime is stored as text, in SQLAlchemy's format for DateTime
    # ("2026-12-05 16:05:00.000000", which sorts as it should). SQLAlchemy would convert in two
    # steps per value (this class's, then its DateTime's %-formatting); every row of the hot
    # paths carries several, so on SQLite one step does both, with the same text.

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("api_rate", Integer, nullable=False, server_default="1000"),
    Column("created_at", UTCDateTime, nullable=False),
    # Where wagate POSTs message.status / message.inbound events, and the HMAC key that signs
    # them (it signs, so it cannot be a hash: sealed by wagate.secret_box instead).
    Column("callback_url", Text),
    Column("callback_secret", Text),
)

# One value sealed with the secret key: a process started with another key finds out at start
# (and says so) instead of failing at its first send (wagate.store.secret_rows).
secret_key_check = Table(
    "secret_key_check",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sealed", Text, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)

channels = Table(
    "channels",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("phone_number_id", String(64), nullable=False, unique=True),
    Column("waba_id", String(64), nullable=False, index=True),
    Column("display_phone_number", String(32)),
    # Sealed by wagate.secret_box (SPEC §10).
    Column("access_token", Text, nullable=False),
    Column("app_secret", Text, nullable=False),
    Column("verify_token", String(200), nullable=False),
    Column("graph_url", String(500), nullable=False),
    Column("mps", Integer, nullable=False, server_default="80"),
    Column("is_default", Boolean, nullable=False, server_default="0"),
    Column("is_sandbox", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("channel_id", String(40), ForeignKey("channels.id"), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("type", String(16), nullable=False),
    Column("content", JSON, nullable=False),
    Column("reply_to", String(128)),
    Column("metadata", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("wamid", String(255), unique=True),
    Column("error_code", String(64)),
    Column("meta_code", BigInteger),
    Column("error_title", Text),
    Column("error_details", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_messages_account_id_id", "account_id", "id"),
    Index("ix_messages_account_phone_id", "account_id", "phone", "id"),
)

# The transactional outbox: a row per message still to be handed to Meta. Inserted in the same
# transaction as the message; deleted in the same transaction that records Meta's answer.
outbox = Table(
    "outbox",
    metadata,
    Column("message_id", String(40), ForeignKey("messages.id"), primary_key=True),
    Column("channel_id", String(40), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Index("ix_outbox_lane", "channel_id", "phone", "message_id"),
)

# The outbox's lanes (one business number, one recipient) that have messages queued, each with
# its head: the one message of the lane that may be claimed. `due_at` is when the head may be
# claimed: its own `available_at`, or, while it is leased, the end of the lease (so a crashed
# worker's heads come back by themselves). A claim reads the next N rows of ix_outbox_lanes_due
# and nothing else, however many recipients are waiting. Kept in step with the outbox by
# store/outbox_lanes.py: a row is added when a message is accepted into an empty lane, and moved
# on (or removed) when its head leaves or is put back for a retry.
outbox_lanes = Table(
    "outbox_lanes",
    metadata,
    Column("channel_id", String(40), primary_key=True),
    Column("phone", String(20), primary_key=True),
    Column("head_id", String(40), nullable=False, unique=True),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_outbox_lanes_due", "due_at", "head_id"),
)

message_events = Table(
    "message_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(40), ForeignKey("messages.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("meta_code", BigInteger),
    Column("error_title", Text),
    Column("error_details", Text),
    UniqueConstraint("message_id", "status", name="uq_message_events_message_status"),
)

# Status reports whose wamid we do not know yet: Meta's webhook can beat our own commit of the
# send's answer. They are applied when the wamid is recorded by the channel that reported them
# (another channel's report never touches the message), and dropped after a day unmatched.
pending_statuses = Table(
    "pending_statuses",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("wamid", String(255), nullable=False, index=True),
    Column("channel_id", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("errors", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False, index=True),
    UniqueConstraint(
        "wamid", "channel_id", "status", name="uq_pending_statuses_wamid_channel_status"
    ),
)

conversations = Table(
    "conversations",
    metadata,
    Column("channel_id", String(40), ForeignKey("channels.id"), primary_key=True),
    Column("phone", String(20), primary_key=True),
    Column("account_id", String(40), nullable=False),
    Column("last_inbound_at", UTCDateTime, nullable=False),
    Column("profile_name", String(200)),
    Column("updated_at", UTCDateTime, nullable=False),
)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", String(40), ForeignKey("channels.id"), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("wamid", String(255), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text),
    Column("button_id", String(256)),
    Column("button_payload", Text),
    Column("context_wamid", String(255)),
    # Meta's webhook message object as received, minus from/id/timestamp: `type`, the type's
    # sub-object (`location`, `contacts`, `image`, ...), `context`, `referral`... (0008).
    Column("content", JSON),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel_id", "wamid", name="uq_inbound_messages_channel_wamid"),
    Index("ix_inbound_channel_phone", "channel_id", "phone", "id"),
)

# Every signed webhook POST, stored raw before we answer 200, so nothing Meta tells us is lost.
webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Column("inbound_count", Integer, nullable=False),
    Column("status_count", Integer, nullable=False),
)

# Message templates as synced from each channel's WhatsApp Business Account.
templates = Table(
    "templates",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("channel_id", String(40), ForeignKey("channels.id"), nullable=False),
    Column("meta_id", String(64)),
    Column("name", String(512), nullable=False),
    Column("language", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("category", String(32), nullable=False),
    Column("parameter_format", String(16), nullable=False, server_default="POSITIONAL"),
    Column("components", JSON, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
    UniqueConstraint("channel_id", "name", "language", name="uq_templates_channel_name_language"),
    Index("ix_templates_account_name", "account_id", "name"),
)

# The first answer to each Idempotency-Key, per account, kept 24 hours. Written in the same
# transaction as the message it created, so a key never exists without its message.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
    # Retention deletes a message's keys with it.
    Index("ix_idempotency_keys_message_id", "message_id"),
)

# The callbacks outbox and its log: one row per event for the business, written in the
# transaction that caused it. `seq` orders the events of a lane (one message, or one customer's
# inbound messages); a lane's next event waits until the one before is delivered or dead.
callback_deliveries = Table(
    "callback_deliveries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("type", String(32), nullable=False),
    Column("lane", String(160), nullable=False),
    Column("message_id", String(40)),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("lease_owner", String(64)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Index("ix_callback_deliveries_due", "status", "available_at"),
    Index("ix_callback_deliveries_account", "account_id", "status", "seq"),
    # A lane's next pending event, whatever the lane has delivered before.
    Index(
        "ix_callback_deliveries_pending_lane",
        "lane",
        "seq",
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
    # A message's status callbacks, deleted with it by retention (inbound events have none).
    Index(
        "ix_callback_deliveries_message_id",
        "message_id",
        sqlite_where=text("message_id IS NOT NULL"),
        postgresql_where=text("message_id IS NOT NULL"),
    ),
)

# Events queued but not yet placed in their lane: written with the event (a plain insert, so the
# transactions that queue events never wait for each other or for the sender), and moved into
# callback_lanes and callback_accounts by the sender's next claim (store/callback_lanes.py).
callback_arrivals = Table(
    "callback_arrivals",
    metadata,
    Column("seq", Integer, primary_key=True),
    Column("lane", String(160), nullable=False),
    Column("account_id", String(40), nullable=False),
)

# The callback lanes with pending events, each with its head (the one event of the lane that may
# be sent) and when it may be: the head's `available_at`, or the end of its lease.
callback_lanes = Table(
    "callback_lanes",
    metadata,
    Column("lane", String(160), primary_key=True),
    Column("account_id", String(40), nullable=False),
    Column("head_seq", Integer, nullable=False, unique=True),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_callback_lanes_account_due", "account_id", "due_at", "head_seq"),
)

# Per account with callbacks waiting: when a claim should next look at it (`due_at`; NULL when
# none of its lanes is waiting), and its receiver's run of failures. A failed attempt backs off
# the whole account (one probe per retry, not one attempt per waiting event).
callback_accounts = Table(
    "callback_accounts",
    metadata,
    Column("account_id", String(40), ForeignKey("accounts.id"), primary_key=True),
    Column("due_at", UTCDateTime),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("failed_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Index("ix_callback_accounts_due", "due_at"),
)

# Dashboard users: each belongs to one account and sees only its data.
users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False, server_default="0"),
    Column("failed_sign_ins", Integer, nullable=False, server_default="0"),
    Column("blocked_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_sign_in_at", UTCDateTime),
)

# Dashboard sessions: the cookie holds a random token; only its SHA-256 is stored here, with the
# session's CSRF token. Signing out deletes the row.
dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(40), ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# Pacing shared through the database (PostgreSQL without Redis): per business number, the
# theoretical arrival time of its next send (GCRA, microseconds of the database server's clock)
# and the throttle penalty after Meta's 130429. See dispatch/pacing_db.py.
channel_pacing = Table(
    "channel_pacing",
    metadata,
    Column("channel_id", String(40), primary_key=True),
    Column("tat_us", BigInteger, nullable=False),
    Column("factor", Float),
    Column("since_us", BigInteger),
)

# Every running dispatcher's heartbeat, so that each knows how many share the channels' rates
# (the safe share while Redis is unreachable) and a second one on a SQLite file is refused.
workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
)

# Files the business uploaded (`POST /v1/media`), fetched from a `media_url`, or downloaded from
# a customer's message. Their bytes are behind the media store (store/media_files.py): files in
# the data folder, or `media_chunks` on PostgreSQL. An inbound file's row is also its download
# job: `state` pending until it is stored (or failed, with the reason), `available_at` its next
# try.
media = Table(
    "media",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("account_id", String(40), ForeignKey("accounts.id"), nullable=False),
    Column("media_type", String(16), nullable=False),
    Column("mime_type", String(128)),
    Column("size", BigInteger),
    Column("sha256", String(64)),
    Column("filename", String(255)),
    Column("origin", String(16), nullable=False),  # upload, url, inbound
    Column("state", String(16), nullable=False),  # ready, pending, failed
    Column("error_code", String(64)),
    Column("error", Text),
    Column("channel_id", String(40)),  # inbound: the number it came to
    Column("meta_media_id", String(128)),  # inbound: Meta's id to download it by
    Column("wamid", String(255)),  # inbound: the customer's message that carried it
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("available_at", UTCDateTime),  # inbound while pending: the next download try
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_media_pending", "state", "available_at"),
    Index("ix_media_channel_wamid", "channel_id", "wamid"),
)

# The bytes of stored files on PostgreSQL, in chunks of at most 1 MiB (streamed, never whole).
media_chunks = Table(
    "media_chunks",
    metadata,
    Column("media_id", String(40), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
)

# Meta's media ids for content already uploaded through a channel, reused for the same bytes
# (Meta keeps an uploaded file 30 days).
media_uploads = Table(
    "media_uploads",
    metadata,
    Column("channel_id", String(40), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("meta_media_id", String(128), nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=False, index=True),
)

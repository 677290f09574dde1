"""Prometheus metrics, defined once, in wagate's own registry.

Everything lives in a `Metrics` object with its own `CollectorRegistry` (never the global
default), so that several apps or tests in one process do not collide: tests make their own
`Metrics()`; the server uses the module-level `METRICS` through the helper functions below,
and `wagate.api.metrics` serves it at `GET /metrics`.

Series (label values are a fixed set, or Meta's numeric codes, never free text):

    wagate_queue_depth                               gauge: rows in the outbox
    wagate_sends_total{outcome, meta_code}           Cloud API sends: accepted / retried / failed
    wagate_send_seconds                              histogram: Cloud API call latency
    wagate_webhook_lag_seconds                       histogram: Meta's event timestamp → applied
    wagate_retries_total{reason}                     sends scheduled for another attempt
    wagate_webhooks_total{result}                    webhook POSTs: accepted / invalid_*
    wagate_messages_accepted_total                   messages stored and queued (the 202s)
    wagate_api_requests_total{status}                API responses by HTTP status
    wagate_callbacks_total{outcome}                  callback POSTs to businesses: delivered /
                                                     retried / failed (given up: a dead letter)
    wagate_callback_queue_depth                      gauge: callback events still to deliver
    wagate_claim_seconds                             histogram: one outbox claim (its whole
                                                     transaction, commit included)

Where they are recorded:

    dispatcher   `record_send` after each Cloud API call (with its latency), `observe_claim`
                 for each claim, `record_retry`
                 when a message is put back for another attempt, `set_queue_depth` if it
                 knows the outbox size (the `/metrics` handler can also count it when scraped)
    callbacks    `record_callback` after each POST to a business, `set_callback_queue_depth`
                 from the sender's periodic count of pending events
    API          `record_accepted` after a send's transaction commits, `record_webhook` for
                 every `POST /webhooks/whatsapp`, `record_api_request` (or the
                 `ApiRequestMetrics` middleware in `wagate.api.metrics`) for every answer
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Final, Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

# The `*_created` timestamp series double the number of series and tell Prometheus nothing it
# uses from the text format; leave them out (a process-wide prometheus_client setting).
disable_created_metrics()  # type: ignore[no-untyped-call]

SendOutcome = Literal["accepted", "retried", "failed"]
CallbackOutcome = Literal["delivered", "retried", "failed"]
WebhookResult = Literal["accepted", "invalid_signature", "invalid_body", "too_large"]
RetryReason = Literal[
    "throttled",  # Meta asked us to slow down (130429, 131056, 80007, 4)
    "transient",  # Meta or the network failed this time (5xx, 1, 2, 131000, ...)
    "timeout",  # no answer within the send timeout
    "connection_error",  # could not reach the Graph API
    "lease_expired",  # our lease ran out before the send (another dispatcher may have it)
    "pair_rate",  # postponed, unsent, to keep to Meta's pair rate for the recipient
]

SEND_OUTCOMES: Final = frozenset({"accepted", "retried", "failed"})
CALLBACK_OUTCOMES: Final = frozenset({"delivered", "retried", "failed"})
WEBHOOK_RESULTS: Final = frozenset({"accepted", "invalid_signature", "invalid_body", "too_large"})
RETRY_REASONS: Final = frozenset(
    {"throttled", "transient", "timeout", "connection_error", "lease_expired", "pair_rate"}
)
OTHER: Final = "other"
"""The label value for anything outside the fixed sets, so a caller's bug cannot blow up the
number of series."""
NO_CODE: Final = "none"
"""`meta_code` when Meta gave no code (success, a timeout, a non-JSON answer)."""

# Cloud API round trips: a few ms against the sandbox, ~100-500 ms against Meta, up to the
# send timeout (15 s by default).
SEND_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
# Meta's timestamps have one-second resolution, and Meta retries webhooks for days.
LAG_BUCKETS: Final = (
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    6 * 3600.0,
    24 * 3600.0,
    3 * 24 * 3600.0,
)

# A claim reads a few rows by index and commits: around a millisecond on SQLite (its fsync
# included), a few on PostgreSQL. Fine steps below 10 ms, so a benchmark can tell p50 from p99.
CLAIM_BUCKETS: Final = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
)

QueueDepthProbe = Callable[[], Awaitable[int]]
"""Counts the outbox (awaited by `GET /metrics` when it is scraped)."""


def meta_code_label(meta_code: int | None) -> str:
    """Meta's numeric code as a label value: "none" without one, "other" if it is not a plausible
    Meta code (a non-negative integer of at most 7 digits)."""
    if meta_code is None:
        return NO_CODE
    if isinstance(meta_code, bool) or not isinstance(meta_code, int):
        return OTHER
    return str(meta_code) if 0 <= meta_code <= 9_999_999 else OTHER


def status_label(status: int) -> str:
    """An HTTP status as a label value ("other" outside 100-599)."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return OTHER
    return str(status)


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


class Metrics:
    """All of wagate's metrics, registered in `registry` (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.queue_depth = Gauge(
            "wagate_queue_depth",
            "Messages in the outbox (queued, being sent, or waiting for a retry).",
            registry=r,
        )
        self.sends = Counter(
            "wagate_sends",
            "Cloud API send calls by outcome (accepted, retried, failed) and Meta's error code "
            '("none" when Meta gave none).',
            ["outcome", "meta_code"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "wagate_send_seconds",
            "Latency of one Cloud API send call, in seconds.",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.webhook_lag = Histogram(
            "wagate_webhook_lag_seconds",
            "Seconds between an event's timestamp at Meta and when wagate applied it.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "wagate_retries",
            "Messages put back in the queue for another attempt, by reason.",
            ["reason"],
            registry=r,
        )
        self.webhooks = Counter(
            "wagate_webhooks",
            "Webhook POSTs from Meta by result (accepted, invalid_signature, invalid_body).",
            ["result"],
            registry=r,
        )
        self.accepted = Counter(
            "wagate_messages_accepted",
            "Messages stored and queued (answered 202).",
            registry=r,
        )
        self.api_requests = Counter(
            "wagate_api_requests",
            "API responses by HTTP status.",
            ["status"],
            registry=r,
        )
        self.callbacks = Counter(
            "wagate_callbacks",
            "Callback POSTs to businesses by outcome (delivered, retried, failed: given up and "
            "kept as a dead letter).",
            ["outcome"],
            registry=r,
        )
        self.callback_queue_depth = Gauge(
            "wagate_callback_queue_depth",
            "Callback events waiting to be delivered (due, retrying, or behind one in their lane).",
            registry=r,
        )

        self.claim_seconds = Histogram(
            "wagate_claim_seconds",
            "Time of one outbox claim by the dispatcher (its transaction, commit included).",
            buckets=CLAIM_BUCKETS,
            registry=r,
        )

    def set_queue_depth(self, n: int) -> None:
        self.queue_depth.set(max(0, n))

    def observe_claim(self, seconds: float) -> None:
        self.claim_seconds.observe(max(0.0, seconds))

    def record_send(self, outcome: SendOutcome, meta_code: int | None, seconds: float) -> None:
        """One Cloud API call: `accepted` (Meta returned a wamid), `retried` (a temporary error;
        the message will be sent again) or `failed` (a permanent error, or retries given up)."""
        self.sends.labels(_bounded(outcome, SEND_OUTCOMES), meta_code_label(meta_code)).inc()
        self.send_seconds.observe(max(0.0, seconds))

    def record_retry(self, reason: RetryReason) -> None:
        self.retries.labels(_bounded(reason, RETRY_REASONS)).inc()

    def record_webhook(self, result: WebhookResult, lags: Iterable[float] = ()) -> None:
        """One webhook POST, and for an accepted one the lag of each event it carried (clock
        skew can make a lag negative; it is counted as 0)."""
        self.webhooks.labels(_bounded(result, WEBHOOK_RESULTS)).inc()
        for lag in lags:
            self.webhook_lag.observe(max(0.0, lag))

    def record_accepted(self, n: int = 1) -> None:
        if n > 0:
            self.accepted.inc(n)

    def record_api_request(self, status: int) -> None:
        self.api_requests.labels(status_label(status)).inc()

    def record_callback(self, outcome: CallbackOutcome) -> None:
        self.callbacks.labels(_bounded(outcome, CALLBACK_OUTCOMES)).inc()

    def set_callback_queue_depth(self, n: int) -> None:
        self.callback_queue_depth.set(max(0, n))


METRICS: Final = Metrics()
"""The process's metrics, served by `GET /metrics`."""
REGISTRY: Final = METRICS.registry


def retry_reason(retry_class: str, meta_code: int | None, title: str = "") -> RetryReason:
    """The `reason` label for a send that will be retried: `retry_class` is
    `wagate.domain.meta_errors.RetryClass` ("throttled" or "transient"); a `CloudApiError` with
    no Meta code and the title "timeout" or "connection error" says what it was."""
    if meta_code is None and title == "timeout":
        return "timeout"
    if meta_code is None and title == "connection error":
        return "connection_error"
    return "throttled" if retry_class == "throttled" else "transient"


def lags_since(timestamps: Iterable[datetime | int | float], now: datetime) -> list[float]:
    """Seconds from each event time (a datetime, or Meta's epoch seconds) to `now`."""
    current = now.timestamp()
    return [current - (t.timestamp() if isinstance(t, datetime) else float(t)) for t in timestamps]


# The helpers the dispatcher and the API call (on the process's METRICS).


def set_queue_depth(n: int) -> None:
    METRICS.set_queue_depth(n)


def record_send(outcome: SendOutcome, meta_code: int | None, seconds: float) -> None:
    METRICS.record_send(outcome, meta_code, seconds)


def record_retry(reason: RetryReason) -> None:
    METRICS.record_retry(reason)


def observe_claim(seconds: float) -> None:
    METRICS.observe_claim(seconds)


def record_webhook(result: WebhookResult, lags: Iterable[float] = ()) -> None:
    METRICS.record_webhook(result, lags)


def record_accepted(n: int = 1) -> None:
    METRICS.record_accepted(n)


def record_api_request(status: int) -> None:
    METRICS.record_api_request(status)


def record_callback(outcome: CallbackOutcome) -> None:
    METRICS.record_callback(outcome)


def set_callback_queue_depth(n: int) -> None:
    METRICS.set_callback_queue_depth(n)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> None:
    """Serve `METRICS` on its own port from a background thread: for `wagate worker`, which
    has no HTTP API of its own to mount `/metrics` on."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)

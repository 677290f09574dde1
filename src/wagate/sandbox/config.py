"""Settings of the sandbox, the built-in simulator of Meta's WhatsApp Cloud API."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class SandboxConfig:
    """One simulated business phone number and the knobs of the simulation.

    The first six fields are the values a real channel is configured with; the sandbox accepts
    `access_token` as the Bearer token of its Graph API and signs every webhook it POSTs to
    `webhook_url` with `app_secret`, exactly as Meta does.
    """

    phone_number_id: str
    waba_id: str
    display_phone_number: str
    access_token: str
    app_secret: str
    webhook_url: str
    state_path: Path | None = None
    """SQLite file keeping windows, messages and pending webhooks across restarts (None: memory)."""
    status_delay: float = 0.5
    """Seconds between accepted → sent → delivered → read."""
    read_receipts: bool = True
    """Whether the simulated customer reads messages (a `read` status follows `delivered`)."""
    verified_name: str = "wagate Sandbox"
    """The business name shown by `GET /graph/{version}/{phone_number_id}`."""

    # Webhook delivery, modelled on Meta's: retried with exponential backoff on a network error
    # or a non-2xx answer, then given up.
    webhook_timeout: float = 10.0
    """Seconds to wait for the receiver's answer to one webhook POST."""
    webhook_retry_initial: float = 1.0
    """Seconds before the first retry; each later one waits twice as long as the previous."""
    webhook_retry_max: float = 60.0
    """Longest wait between two attempts."""
    webhook_retry_for: float = 600.0
    """Give a webhook up this many seconds after it was first due."""
    webhook_batch_size: int = 1000
    """Most status updates in one webhook POST (Meta batches up to 1,000)."""
    webhook_batch_wait: float = 0.05
    """Seconds to let due statuses gather into one POST; each status is late by at most this."""
    webhook_concurrency: int = 4
    """Webhook POSTs in flight at once (statuses of one message still arrive in order)."""
    reply_timeout: float = 5.0
    """Seconds `POST /customer/reply` waits for the receiver before answering."""

    # Meta's limits; None (the default) disables a limit.
    throughput_limit: int | None = None
    """Messages per second the number may send (Meta: 80 by default, up to 1,000); over it the
    send is refused with error 130429."""
    throughput_tolerance: float = 0.08
    """How far over `throughput_limit` (a fraction) any one-second window may go before 130429:
    arrivals are timestamped when the sandbox's event loop reads them, so a stall here bunches
    sends that were spaced correctly (see `Faults.check_limits`)."""
    pair_rate_limit: float | None = None
    """Shortest average interval in seconds between two messages to one recipient (Meta: about
    6), with bursts of `pair_rate_burst`; over it the send is refused with error 131056."""
    pair_rate_burst: int = 45

    # Fault injection (see wagate.sandbox.faults): the same objects `POST /faults` takes.
    faults: list[dict[str, Any]] = field(default_factory=list)
    """Faults in place from the start, e.g. `{"code": 130429, "rate": 0.1}`."""
    fault_seed: int | None = None
    """Seeds the faults' random draws (rates, latency jitter), so that runs repeat; None: random."""

"""What a webhook POST costs before it is trusted: a few byte scans and at most a small, fixed
number of HMACs, whoever sends it and however many channels there are.

* `signature_digest` reads `X-Hub-Signature-256` (`sha256=<64 hex>`): without a well-formed
  one a request is refused before its body is even read.
* `updates_bound` counts `"timestamp"` keys: every message and status Meta sends has exactly
  one (string values cannot hold the quoted key: their quotes are escaped), so a body with more
  than `MAX_UPDATES` of them is over Meta's batch size and refused before it is parsed.
* `candidate_numbers` / `candidate_wabas` find, with a bounded regex scan, which business
  numbers (`metadata.phone_number_id`) or accounts (`entry[].id`) the body says it is about, so
  that the shared `/webhooks/whatsapp` computes the HMAC for those channels' app secrets only
  (at most `MAX_SECRETS`), not for every channel's.
* `signed_by` computes those HMACs, off the event loop for a big body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Iterable

MAX_UPDATES = 1000
"""Meta batches at most this many messages and statuses in one POST."""
MAX_CANDIDATE_IDS = 8
"""Distinct numbers (or WABAs) looked up from one body: a real batch names one app's few."""
MAX_SECRETS = 4
"""Distinct app secrets tried on one body: a real batch is signed by one app."""
BIG_BODY = 256 * 1024
"""Bodies from this size on are hashed in a worker thread (hashlib releases the GIL)."""

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_PHONE_NUMBER_ID = re.compile(rb'"phone_number_id"\s*:\s*"?([0-9]{1,64})')
# Digit-only ids: the WABA's (entry[].id); message ids (wamid.…) are not digits.
_ENTRY_ID = re.compile(rb'"id"\s*:\s*"?([0-9]{1,64})')


def signature_digest(header: str | None) -> str | None:
    """The lowercase hex digest of a well-formed `X-Hub-Signature-256`, else None."""
    if not header:
        return None
    found = _SIGNATURE.fullmatch(header.strip())
    return found.group(1).lower() if found else None


def updates_bound(raw: bytes) -> int:
    """At least as many as the messages and statuses in the body (see the module docstring)."""
    return raw.count(b'"timestamp"')


def _first_ids(pattern: re.Pattern[bytes], raw: bytes) -> list[str]:
    found: list[str] = []
    for match in pattern.finditer(raw):
        value = match.group(1).decode("ascii")
        if value not in found:
            found.append(value)
            if len(found) == MAX_CANDIDATE_IDS:
                break
    return found


def candidate_numbers(raw: bytes) -> list[str]:
    return _first_ids(_PHONE_NUMBER_ID, raw)


def candidate_wabas(raw: bytes) -> list[str]:
    return _first_ids(_ENTRY_ID, raw)


def _signed(secrets: list[str], raw: bytes, digest: str) -> set[str]:
    return {
        s
        for s in secrets
        if hmac.compare_digest(hmac.new(s.encode(), raw, hashlib.sha256).hexdigest(), digest)
    }


async def signed_by(secrets: Iterable[str], raw: bytes, digest: str) -> set[str]:
    """Which of the first `MAX_SECRETS` distinct non-empty `secrets` signed `raw`."""
    distinct = list(dict.fromkeys(s for s in secrets if s))[:MAX_SECRETS]
    if not distinct:
        return set()
    if len(raw) >= BIG_BODY:
        return await asyncio.to_thread(_signed, distinct, raw, digest)
    return _signed(distinct, raw, digest)

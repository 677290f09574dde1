"""Identifiers: a prefix and a time-ordered suffix with random bits (newest sorts last)."""

from __future__ import annotations

import random
import threading
import time

_lock = threading.Lock()
# Ids are not secrets (every read checks the account), so a fast generator seeded from the OS
# will do; `secrets` would cost a system call per message.
_random = random.Random()
_last_ms = 0
_last_seq = 0


def new_id(prefix: str) -> str:
    """`<prefix>_` + 12 hex digits of milliseconds + 10 hex digits that only increase within a
    millisecond, so ids made by one process sort in the order they were made."""
    global _last_ms, _last_seq
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_seq += 1 + _random.getrandbits(8)
        else:
            _last_seq = _random.getrandbits(38)
        _last_ms = now_ms
        return f"{prefix}_{now_ms:012x}{_last_seq:010x}"

"""The 24-hour customer service window."""

from __future__ import annotations

from datetime import datetime, timedelta

WINDOW = timedelta(hours=24)


def window_expires_at(last_inbound_at: datetime | None) -> datetime | None:
    """When the window closes, counted from when the customer sent their last message."""
    return None if last_inbound_at is None else last_inbound_at + WINDOW


def window_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    expires = window_expires_at(last_inbound_at)
    return expires is not None and now < expires

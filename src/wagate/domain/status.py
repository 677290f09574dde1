"""The message status lifecycle: statuses only move forward."""

from __future__ import annotations

from wagate.domain.models import Status

_RANK = {
    Status.QUEUED: 0,
    Status.ACCEPTED: 1,
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
}

# Meta reports `failed` for messages it could not deliver; once delivered or read, a message
# cannot fail any more, and a failed message never comes back.
_CAN_FAIL_FROM = frozenset({Status.QUEUED, Status.ACCEPTED, Status.SENT})


def advances(current: Status, new: Status) -> bool:
    """Whether `new` moves a message at `current` forward (late and repeated reports do not)."""
    if current is Status.FAILED:
        return False
    if new is Status.FAILED:
        return current in _CAN_FAIL_FROM
    return _RANK[new] > _RANK[current]


def lifecycle_rank(status: Status) -> int:
    """Order of statuses in a message's life, for sorting its history."""
    return 5 if status is Status.FAILED else _RANK[status]

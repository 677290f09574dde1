"""For receivers of wagate's callbacks: check that a request came from wagate, just now.

    from wagate.callbacks import verify_signature

    if not verify_signature(secret, raw_body, request.headers.get("X-Wagate-Signature")):
        return 400  # not from wagate, or a replay

Verify the raw bytes of the body, before parsing them. (Receivers without wagate installed can
use the dozen lines of standard-library Python in the README.)
"""

from __future__ import annotations

import time

from wagate.domain.callbacks import DEFAULT_TOLERANCE, SIGNATURE_HEADER, sign, signature_problem

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "sign", "signature_problem", "verify_signature"]


def verify_signature(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether `header` (the `X-Wagate-Signature` value) signs exactly `body` with `secret`, at
    a time within `tolerance` seconds of `now` (default: this machine's clock)."""
    problem = signature_problem(
        secret, body, header, now=time.time() if now is None else now, tolerance=tolerance
    )
    return problem is None

"""wagate: a self-hosted WhatsApp Business messaging gateway.

`from wagate import Client` gives the Python client for its HTTP API (see wagate.client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from wagate.client import ApiError, AsyncClient, Client

__all__ = ["ApiError", "AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    # Lazily, so that the server's own modules do not pay for importing the client.
    if name in __all__:
        from wagate import client

        return getattr(client, name)
    raise AttributeError(f"module 'wagate' has no attribute {name!r}")

"""The sandbox: a simulator of Meta's WhatsApp Cloud API (same wire format, signed webhooks,
statuses after a delay, the 24-hour window rule, limits and fault injection), so that wagate can
be tried, and tested, with no Meta account."""

from wagate.sandbox.app import create_sandbox_app
from wagate.sandbox.config import SandboxConfig
from wagate.sandbox.service import Sandbox

__all__ = ["Sandbox", "SandboxConfig", "create_sandbox_app"]

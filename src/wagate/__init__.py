"""wagate: a self-hosted WhatsApp Business messaging gateway."""

__version__ = "0.1.0"

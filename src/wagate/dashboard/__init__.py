"""The web dashboard, served by wagate itself at `/`: server-rendered Jinja2 pages with htmx
(vendored in `static/`), for the people who run the gateway and debug its messages."""

from wagate.dashboard.app import install_dashboard

__all__ = ["install_dashboard"]

"""What every dashboard page shares: the signed-in user, CSRF checks, rendering, error pages.

Sessions: the `wagate_session` cookie holds a random token; the database keeps only its SHA-256
(store/users.py). The cookie is HttpOnly, SameSite=Lax, and Secure when the request came over
https (uvicorn takes the scheme from X-Forwarded-Proto when the proxy's address is in
FORWARDED_ALLOW_IPS, 127.0.0.1 by default). CSRF: each session has a token that every POST must
carry, as the `csrf_token` form field or the `X-CSRF-Token` header (htmx sends it, see
base.html); the sign-in form, which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from wagate import __version__
from wagate.api.deps import Services
from wagate.api.request_log import note_account
from wagate.dashboard.flash import Flashes
from wagate.dashboard.formatting import whatsapp_html
from wagate.dashboard.rules import phone_digits
from wagate.dashboard.signin import PasswordHashing, SignInThrottle
from wagate.store import users as user_store
from wagate.store.users import SignedInUser

SESSION_COOKIE = "wagate_session"
SIGN_IN_COOKIE = "wagate_sign_in"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Pages hold an account's data: never cache them, never frame them, load nothing from
# elsewhere (htmx is served from /static, there are no inline scripts or styles).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class DashboardError(Exception):
    """An error page: a status, a title and a sentence saying what to do."""

    status = 400
    title = "Something is wrong with this request"

    def __init__(self, message: str, *, title: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status


class PageNotFound(DashboardError):
    status = 404
    title = "Not found"


class CsrfRefused(DashboardError):
    status = 403
    title = "This form has expired"

    def __init__(self) -> None:
        super().__init__(
            "The form was sent without its security token, or from another page. Go back, "
            "reload the page and try again."
        )


class AdminsOnly(DashboardError):
    """A member (not an admin) tried to add or change channels, users or callback settings
    (SPEC §10): nothing was changed."""

    status = 403
    title = "Admins only"

    def __init__(self, doing: str = "change this") -> None:
        super().__init__(
            f"Only an admin of this account can {doing}. Ask an admin (Settings → Users lists "
            "them) to do it, or to make you an admin."
        )


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page and comes back afterwards."""


def _when(value: Any, style: str = "full") -> str:
    """A time as people read it, always in UTC (the date filters are in UTC too)."""
    if value is None or value == "":
        return ""
    moment = _moment(value).astimezone(UTC)
    if style == "time":
        return moment.strftime("%H:%M:%S")
    if style == "short":
        return moment.strftime("%d %b %H:%M")
    return moment.strftime("%d %b %Y, %H:%M:%S UTC")


def _moment(value: datetime | str | float) -> datetime:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return value


def _iso(value: Any) -> str:
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return str(value or "")


def _duration(delta: timedelta | float) -> str:
    seconds = int(delta.total_seconds() if isinstance(delta, timedelta) else delta)
    if seconds <= 0:
        return "0 min"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{max(minutes, 1)} min" if seconds >= 60 else f"{seconds} s"


def new_form_key() -> str:
    """An idempotency key for one drawing of a send form: submitting it twice sends once."""
    return "dashboard-" + secrets.token_urlsafe(18)


templates = Environment(
    loader=PackageLoader("wagate.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(wa=whatsapp_html, when=_when, iso=_iso, digits=phone_digits)
templates.filters["duration"] = _duration
templates.globals.update(version=__version__, quote=quote, new_form_key=new_form_key)


@dataclass
class Dashboard:
    """The dashboard's share of the app's state (`app.state.dashboard`)."""

    services: Services
    sandbox: Any = None  # the in-process wagate.sandbox.Sandbox, when there is one
    sign_in_throttle: SignInThrottle = field(default_factory=SignInThrottle)
    hashing: PasswordHashing = field(default_factory=PasswordHashing)
    flashes: Flashes = field(default_factory=Flashes)


def dashboard_of(request: Request) -> Dashboard:
    dashboard: Dashboard = request.app.state.dashboard
    return dashboard


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    user: SignedInUser | None = getattr(request.state, "user", None)
    html = templates.get_template(template).render(
        request=request,
        user=user,
        csrf_token=user.csrf_token if user else "",
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def see_other(url: str) -> RedirectResponse:
    """After a POST: go to `url` with a GET (so a reload does not send the form again)."""
    return RedirectResponse(url, status_code=303)


def safe_next(target: object) -> str:
    """Where to go after signing in: a path on this server only, never another site."""
    if (
        isinstance(target, str)
        and target.startswith("/")
        and not target.startswith(("//", "/\\"))
        and not any(c in target for c in "\r\n")
    ):
        return target
    return "/messages"


async def signed_in(request: Request) -> SignedInUser:
    token = request.cookies.get(SESSION_COOKIE)
    user = None
    if token:
        services = dashboard_of(request).services
        async with services.engine.connect() as conn:
            user = await user_store.session_user(conn, token=token, now=services.clock.now())
    if user is None:
        raise SignInRequired()
    note_account(user.account_id)
    request.state.user = user
    return user


SignedIn = Annotated[SignedInUser, Depends(signed_in)]


async def read_form(request: Request) -> FormData:
    """The form; `BodyLimit` (api/body_limit.py) refuses one over its route's limit (256 KiB,
    declared or streamed) with a 413, shown as the "Too large" page."""
    return await request.form(max_files=0)


def csrf_matches(expected: str, sent: object) -> bool:
    return (
        bool(expected)
        and isinstance(sent, str)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


@dataclass(frozen=True)
class Posted:
    """A POSTed form whose CSRF token matched the signed-in user's session."""

    user: SignedInUser
    form: FormData

    def text(self, name: str) -> str:
        value = self.form.get(name)
        return value if isinstance(value, str) else ""


async def posted(request: Request, user: SignedIn) -> Posted:
    form = await read_form(request)
    sent = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_matches(user.csrf_token, sent):
        raise CsrfRefused()
    return Posted(user, form)


PostedForm = Annotated[Posted, Depends(posted)]


async def admin_signed_in(user: SignedIn) -> SignedInUser:
    """A signed-in admin, for the pages of forms only admins may send."""
    if not user.is_admin:
        raise AdminsOnly("add or change channels, users and callback settings")
    return user


async def admin_posted(form: PostedForm) -> Posted:
    """A POSTed form (its CSRF token checked first) from an admin; a member gets 403."""
    if not form.user.is_admin:
        raise AdminsOnly("add or change channels, users and callback settings")
    return form


AdminSignedIn = Annotated[SignedInUser, Depends(admin_signed_in)]
AdminForm = Annotated[Posted, Depends(admin_posted)]


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        # A form sent after the session ended: come back to the page it was on.
        page = urlsplit(request.headers.get("referer", ""))
        same_site = page.netloc == request.url.netloc
        target = page.path + (f"?{page.query}" if page.query else "") if same_site else ""
    url = "/sign-in?next=" + quote(safe_next(target), safe="")
    if request.headers.get("hx-request"):
        # htmx (a live fragment) must not swap the sign-in page into a table cell.
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)

"""Server-rendered pages: Jinja2 templates, the session cookie, redirects and same-origin form posts."""

import functools
import re
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from echo_control import auth, origins
from echo_control.errors import EchoError, Forbidden, Unprocessable
from echo_control.http import make_resolver, unstorable
from echo_control.identity import Caller, caller_from_context

SESSION_COOKIE = "echo_session"
CLERK_SESSION_COOKIE = "__session"  # what Clerk's frontend sets on the app's domain
HTML = "text/html; charset=utf-8"
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; form-action 'self' https://checkout.stripe.com "
    "https://connect.stripe.com; frame-ancestors 'none'",  # form-action also covers where a form's 303 goes
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = lambda value, places=2: f"${float(value):,.{places}f}" if value is not None else "–"
    env.filters["cents"] = lambda value: f"${value / 100:,.2f}"
    env.filters["thousands"] = lambda value: f"{int(value):,}"
    return env


def render(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    body = _environment().get_template(template).render(**context)
    return Response(status_code=status, content_type=HTML, body=body, headers={**SECURITY_HEADERS, **(headers or {})})


def redirect(location: str, cookie: str | None = None) -> Response:
    headers: dict[str, Any] = {"Location": location, "Cache-Control": "no-store"}
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return Response(status_code=303, content_type=HTML, body="", headers=headers)


def session_cookie(token: str, *, secure: bool, max_age: int = auth.SESSION_SECONDS) -> str:
    return f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}" + (
        "; Secure" if secure else ""
    )


def cleared_cookie(*, secure: bool) -> str:
    return session_cookie("", secure=secure, max_age=0)


def is_https(app: APIGatewayRestResolver) -> bool:
    """Whether the browser reached us over HTTPS: then the session cookie is Secure."""
    return origins.is_https(app.current_event.raw_event)


def base_url(app: APIGatewayRestResolver) -> str:
    """This deployment's public base URL for the current request (see origins)."""
    return origins.public_base_url(app.current_event.raw_event)


def page_caller(app: APIGatewayRestResolver) -> Caller | None:
    """The signed-in person from the session cookie, verified exactly as the authorizer verifies tokens."""
    cookies = SimpleCookie()
    try:
        cookies.load(app.current_event.headers.get("cookie") or "")
    except Exception:  # a malformed Cookie header is just no session
        return None
    morsel = cookies.get(SESSION_COOKIE) or cookies.get(CLERK_SESSION_COOKIE)
    if morsel is None or not morsel.value:
        return None
    try:
        who = caller_from_context(auth.authenticate(f"Bearer {morsel.value}"))
    except EchoError:
        return None
    return who if who.auth_type == "user" else None


def page_resolver() -> APIGatewayRestResolver:
    """A resolver whose errors are pages a person can read, not JSON."""
    app = make_resolver()

    @app.exception_handler(EchoError)
    def _page_error(exc: EchoError) -> Response:
        if isinstance(exc, SignInRequired):
            return redirect("/sign-in?" + urlencode({"next": exc.next_path}))
        return render("error.html", status=exc.status, error=exc, user=None)

    return app


def signed_in(app: APIGatewayRestResolver) -> Caller:
    """The page's person, or a redirect to sign-in (raised, so handlers stay straight-line)."""
    who = page_caller(app)
    if who is None:
        raise SignInRequired(app.current_event.path)
    return who


class SignInRequired(EchoError):
    status, code = 401, "sign_in_required"

    def __init__(self, next_path: str) -> None:
        super().__init__("Please sign in")
        self.next_path = next_path


def user_view(who: Caller) -> dict[str, str]:
    return {"email": who.email, "role": who.role}


def check_same_origin(app: APIGatewayRestResolver) -> None:
    """Form posts must come from our own pages (with SameSite=Lax cookies, this closes CSRF)."""
    headers = app.current_event.headers
    source = headers.get("origin") or headers.get("referer")
    host = headers.get("host")
    if not source or not host or urlparse(source).netloc != host:
        raise Forbidden("Form posts must come from this site")


def form(app: APIGatewayRestResolver) -> dict[str, str]:
    """A same-origin form post's fields (empty optional fields dropped)."""
    from urllib.parse import parse_qs

    check_same_origin(app)
    body = app.current_event.decoded_body or ""
    if len(body) > MAX_FORM_BYTES:
        raise Unprocessable("The form is too large")
    fields = {k: v[-1] for k, v in parse_qs(body).items() if v[-1].strip()}
    if any(unstorable(text) for pair in fields.items() for text in pair):
        raise Unprocessable("Form fields must not contain NUL characters")
    return fields


def parse_form[M: BaseModel](model: type[M], fields: dict[str, Any]) -> M:
    """Validates a form with the API's own models; the first problem becomes a readable message."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise Unprocessable(f"{where}: {first.get('msg', 'invalid')}") from None


# A path on this site: one leading slash, then no backslash, whitespace or control character (no open redirect,
# no header injection through a decoded CR/LF).
LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\\x00-\x1f\x7f]{0,300}")


def local_path(value: str | None, default: str) -> str:
    """Only same-site paths may be redirect targets (no open redirects)."""
    return value if value and LOCAL_PATH.fullmatch(value) else default


def day_bars(by_day: list[Any], since: Any, until: Any, width: int = 720, height: int = 160) -> dict[str, Any]:
    """Geometry for an SVG bar chart of cost per day over [since, until] (days without calls drawn empty)."""
    from datetime import timedelta

    cost_by_day = {d.day: d.cost for d in by_day}
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    peak = max(cost_by_day.values(), default=0) or 1
    slot = width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        cost = cost_by_day.get(day, 0)
        bar_height = float(cost / peak) * (height - 20) if cost else 0
        bars.append(
            {
                "x": round(i * slot + 1, 2),
                "y": round(height - bar_height, 2),
                "w": round(max(slot - 2, 1), 2),
                "h": round(bar_height, 2),
                "day": day.isoformat(),
                "cost": cost,
            }
        )
    return {"bars": bars, "width": width, "height": height, "peak": peak, "first": days[0], "last": days[-1]}


def app_page(who: Caller, app_id: str) -> dict[str, Any]:
    """What the app page shows: details, 30-day usage with its chart, keys, recent transactions."""
    from echo_control import analytics, apps

    details = apps.app_details(who.user_id, app_id)
    usage = analytics.app_usage(who.user_id, app_id, None, None)
    return {
        "active": "dashboard",
        "user": user_view(who),
        "app": details,
        "usage": usage,
        "chart": day_bars(usage.by_day, usage.since, usage.until),
        "keys": details.api_keys,
        "next_path": f"/apps/{details.id}",
    }

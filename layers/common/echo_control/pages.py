"""Server-rendered pages: Jinja2 templates, the session cookie, redirects and same-origin form posts."""

import functools
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from echo_control import auth
from echo_control.errors import EchoError, Forbidden
from echo_control.http import Caller, caller_from_context

SESSION_COOKIE = "echo_session"
HTML = "text/html; charset=utf-8"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' "
    "'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
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


def session_cookie(token: str, max_age: int = auth.SESSION_SECONDS) -> str:
    return f"{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}"


def cleared_cookie() -> str:
    return f"{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"


def page_caller(app: APIGatewayRestResolver) -> Caller | None:
    """The signed-in person from the session cookie, verified exactly as the authorizer verifies tokens."""
    cookies = SimpleCookie()
    try:
        cookies.load(app.current_event.headers.get("cookie") or "")
    except Exception:  # a malformed Cookie header is just no session
        return None
    morsel = cookies.get(SESSION_COOKIE)
    if morsel is None or not morsel.value:
        return None
    try:
        who = caller_from_context(auth.authenticate(f"Bearer {morsel.value}"))
    except EchoError:
        return None
    return who if who.auth_type == "user" else None


def check_same_origin(app: APIGatewayRestResolver) -> None:
    """Form posts must come from our own pages (with SameSite=Lax cookies, this closes CSRF)."""
    headers = app.current_event.headers
    source = headers.get("origin") or headers.get("referer")
    host = headers.get("host")
    if not source or not host or urlparse(source).netloc != host:
        raise Forbidden("Form posts must come from this site")


def form(app: APIGatewayRestResolver) -> dict[str, str]:
    from urllib.parse import parse_qs

    body = app.current_event.decoded_body or ""
    return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

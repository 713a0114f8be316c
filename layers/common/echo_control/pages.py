"""Server-rendered pages: Jinja2 templates, the session cookie, redirects and same-origin form posts."""

import base64
import contextlib
import functools
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from echo_control import auth, db, origins
from echo_control.errors import BadRequest, EchoError, Forbidden, NotFound, Unprocessable
from echo_control.http import make_resolver, request_base_path, unstorable
from echo_control.identity import Caller, caller_from_context
from echo_control.models import PATTERN_RULES, AmountError

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
    env.filters["usd"] = usd
    env.filters["cents"] = lambda value: usd(Decimal(value) / 100)
    env.filters["thousands"] = lambda value: f"{int(value):,}"
    env.filters["plain"] = lambda value: format(Decimal(value).normalize(), "f")  # a form field's amount: 20, 2.5
    env.globals["refill"] = lambda form, field, default="": default  # render_page's, after a refused form
    return env


def usd(value: Decimal | int | str | None, places: int | None = None) -> str:
    """The dashboard's one money format: $1 and above in dollars and cents ($1,234.50), below $1 to 4 significant
    digits without trailing zeros past the cents ($0.01325, $0.00036, $0.50), so a card never shows metering noise
    such as $79.50036. `places` fixes the decimals instead (a chart axis: one precision for all its ticks)."""
    if value is None:
        return "–"
    amount = Decimal(value)
    if places is None:
        if amount == 0 or abs(amount) >= 1:
            places = 2
        else:
            # 4 significant digits: the first one sits at 10**adjusted()
            places = max(2, 3 - abs(amount).adjusted())
            rounded = amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
            text = f"{abs(rounded):f}".rstrip("0")
            whole, _, fraction = text.partition(".")
            return f"{'-' if rounded < 0 else ''}${whole}.{fraction.ljust(2, '0')}"
    amount = amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"


def axis_places(step: Decimal) -> int:
    """Decimals an axis whose ticks are `step` apart needs, at least the cents: one precision for the whole axis."""
    return max(2, -step.normalize().as_tuple().exponent)  # type: ignore[operator]


def url(path: str) -> str:
    """A path on this site (`/apps/…`) as the browser must ask for it: under the base path the request came in on
    (`/prod` on an execute-api URL, a custom domain's mapping, or none; origins.base_path). Paths are kept without
    it everywhere else (`next`, `back`, return paths) and get it here, once: in `redirect`, and in templates as
    `{{ base }}` in front of every href, src and action."""
    return request_base_path() + path


def render(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    body = _environment().get_template(template).render(base=request_base_path(), **context)
    return Response(status_code=status, content_type=HTML, body=body, headers={**SECURITY_HEADERS, **(headers or {})})


def redirect(location: str, cookie: str | list[str] | None = None) -> Response:
    """A 303 to a path on this site (under the request's base path, see `url`) or to an absolute URL."""
    if location.startswith("/") and not location.startswith("//"):
        location = url(location)
    headers: dict[str, Any] = {"Location": location, "Cache-Control": "no-store"}
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return Response(status_code=303, content_type=HTML, body="", headers=headers)


def cookie(name: str, value: str, *, secure: bool, max_age: int) -> str:
    """A Set-Cookie value for the whole site (Path=/ also covers a stage path), out of scripts' reach."""
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}" + ("; Secure" if secure else "")


def form_may_lead_to(origin: str) -> dict[str, str]:
    """Headers letting this page's forms end at `origin`: browsers apply form-action to the redirect after a post."""
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {origin}")
    return {"Content-Security-Policy": policy}


def session_cookie(token: str, *, secure: bool, max_age: int = auth.SESSION_SECONDS) -> str:
    return cookie(SESSION_COOKIE, token, secure=secure, max_age=max_age)


def cleared_cookie(*, secure: bool) -> str:
    return session_cookie("", secure=secure, max_age=0)


def session_token(app: APIGatewayRestResolver) -> str | None:
    """The session token the browser sent: ours (`echo_session`), or Clerk's frontend's (`__session`)."""
    return cookie_value(app, SESSION_COOKIE, CLERK_SESSION_COOKIE)


def is_https(app: APIGatewayRestResolver) -> bool:
    """Whether the browser reached us over HTTPS: then the session cookie is Secure."""
    return origins.is_https(app.current_event.raw_event)


def base_url(app: APIGatewayRestResolver) -> str:
    """This deployment's public base URL for the current request (see origins)."""
    return origins.public_base_url(app.current_event.raw_event)


def cookie_value(app: APIGatewayRestResolver, *names: str) -> str | None:
    """The first of these cookies that the browser sent with a value."""
    cookies: SimpleCookie = SimpleCookie()
    try:
        cookies.load(app.current_event.headers.get("cookie") or "")
    except Exception:  # a malformed Cookie header carries nothing
        return None
    for name in names:
        if (morsel := cookies.get(name)) is not None and morsel.value:
            return morsel.value
    return None


def page_caller(app: APIGatewayRestResolver) -> Caller | None:
    """The signed-in person from the session cookie, verified exactly as the authorizer verifies tokens."""
    token = session_token(app)
    if token is None:
        return None
    try:
        who = caller_from_context(auth.authenticate(f"Bearer {token}"))
    except EchoError:
        return None
    return who if who.auth_type == "user" else None


def _secure(resolver: APIGatewayRestResolver) -> str:
    """`; Secure` when the request came over HTTPS (API Gateway says so in X-Forwarded-Proto)."""
    return "; Secure" if resolver.current_event.headers.get("x-forwarded-proto") == "https" else ""


FLASH_COOKIE = "echo_flash"
FLASH_SECONDS = 300


def leave_flash(resolver: APIGatewayRestResolver, /, **message: Any) -> str:
    """Stores a one-time message for the next page (post/redirect/get); returns the cookie that finds it.

    The message is encrypted with a fresh key that only the cookie holds, and deleted when first read, so a
    new API key is shown exactly once and never appears in a URL, a log line or the database in the clear."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    flash_id, key, nonce = uuid.uuid4(), AESGCM.generate_key(bit_length=256), secrets.token_bytes(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, json.dumps(message).encode(), flash_id.bytes)
    db.insert_flash(flash_id, sealed, FLASH_SECONDS)
    value = f"{flash_id.hex}.{base64.urlsafe_b64encode(key).decode().rstrip('=')}"
    return f"{FLASH_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={FLASH_SECONDS}{_secure(resolver)}"


def take_flash(app: APIGatewayRestResolver) -> dict[str, Any]:
    """The message a form post left for this page, if any; it is gone after this call."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    value = cookie_value(app, FLASH_COOKIE)
    if value is None:
        return {}
    try:
        raw_id, raw_key = value.split(".", 1)
        flash_id, key = uuid.UUID(hex=raw_id), base64.urlsafe_b64decode(raw_key + "=" * (-len(raw_key) % 4))
        sealed = db.take_flash(flash_id)
        if sealed is None:
            return {}
        message: dict[str, Any] = json.loads(AESGCM(key).decrypt(sealed[:12], sealed[12:], flash_id.bytes))
        return message
    except (ValueError, InvalidTag):  # a cookie we did not write: nothing to show
        return {}


def render_page(resolver: APIGatewayRestResolver, template: str, /, **context: Any) -> Response:
    """A page with the one-time message a form post left for it; its flash cookie is cleared."""
    if cookie_value(resolver, FLASH_COOKIE) is None:
        return render(template, **context)
    cleared = {"Set-Cookie": f"{FLASH_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{_secure(resolver)}"}
    flash = take_flash(resolver)
    refused = flash.pop("refused_form", None)  # the form that was refused, and what was typed into it
    if refused:
        context["refill"] = functools.partial(_refill, refused["form"], refused["values"])
    return render(template, headers=cleared, **{**context, **flash})


def _refill(refused_form: str, values: dict[str, str], form: str, field: str, default: str = "") -> str:
    """What the person typed into `form`'s `field` before it was refused, so they need not type it again."""
    return values.get(field, default) if form == refused_form else default


def at_notice(path: str) -> str:
    """`path` scrolled to the message a form post left: beside the form it is about when the page places it
    there (`notice_form`), else at the top; either way on screen, not above a long page's fold."""
    return path.split("#", 1)[0] + "#notice"


class FormRejected(EchoError):
    """A form's input was refused: the person goes back to the form's page, which says why."""

    status, code = 422, "form_rejected"

    def __init__(self, message: str, back: str, form: str, values: dict[str, str]) -> None:
        super().__init__(message)
        self.back, self.form, self.values = back, form, values


@contextlib.contextmanager
def form_errors(back: str, form: str, values: dict[str, str]) -> Iterator[None]:
    """Turns what a form's input can get wrong (4xx other than sign-in and forbidden) into a message on the
    page at `back`, shown inside that page with its navigation, instead of an error page; the page fills
    the form (named `form` in its template) in again with `values`."""
    kept = dict(values)  # as typed, before the handler takes fields out
    try:
        yield
    except (SignInRequired, Forbidden):
        raise
    except EchoError as exc:
        if exc.status >= 500:
            raise
        raise FormRejected(exc.message, back, form, kept) from exc


def page_resolver() -> APIGatewayRestResolver:
    """A resolver whose errors are pages a person can read, not JSON."""
    app = make_resolver()

    @app.exception_handler(EchoError)
    def _page_error(exc: EchoError) -> Response:
        if isinstance(exc, SignInRequired):
            return redirect("/sign-in?" + urlencode({"next": exc.next_path}))
        if isinstance(exc, FormRejected):
            refused = {"form": exc.form, "values": exc.values}
            flash = leave_flash(app, notice=exc.message, notice_kind="bad", notice_form=exc.form, refused_form=refused)
            return redirect(at_notice(exc.back), cookie=flash)
        return error_page(app, exc)

    @app.exception_handler(RequestValidationError)
    def _bad_address(exc: RequestValidationError) -> Response:  # an id or query value out of bounds
        return error_page(app, BadRequest("This address is not valid"))

    return app


def error_page(app: APIGatewayRestResolver, exc: EchoError) -> Response:
    """The error as a page, with the navigation of whoever is signed in."""
    who = page_caller(app)
    return render("error.html", status=exc.status, error=exc, user=user_view(who) if who else None)


def not_found_page(app: APIGatewayRestResolver) -> Response:
    return error_page(app, NotFound("There is no page at this address"))


def signed_in(app: APIGatewayRestResolver) -> Caller:
    """The page's person, or a redirect to sign-in (raised, so handlers stay straight-line)."""
    who = page_caller(app)
    if who is None:  # back to this very address afterwards, query included (a consent page's request)
        query = app.current_event.multi_value_query_string_parameters or {}
        raise SignInRequired(app.current_event.path + ("?" + urlencode(query, doseq=True) if query else ""))
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


def form(app: APIGatewayRestResolver, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A same-origin form post's fields (empty optional fields dropped)."""
    from urllib.parse import parse_qs

    check_same_origin(app)
    body = app.current_event.decoded_body or ""
    if len(body) > max_bytes:
        raise Unprocessable("The form is too large")
    fields = {k: v[-1] for k, v in parse_qs(body).items() if v[-1].strip()}
    if any(unstorable(text) for pair in fields.items() for text in pair):
        raise Unprocessable("Form fields must not contain NUL characters")
    return fields


# What the dashboard's forms call their fields, and what a valid value looks like where a pattern decides.
FIELD_LABELS = {
    "name": "Name",
    "description": "Description",
    "reason": "Reason",
    "email": "Email",
    "amount": "Amount",
    "markup": "Markup",
    "expiresAt": "Expiry date",
    "operation": "Credit or debit",
    "model": "Model",
    "allowedModels": "Allowed models",
    "overrides": "Prices",
    "inputPerMillion": "Input price",
    "outputPerMillion": "Output price",
    "cacheReadPerMillion": "Cache read price",
    "cacheWritePerMillion": "Cache write price",
    "spendLimit": "Spend limit",
    "limitPeriod": "Limit period",
    "acceptsCustomers": "Customers",
    "redirectUris": "Redirect URIs",
    "code": "Code",
    "maxUses": "Uses",
    "creditDays": "Days the credits last",
    "threshold": "Threshold",
    "monthlyLimit": "Monthly limit",
    "enabled": "Top up automatically",
}
# Amounts say their range through their type (models.AmountError); these fields need an example.
_MODEL_EXAMPLE = "a model name such as gpt-4o-mini (letters, digits and . _ : / @ + -)"
FIELD_EXAMPLES = {
    "email": "an email address such as you@example.com",
    "expiresAt": "a date such as 2027-01-01",
    "model": _MODEL_EXAMPLE,
    "allowedModels": _MODEL_EXAMPLE,
    "redirectUris": "https:// addresses (http:// only on localhost or 127.0.0.1), one per line, without # or *",
    "maxUses": "a whole number such as 100",
    "creditDays": "a whole number of days such as 30",
}


def form_problem(error: Any) -> str:
    """One validation error as a sentence for a person (the API's errors stay technical)."""
    # the innermost named field: ("overrides", 2, "inputPerMillion") is inputPerMillion, ("allowedModels", 3) the list
    field = next((str(part) for part in reversed(error.get("loc") or ()) if isinstance(part, str)), "")
    label = FIELD_LABELS.get(field, "This form")
    kind, limits = error.get("type", ""), error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and limits.get("min_length") == 1):
        return f"{label} is required."
    if kind == "string_too_short":
        return f"{label} needs at least {limits['min_length']} characters."
    if kind == "string_too_long":
        return f"{label} can be at most {limits['max_length']} characters."
    if isinstance(limits.get("error"), AmountError):
        return f"{label} must be {limits['error'].for_people}."
    if kind in ("value_error", "string_pattern_mismatch") and field in FIELD_EXAMPLES:
        return f"{label} must be {FIELD_EXAMPLES[field]}."
    if kind == "string_pattern_mismatch" and limits.get("pattern") in PATTERN_RULES:
        return f"{label} {PATTERN_RULES[limits['pattern']]}."
    if kind == "literal_error":
        return f"{label}: please choose one of the options."
    if kind == "too_long" and limits.get("max_length") is not None:
        return f"{label} can list at most {limits['max_length']}."
    if kind == "duplicate_model":
        return f"{label}: {error['msg']}."
    return f"{label} is not valid."


def parse_form[M: BaseModel](model: type[M], fields: dict[str, Any]) -> M:
    """Validates a form with the API's own models; the first problem becomes a sentence for a person."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise Unprocessable(form_problem(exc.errors()[0])) from None


# A path on this site: one leading slash, then no backslash, whitespace or control character (no open redirect,
# no header injection through a decoded CR/LF).
# 2,000 characters: an OAuth authorization request (client, redirect URI, PKCE challenge, state) comes back here.
MAX_LOCAL_PATH = 2000
LOCAL_PATH = re.compile(rf"/(?![/\\])[^\s\\\x00-\x1f\x7f]{{0,{MAX_LOCAL_PATH}}}")


def local_path(value: str | None, default: str) -> str:
    """Only same-site paths may be redirect targets (no open redirects)."""
    return value if value and LOCAL_PATH.fullmatch(value) else default


def nice_step(peak: Decimal, steps: int = 4) -> Decimal:
    """A round axis step (1, 2 or 5 times a power of ten) so that `steps` of them cover `peak`."""
    raw = peak / steps
    power = Decimal(1).scaleb(raw.adjusted())
    for factor in (1, 2, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10


def day_bars(
    by_day: list[Any], since: Any, until: Any, width: int = 720, height: int = 160, value: str = "cost"
) -> dict[str, Any]:
    """Geometry for an SVG bar chart of money per day (each day's `value`: cost, or earnings' amount) over
    [since, until] (days without calls drawn empty), with a y-axis of round values; labels are HTML beside the SVG
    so they stay readable when it shrinks."""
    from datetime import timedelta

    cost_by_day = {d.day: Decimal(getattr(d, value)) for d in by_day}
    days = [since + timedelta(days=i) for i in range((until - since).days + 1)]
    peak = max(cost_by_day.values(), default=Decimal(0))
    step = nice_step(peak) if peak > 0 else Decimal("0.01")
    top = step * max(Decimal(1), (peak / step).to_integral_value(ROUND_CEILING))  # the first tick at or above the peak
    slot = width / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        spent = cost_by_day.get(day, Decimal(0))
        bar_height = float(spent / top) * height
        bars.append(
            {
                "x": round(i * slot + 1, 2),
                "y": round(height - bar_height, 2),
                "w": round(max(slot - 2, 1), 2),
                "h": round(bar_height, 2),
                "day": day.isoformat(),
                "cost": spent,
            }
        )
    ticks = [
        {
            "value": step * i,
            "label": usd(step * i, axis_places(step)),
            "y": round(height - float(step * i / top) * height, 2),
        }
        for i in range(int(top / step) + 1)
    ]
    busiest = max(bars, key=lambda bar: bar["cost"]) if peak > 0 else None
    return {
        "bars": bars,
        "ticks": ticks,
        "width": width,
        "height": height,
        "peak": peak,
        "busiest": busiest,
        "total": sum(cost_by_day.values(), Decimal(0)),
        "first": days[0],
        "last": days[-1],
    }


def app_page(resolver: APIGatewayRestResolver, who: Caller, app_id: str) -> Response:
    """The app page: its owner's (usage chart, keys with their limits, prices, customers and the join link, recent
    transactions), or a customer's (the public view, their own keys, spend and calls on it). Someone the app would
    take as a customer is sent to its join page; anyone else gets the 404 page."""
    from echo_control import analytics, apps, keys, ledger

    app = apps.app_for_user(who.user_id, app_id)
    if app["relation"] == "open":
        return redirect(f"/join/{app['id']}")
    if app["relation"] == "customer":
        used = next((u for u in apps.apps_used(who.user_id) if u["id"] == app["id"]), {"calls": 0, "spent": 0})
        mine = [k for k in keys.list_keys(who.user_id).api_keys if k.echo_app_id == str(app["id"])]
        return render_page(
            resolver,
            "app_customer.html",
            active="dashboard",
            user=user_view(who),
            app=apps.public_view(app),
            used=used,
            keys=mine,
            recent=ledger.list_transactions(who.user_id, echo_app_id=app["id"], limit=20).transactions,
            next_path=f"/apps/{app['id']}",
        )
    details = apps.app_details(who.user_id, app_id)
    usage = analytics.app_usage(who.user_id, app_id, None, None)
    customers = apps.customers(who.user_id, app_id).customers
    customers_spent = sum((c.spent for c in customers), Decimal(0))
    return render_page(
        resolver,
        "app.html",
        active="dashboard",
        user=user_view(who),
        app=details,
        usage=usage,
        chart=day_bars(usage.by_day, usage.since, usage.until),
        keys=details.api_keys,
        prices=apps.app_prices(who.user_id, details.id),
        customers=customers,
        # the Cost card splits customers' spend from the owner's own; recent calls say who made them
        customers_spent=customers_spent,
        own_spent=(details.totals.cost if details.totals else Decimal(0)) - customers_spent,
        caller_emails={c.user_id: c.email for c in customers},
        owner_id=str(who.user_id),
        join_url=f"{base_url(resolver)}/join/{details.id}",
        next_path=f"/apps/{details.id}",
    )


def join_page(who: Caller, app_id: str, join_url: str) -> dict[str, Any]:
    """What the join page shows: the app's public view and how this person relates to it."""
    from echo_control import apps

    app = apps.app_for_user(who.user_id, app_id)
    return {"user": user_view(who), "app": apps.public_view(app), "relation": app["relation"], "join_url": join_url}


def earnings_page(who: Caller, app_id: str | None) -> dict[str, Any]:
    """What the earnings page shows: the account, a per-day chart of the last 30 days (every app, or `app_id`),
    each app's earnings, and the payouts."""
    from datetime import UTC, datetime, timedelta

    from echo_control import earnings, payouts

    account = earnings.earnings(who.user_id)
    until = datetime.now(UTC).date()
    since = until - timedelta(days=earnings.RECENT_DAYS - 1)
    selected = next((a for a in account.apps if a.echo_app_id == app_id), None) if app_id else None
    if app_id and selected is None:
        raise NotFound("Echo app not found")
    if selected is not None:
        by_day = earnings.app_earnings(who.user_id, selected.echo_app_id, since, until).by_day
    else:
        by_day = earnings.owner_by_day(who.user_id, since, until)
    suggested = format(account.available.quantize(Decimal("0.01"), ROUND_DOWN), "f")  # all of it, in whole cents
    return {
        "active": "earnings",
        "user": user_view(who),
        "account": account,
        "selected": selected,
        "by_day": by_day,
        "chart": day_bars(by_day, since, until, value="amount"),
        "payouts": payouts.list_payouts(who.user_id).payouts,
        "payout_key": str(uuid.uuid4()),  # one per page view: a double-submitted form pays once
        "suggested_payout": suggested if Decimal(suggested) >= account.minimum_payout else "",
    }


# --- the app page's prices forms ---------------------------------------------------------------------------

# An app's prices at their bounds (500 names of 200 characters) fit in the API's body limit, and so in this form.
MAX_PRICES_FORM_BYTES = 64 * 1024
PRICE_FIELDS = ("inputPerMillion", "outputPerMillion", "cacheReadPerMillion", "cacheWritePerMillion")


def edit_prices(who: Caller, app_id: str | uuid.UUID, fields: dict[str, str]) -> str:
    """Applies one of the app page's prices forms (field `action`) and says what changed:

    - `allowed`: `allow` is `all` (every model) or `listed`, the models in `allowedModels`, one per line;
    - `override`: sets the price of `model` (the four per-million prices; the cache ones optional);
    - `remove`: removes the price of `model`.
    Everything else of the app's prices stays; the result is validated exactly as the API's PUT."""
    from echo_control import apps, pricing
    from echo_control.models import AppPrices

    action = fields.get("action")
    if action not in ("allowed", "override", "remove"):
        raise Unprocessable("This form: please choose one of the options.")
    said = ""

    def edit(current: AppPrices) -> AppPrices:
        nonlocal said
        body = current.model_dump(mode="json")
        if action == "allowed":
            if fields.get("allow") not in ("all", "listed"):
                raise Unprocessable("Allowed models: please choose every model or the models listed.")
            names = re.split(r"[\s,]+", fields.get("allowedModels", "").strip())
            listed = [n for n in names if n]
            body["allowedModels"] = None if fields["allow"] == "all" else listed
            said = "Every model is allowed." if fields["allow"] == "all" else f"Models allowed: {len(listed)}."
        else:
            model = fields.get("model", "").strip()
            if not model:
                raise Unprocessable("Model is required.")
            key = pricing.model_key(model)
            kept = [o for o in body["overrides"] if pricing.model_key(o["model"]) != key]
            if action == "remove":
                if len(kept) == len(body["overrides"]):
                    raise Unprocessable(f"There is no price of your own for {model}.")
                said = f"{model} is priced from the price list again."
            else:
                kept.append({"model": model, **{name: fields[name] for name in PRICE_FIELDS if name in fields}})
                said = f"Your price for {model} is saved."
                allowed = body["allowedModels"]
                # a model only this price makes known (a fine-tune) cannot be allowed before it is priced: pricing it
                # allows it; a known model the app does not allow stays refused (apps.check_prices)
                unlisted = allowed is not None and key not in {pricing.model_key(m) for m in allowed}
                if unlisted and not pricing.is_priced(model):
                    body["allowedModels"] = [*allowed, model]
                    said = f"Your price for {model} is saved, and {model} is allowed."
            body["overrides"] = kept
        return parse_form(AppPrices, body)

    apps.edit_app_prices(who.user_id, app_id, edit)
    return said

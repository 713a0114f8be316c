"""The handler room's shared parts: a resolver with every error mapped once, the caller, and the entry point."""

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from typing import Annotated, Any

import psycopg
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body as Body
from aws_lambda_powertools.event_handler.openapi.params import Form as Form
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.openapi.params import Path as Path
from aws_lambda_powertools.logging import correlation_paths
from pydantic import BaseModel

from echo_control import config, db, idempotency, keys, origins
from echo_control.errors import (
    BadRequest,
    EchoError,
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    UnsupportedMediaType,
)
from echo_control.identity import Caller, caller_from_context
from echo_control.models import NO_NUL, PATTERN_RULES
from echo_control.observability import logger, metrics, tracer

# A function's app.py takes Response, Body, Form, Path and Query from here, not from Powertools: importing this
# layer first installs echo_control.deferred_imports, which keeps the resolvers a function never uses unimported.

JSON = "application/json"
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 64  # arrays and objects within each other; deeper is refused before any parser recurses

# OpenAPI security requirements of a route; the authorizer (template.yaml) is what enforces them.
SESSION: list[dict[str, list[str]]] = [{"session": []}]
API_KEY: list[dict[str, list[str]]] = [{"apiKey": []}]
SESSION_OR_API_KEY = SESSION + API_KEY

# ?userId= (kept from the seed): an admin acts for that user; anyone else naming another user gets 403.
ActingUserId = Annotated[
    str | None, Query(alias="userId", max_length=64, pattern=NO_NUL, description="Admins only: act for this user")
]

# The Idempotency-Key header of a money write (echo_control.idempotency says what it scopes and replays).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="Retries with the same key and request replay the first answer (Idempotent-Replayed: true)",
    ),
]


def error_body(code: str, message: str, details: Any = None) -> str:
    # The top-level message is for clients of the seed's era, which read errors as text (seed compatibility).
    return json.dumps({"error": {"code": code, "message": message, "details": details}, "message": message})


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        status_code=status, content_type=JSON, body=error_body(code, message, details), headers=headers or {}
    )


def json_response(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A model with a status other than 200; the resolver validates and serializes it."""
    return Response(status_code=status, content_type=JSON, body=model, headers=headers or {})


def created(outcome: idempotency.Outcome, status: int = 201) -> Response[dict[str, Any]]:
    """A money write's answer (201 unless the route says otherwise); a replay says so in Idempotent-Replayed."""
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    return Response(status_code=status, content_type=JSON, body=outcome.body, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: echoing the input back could leak a key or be huge.
    return [
        {
            "field": ".".join(str(part) for part in err.get("loc", ())[1:]) or str(err.get("loc", ("body",))[0]),
            "in": str(err.get("loc", ("body",))[0]),
            "message": _readable(err),
            "type": str(err.get("type", "invalid")),
        }
        for err in exc.errors()
    ]


def _readable(error: Any) -> str:
    """pydantic's message, except that a pattern is said in words (a regular expression helps no one)."""
    if error.get("type") == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern")
        if pattern in PATTERN_RULES:
            return f"String {PATTERN_RULES[pattern]}"
    return str(error.get("msg", "invalid"))


def json_body(text: str) -> Any:
    """A request body's JSON with numbers read exactly: money sent as a number keeps its decimal digits (-0 is 0)."""
    return json.loads(text, parse_float=_exact_number)


def _exact_number(text: str) -> Decimal:
    number = Decimal(text)
    return number if number else abs(number)


_base_path: ContextVar[str] = ContextVar("base_path", default="")


def request_base_path() -> str:
    """The base path of the request being answered (origins.base_path): `/prod`, a mapping's, or ""."""
    return _base_path.get()


class StagedResolver(APIGatewayRestResolver):
    """Routes by the path inside the deployment, whatever base path the request came in on: a custom domain's base
    path mapping, which API Gateway leaves in `path`, comes off first (the execute-api stage never is in it). While
    it answers, `request_base_path()` says what that base was, so pages can put it in front of their URLs."""

    def resolve(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        base = origins.base_path(event)
        path = event.get("path")
        if base and isinstance(path, str) and path.startswith(base + "/"):
            event = {**event, "path": path[len(base) :]}
        token = _base_path.set(base)
        try:
            return super().resolve(event, context)
        finally:
            _base_path.reset(token)


def make_resolver() -> APIGatewayRestResolver:
    app = StagedResolver(enable_validation=True, json_body_deserializer=json_body)

    @app.exception_handler(EchoError)
    def _echo_error(exc: EchoError) -> Response:
        headers = {}
        if isinstance(exc, TooManyRequests | ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        return error_response(exc.status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return error_response(400, "invalid_json", "The request body is not valid JSON", details)
        return error_response(422, "validation_error", "The request is not valid", details)

    @app.exception_handler(psycopg.OperationalError)
    def _database_down(exc: psycopg.OperationalError) -> Response:
        db.discard_connection()
        logger.warning("database unavailable", extra={"error": str(exc)})
        return error_response(
            503,
            "service_unavailable",
            "The database is unavailable; retry shortly",
            headers={"Retry-After": str(ServiceUnavailable.retry_after)},
        )

    @app.exception_handler(psycopg.errors.ForeignKeyViolation)
    def _names_nothing(exc: psycopg.errors.ForeignKeyViolation) -> Response:
        # The request names a row that does not exist: a caller removed after the authorizer let it in (or a
        # sample event's user in an empty database), or an id in the body. Nothing was written.
        logger.warning("reference to a missing row", extra={"constraint": exc.diag.constraint_name})
        return error_response(404, "not_found", "The caller or an object this request names does not exist")

    @app.exception_handler(psycopg.errors.DataError)
    def _bad_value(exc: psycopg.errors.DataError) -> Response:
        return error_response(422, "validation_error", "A value is out of the accepted range")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side")

    @app.not_found
    def _no_route(exc: Exception) -> Response:
        return error_response(404, "not_found", "No such route")

    return app


def caller(app: APIGatewayRestResolver) -> Caller:
    """The route's caller; an API key's request is also counted against the key's rate limit here."""
    who = caller_from_context((app.current_event.raw_event.get("requestContext") or {}).get("authorizer") or {})
    if who.auth_type == "apiKey":
        context = app.current_event.raw_event["requestContext"]["authorizer"]
        keys.check_rate(int(context.get("rateHits", 0)), int(context.get("rateRetryAfter", 60)))
    return who


def user_caller(app: APIGatewayRestResolver) -> Caller:
    """The caller of a management route, which takes a signed-in user, not an API key."""
    who = caller(app)
    if who.auth_type != "user":
        raise Forbidden("This route takes a user session, not an API key", code="user_session_required")
    return who


def key_caller(app: APIGatewayRestResolver) -> Caller:
    """The caller of a metering route, which takes an API key."""
    who = caller(app)
    if who.auth_type != "apiKey":
        raise Forbidden("This route takes an API key (Bearer echo_…)", code="api_key_required")
    return who


def screen_request(event: dict[str, Any], *, json_body: bool = True) -> dict[str, Any] | None:
    """Refuses what no handler should see; None lets the request on.

    Path and query values with NUL or lone surrogates (PostgreSQL text cannot hold them); and for JSON routes
    bodies over 64 KB, other content types, and JSON that parses ambiguously: duplicate keys, NaN/Infinity,
    numbers too long to be numbers, invalid UTF-8.
    """
    values = [*(event.get("pathParameters") or {}).values(), *(event.get("queryStringParameters") or {}).values()]
    if any(unstorable(value) for value in values if isinstance(value, str)):
        return _raw_error(400, "invalid_characters", "Path and query values must not contain NUL or lone surrogates")
    body = event.get("body")
    if not json_body or body is None or body == "":
        return None
    if len(body) > MAX_BODY_BYTES * (4 / 3 if event.get("isBase64Encoded") else 1):
        return _raw_error(413, "payload_too_large", f"The request body exceeds {MAX_BODY_BYTES} bytes")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = (headers.get("content-type") or JSON).split(";")[0].strip().lower()
    if content_type != JSON and not content_type.endswith("+json"):
        return _raw_error(415, "unsupported_media_type", "Send the body as application/json")
    try:
        text = base64.b64decode(body).decode("utf-8") if event.get("isBase64Encoded") else body
        if too_deep(text):
            return _raw_error(400, "invalid_json", f"JSON may nest arrays and objects {MAX_JSON_DEPTH} levels deep")
        parsed = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        # ValueError covers JSONDecodeError, duplicate keys, NaN and Python's limit on integer digits.
        return _raw_error(400, "invalid_json", "The request body is not valid JSON", str(exc)[:200])
    # NUL and lone surrogates parse from JSON escapes but cannot be stored.
    if any(unstorable(text) for text in _strings(parsed)):
        return _raw_error(400, "invalid_characters", "Strings must not contain NUL (\\u0000) or lone surrogates")
    return None


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` deep (brackets inside strings do not count).
    Parsers recurse once per level: thousands of levels would exhaust the stack (a RecursionError, a 500)."""
    if text.count("[") + text.count("{") <= limit:  # nearly every body: no scan
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def unstorable(value: str) -> bool:
    return "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate keys in an object")
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _raw_error(status: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON},
        "body": error_body(code, message, details),
        "isBase64Encoded": False,
    }


def entrypoint(app: APIGatewayRestResolver, *, json_body: bool = True) -> Callable[[dict, Any], dict]:
    """The function's lambda_handler: observability around a screened app.resolve (json_body=False: forms).

    Called while the function is imported: the settings are parsed here, so a wrong variable stops the cold
    start (config.InvalidConfiguration) instead of failing every request."""
    config.settings()

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
    @metrics.log_metrics(raise_on_empty_metrics=False)
    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict, context: Any) -> dict:
        if (rejected := screen_request(event, json_body=json_body)) is not None:
            return rejected
        return app.resolve(event, context)

    return lambda_handler


# --- Sign in with Echo: the token and revocation endpoints speak OAuth (RFC 6749 5.2), not our error shape -------

FORM = "application/x-www-form-urlencoded"
MAX_OAUTH_FORM_BYTES = 16 * 1024
OAUTH_ERRORS = ("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type")


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    body = json.dumps({"error": error, "error_description": description})
    return Response(status_code=status, content_type=JSON, body=body, headers={"Cache-Control": "no-store"})


def oauth_resolver() -> APIGatewayRestResolver:
    """A resolver whose refusals are OAuth errors: `{"error", "error_description"}`, 400."""
    app = make_resolver()

    @app.exception_handler(EchoError)
    def _oauth_refusal(exc: EchoError) -> Response:
        if exc.status >= 500:
            headers = {"Retry-After": str(ServiceUnavailable.retry_after)}
            return error_response(exc.status, exc.code, exc.message, exc.details, headers)
        status = 415 if isinstance(exc, UnsupportedMediaType) else 400
        return oauth_error(exc.code if exc.code in OAUTH_ERRORS else "invalid_request", exc.message, status)

    @app.exception_handler(RequestValidationError)
    def _invalid_form(exc: RequestValidationError) -> Response:
        if _content_type(app) != FORM:  # e.g. a JSON body Powertools could not read as the form
            return oauth_error("invalid_request", f"Send the parameters as {FORM}", 415)
        return oauth_error("invalid_request", "The form is not valid")

    # Powertools reads the documented form before the handler runs: another media type, or a multipart body it
    # cannot split (ValueError: no boundary), is refused as not being the form.
    @app.exception_handler(RequestUnsupportedContentType)
    @app.exception_handler(ValueError)
    def _not_a_form(exc: Exception) -> Response:
        return oauth_error("invalid_request", f"Send the parameters as {FORM}", 415)

    return app


def _content_type(app: APIGatewayRestResolver) -> str:
    return (app.current_event.headers.get("content-type") or "").split(";")[0].strip().lower()


def oauth_form(app: APIGatewayRestResolver) -> list[tuple[str, str]]:
    """The fields of an OAuth form post (RFC 6749 3.2: application/x-www-form-urlencoded), in the order sent."""
    from urllib.parse import parse_qsl

    body = app.current_event.decoded_body or ""
    if body and _content_type(app) != FORM:
        raise UnsupportedMediaType(f"Send the parameters as {FORM}", code="invalid_request")
    if len(body) > MAX_OAUTH_FORM_BYTES:
        raise BadRequest("The form is too large", code="invalid_request")
    try:
        pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=50)
    except ValueError:
        raise BadRequest("The form has too many fields", code="invalid_request") from None
    if any(unstorable(text) for pair in pairs for text in pair):
        raise BadRequest("Form fields must not contain NUL characters", code="invalid_request")
    return pairs


def oauth_answer(status: int, body: Any, headers: dict[str, str]) -> Response:
    """Authlib's answer as the response (its headers include Cache-Control: no-store for tokens)."""
    kept = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=kept)

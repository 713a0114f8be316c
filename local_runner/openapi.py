"""Generates the OpenAPI 3.1 document from the functions' own routes and models (`make openapi`).

Each function's resolver describes its route (Powertools); this merges them, takes each route's security from
template.yaml's authorizer settings (and refuses to write a document where the two disagree), documents the
error responses every route can give, and states the API's limits from the constants that enforce them.
"""

import json
import sys
import tomllib
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

from local_runner import lambdas, template
from local_runner.template import ROOT

SECURITY_SCHEMES = {
    "session": HTTPBearer(
        scheme="bearer",
        bearerFormat="JWT or ses_…",
        description="A user session: in dev mode one from POST /api/dev/session; in oidc mode the dashboard's "
        "session or the identity provider's ID token; in clerk mode a Clerk session token. Signing out (POST "
        "/sign-out) ends the sessions Echo Control starts.",
    ),
    "apiKey": HTTPBearer(
        scheme="bearer",
        bearerFormat="echo_…",
        description="An Echo API key (POST /api/api-keys shows it once), or a Sign in with Echo access token "
        "(echo_at_…, from POST /oauth/token). Acts for its user and app.",
    ),
}

ERROR_RESPONSES = {
    "400": "Malformed request: invalid JSON (also duplicate keys, NaN, NUL), a bad cursor or range",
    "401": "Missing, invalid, expired or revoked credentials",
    "402": "Insufficient balance",
    "403": "Not allowed for this caller (wrong credential type, not an admin, another user's userId)",
    "404": "No such object, or it belongs to someone else",
    "409": "An Idempotency-Key reused with a different request",
    "413": "The body exceeds 64 KB",
    "415": "The body is not application/json",
    "422": "A field is missing, of the wrong type or out of range",
    "429": "Rate limited; retry after Retry-After seconds",
    "503": "The database is unavailable; retry after Retry-After seconds",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}}


def _limits() -> str:
    from echo_control import models
    from echo_control.http import MAX_BODY_BYTES

    return "\n".join(
        [
            "Control plane for monetized LLM apps: Echo apps, API keys, prepaid credits, metering and analytics; "
            "customers of an app pay its markup to the owner's earnings, paid out through Stripe Connect.",
            "",
            "Money is exact: amounts in requests and responses are decimal strings of USD, never floats.",
            'Errors are `{"error": {"code", "message", "details"}, "message"}`; the top-level `message` repeats the '
            "error's message as text for clients that read errors as strings (seed compatibility).",
            "",
            "Seed compatibility: the original Echo proxy and SDK of the seed's era work unchanged. Money may also be "
            "sent as a JSON number (read from the JSON text, never a float; rounded half-up to 6 places for costs, "
            "cents for payments); `prompt`, `response`, `errorMessage` and a payment link's `description` are "
            "accepted and not stored; the seed's wrappers (`transaction`, `echoApp`, `apiKey`, `paymentLink`, "
            "`payment`) and `totalCredits` are answered beside our fields; an API key may read its own app.",
            "",
            "Limits:",
            f"- request bodies at most {MAX_BODY_BYTES // 1024} KB of JSON (no duplicate keys, NaN or NUL)",
            f"- names {models.MAX_NAME_LENGTH} characters, descriptions {models.MAX_DESCRIPTION_LENGTH}, "
            f"reasons {models.MAX_REASON_LENGTH}, metadata {models.MAX_METADATA_KEYS} keys",
            f"- token counts 0 to {models.MAX_TOKENS:,} each; cost 0 to {models.MAX_COST} USD per call",
            f"- payments {models.MIN_PAYMENT} to {models.MAX_PAYMENT:,} USD; adjustments up to "
            f"{models.MAX_ADJUSTMENT:,} USD",
            '- payouts in dollars with at most 2 decimal places ("15.00"), from ECHO_MIN_PAYOUT_USD (10 by default) '
            f"to {models.MAX_PAYOUT:,} USD",
            f"- pages of at most {models.MAX_PAGE_SIZE} transactions (default {models.DEFAULT_PAGE_SIZE})",
            f"- an app's prices: at most {models.MAX_PRICED_MODELS} allowed models and {models.MAX_PRICED_MODELS} "
            f"overrides, model names of {models.MAX_PRICED_MODEL_LENGTH} characters, 0 to "
            f"{models.MAX_PER_MILLION:,} USD per million tokens",
            "- per API key: ECHO_RATE_LIMIT_PER_MINUTE requests a minute (600 by default), then 429 with "
            "Retry-After; API Gateway throttles each stage as well",
        ]
    )


def _summary(module: Any) -> str | None:
    first_line = (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""
    return first_line.split(" — ", 1)[1].rstrip(".") if " — " in first_line else None


def _errors_for(operation: dict[str, Any], route: template.Route) -> list[str]:
    statuses = ["404", "503"]
    if operation.get("parameters") or operation.get("requestBody") or route.method in ("POST", "PUT"):
        statuses += ["400", "422"]
    if route.method in ("POST", "PUT"):
        statuses += ["413", "415"]
    if route.authorized:
        statuses += ["401", "403", "429"]
    return statuses


def build() -> dict[str, Any]:
    api = template.load()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    merge = OpenAPIMerge(
        title="Echo Control API",
        version=version,
        description=_limits(),
        security_schemes=SECURITY_SCHEMES,  # type: ignore[arg-type]
        on_conflict="error",
    )
    # The API, and Sign in with Echo's token and revocation endpoints (its /oauth/authorize is a page)
    documented = ("/api/", "/oauth/")
    routes = sorted((r for r in api.routes if r.path.startswith(documented)), key=lambda r: (r.path, r.method))
    operations: list[tuple[template.Route, str | None]] = []
    for route in routes:
        module = lambdas.load_module(route.code_dir)
        schema = module.app.get_openapi_schema(security_schemes=SECURITY_SCHEMES)
        if route.path not in (schema.paths or {}):
            continue  # a route kept out of the document (the document and its docs page)
        merge.add_schema(schema.model_dump(mode="json", by_alias=True, exclude_none=True))
        operations.append((route, _summary(module)))
    document = merge.get_openapi_schema()

    for route, summary in operations:
        operation = document["paths"][route.path][route.method.lower()]
        declared = bool(operation.get("security"))
        if declared != route.authorized:
            where = f"{route.method} {route.path}"
            sys.exit(f"{where}: template.yaml says authorized={route.authorized}, the function's security differs")
        if not route.authorized:
            operation["security"] = []
        if summary:
            operation["summary"] = summary
        responses = operation.setdefault("responses", {})
        responses.pop("422", None)  # Powertools' own validation error shape; ours is ErrorResponse
        if route.path.startswith("/oauth/"):  # OAuth's own error shape (RFC 6749 5.2), declared by the function
            responses["503"] = {"description": ERROR_RESPONSES["503"], "headers": RETRY_AFTER}
            responses["503"]["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            }
            continue
        for status in _errors_for(operation, route):
            responses.setdefault(status, {"description": ERROR_RESPONSES[status]})
        for status, response in responses.items():
            if int(status) >= 400:
                response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
            if status in ("429", "503"):
                response["headers"] = RETRY_AFTER

    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorResponse"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "message": {"type": "string", "description": "The error's message as text (seed compatibility)"},
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
            },
        },
    }
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    document["components"]["securitySchemes"] = {
        name: scheme.model_dump(mode="json", by_alias=True, exclude_none=True)
        for name, scheme in SECURITY_SCHEMES.items()
    }
    document["servers"] = [{"url": "/", "description": "This deployment"}]
    return document


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

"""Where a request came in: the public base URL that checkout links and the mock checkout's webhook use, and
whether the request came over HTTPS.

ECHO_PUBLIC_URL wins when set. Otherwise the request's own origin: API Gateway's `requestContext.domainName`
in the cloud (an execute-api domain serves the API under its stage, `/prod`; a custom domain at its base path
mapping), the Host header locally, and the scheme from X-Forwarded-Proto; then the base path (`base_path`)."""

import re
from collections.abc import Mapping
from typing import Any

from echo_control import config
from echo_control.errors import BadRequest

HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*")


def _headers(event: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in (event.get("headers") or {}).items() if isinstance(v, str)}


def is_https(event: dict[str, Any]) -> bool:
    """True when the browser spoke HTTPS to us (API Gateway always does, and says so in X-Forwarded-Proto)."""
    proto = _headers(event).get("x-forwarded-proto", "").split(",")[0].strip().lower()
    if proto:
        return proto == "https"
    return config.settings().lambda_function_name is not None


def public_base_url(event: dict[str, Any]) -> str:
    """The deployment's base URL for this request, without a trailing slash."""
    if configured := config.settings().public_url:
        return configured
    context = event.get("requestContext") or {}
    domain = context.get("domainName") or _headers(event).get("host")
    if not isinstance(domain, str) or not HOST.fullmatch(domain):
        raise BadRequest("The request has no valid Host header", code="invalid_host")
    scheme = "https" if is_https(event) else "http"
    return f"{scheme}://{domain}{base_path(event)}"


def own_webhook_url(event: dict[str, Any]) -> str:
    """Where the local mocks (checkout, onboarding) send the signed webhooks Stripe would: the local runner's own
    bound address, never the Host header's (that would let a request aim our signed POST at any host and port);
    else ECHO_PUBLIC_URL; else the name API Gateway itself gives (requestContext.domainName, not a header)."""
    context = event.get("requestContext") or {}
    local = context.get("localRunnerUrl")
    if isinstance(local, str) and local.startswith("http://"):
        return f"{local}/api/stripe/webhook"
    if config.settings().public_url or isinstance(context.get("domainName"), str):
        return f"{public_base_url(event)}/api/stripe/webhook"
    raise BadRequest("No webhook address is known for this server: set ECHO_PUBLIC_URL", code="invalid_host")


def base_path(event: Mapping[str, Any]) -> str:
    """The base path the request came in on, which every link, form and redirect of a page must carry: `/prod` on
    an execute-api URL (its stage), a custom domain's base path mapping (`/echo`), or "" (a custom domain mapped at
    its root, the local runner).

    It is what `requestContext.path` (the path as the browser sent it) has in front of the route's own path: the
    resource with its path parameters filled in (on a custom domain `path` still carries the mapping), else
    `path` (the execute-api stage is never in it)."""
    full = (event.get("requestContext") or {}).get("path")
    if not isinstance(full, str):
        return ""
    full = full.rstrip("/")
    for route_path in (_route_path(event), event.get("path")):
        if isinstance(route_path, str) and full.endswith(route_path := route_path.rstrip("/")):
            prefix = full[: len(full) - len(route_path)]
            return prefix if BASE_PATH.fullmatch(prefix) else ""
    return ""


def _route_path(event: Mapping[str, Any]) -> str | None:
    """The resource (`/apps/{id}`, `/{proxy+}`) with this request's path parameters in place."""
    resource, parameters = event.get("resource"), event.get("pathParameters") or {}
    if not isinstance(resource, str):
        return None
    for name, value in parameters.items():
        if isinstance(value, str):
            resource = resource.replace(f"{{{name}+}}", value).replace(f"{{{name}}}", value)
    return None if "{" in resource else resource

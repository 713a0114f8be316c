"""The local API Gateway: HTTP request → proxy event → authorizer → handler → HTTP response."""

import base64
import json
import os
import time
import uuid
from typing import Any

from werkzeug.datastructures import Headers
from werkzeug.wrappers import Request, Response

from local_runner import lambdas, template

UNAUTHORIZED = {
    "error": {"code": "unauthorized", "message": "Missing or invalid credentials", "details": None},
    "message": "Missing or invalid credentials",
}
AUTHORIZER_FAILURE = {
    "error": {"code": "service_unavailable", "message": "Please retry", "details": None},
    "message": "Please retry",
}
STAGE = "local"
# The hosts the runner answers for (any port), beside ECHO_ALLOWED_HOSTS: any other Host header is refused, so a web
# page on another name that resolves to this machine (DNS rebinding) cannot drive the runner, and no Host can put a
# stranger's address in a checkout link.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Where a server bound to every address is reached from this machine.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}  # noqa: S104 - names, not binds


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"error": {"code": code, "message": message, "details": None}, "message": message}, headers)


def allowed_hosts() -> frozenset[str]:
    extra = os.environ.get("ECHO_ALLOWED_HOSTS", "")
    return LOOPBACK_HOSTS | {name.strip().lower() for name in extra.split(",") if name.strip()}


def host_name(host: str) -> str | None:
    """The name in a Host header (`[::1]:3000` → `[::1]`), lowercased; None when it is not one."""
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not name or (port and not port.isdigit()):
        name, port = host, ""
    if not name or any(c in name for c in "/?#@ "):
        return None
    return name.lower()


def own_url(request: Request) -> str:
    """The address this runner is bound to, as this machine reaches it: where the mocks send their webhooks."""
    return bound_url(str(request.environ.get("SERVER_NAME", "")), str(request.environ.get("SERVER_PORT", "80")))


def bound_url(bound: str, port: str | int) -> str:
    """http://<address>:<port> of a runner bound there (a wildcard address reached on loopback)."""
    server = _WILDCARDS.get(bound, bound)
    if ":" in server and not server.startswith("["):
        server = f"[{server}]"
    return f"http://{server}:{port}"


def proxy_event(request: Request, route: template.Route, path_params: dict[str, str]) -> dict[str, Any]:
    """The REST API (v1) proxy integration event API Gateway would send for this request."""
    raw = request.get_data(cache=True)
    try:
        body: str | None = raw.decode("utf-8") if raw else None
        is_base64 = False
    except UnicodeDecodeError:
        body, is_base64 = base64.b64encode(raw).decode(), True
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        headers[key] = value
        multi_headers.setdefault(key, []).append(value)
    query = {k: request.args.getlist(k)[-1] for k in request.args}
    now = time.time()
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: request.args.getlist(k) for k in request.args} or None,
        "pathParameters": path_params or None,
        "stageVariables": None,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "stage": STAGE,
            "resourcePath": route.path,
            "httpMethod": request.method,
            "path": request.path,  # served at the root, as on a custom domain
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "identity": {
                "sourceIp": request.remote_addr or "127.0.0.1",
                "userAgent": request.user_agent.string,
            },
            # Not API Gateway's: the local mocks' webhook target (echo_control.origins.own_webhook_url).
            "localRunnerUrl": own_url(request),
        },
    }


def _lambda_response(result: Any) -> Response:
    if not isinstance(result, dict) or "statusCode" not in result:
        return _error(502, "bad_gateway", "The function returned an invalid response")
    headers = Headers()
    for key, value in (result.get("headers") or {}).items():
        headers[key] = str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers.remove(key)
        for value in values:
            headers.add(key, str(value))
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return Response(data, status=int(result["statusCode"]), headers=headers)


class LocalApiGateway:
    """A WSGI app; werkzeug serves it (threaded), tests may call it directly."""

    _shared: "LocalApiGateway | None" = None

    def __init__(self, api: template.Api | None = None) -> None:
        self.api = api or template.load()
        self.functions = lambdas.Functions()

    @classmethod
    def shared(cls) -> "LocalApiGateway":
        """One gateway per process, so warm containers are reused (as tests and benchmarks want)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        if host_name(request.host) not in allowed_hosts():
            return _error(400, "invalid_host", "This server answers only for its own host names (ECHO_ALLOWED_HOSTS)")
        matches = [(r, p) for r in self.api.routes if (p := r.match(request.path)) is not None]
        if any(not r.greedy for r, _ in matches):  # a declared resource answers its path, even with a 405
            matches = [(r, p) for r, p in matches if not r.greedy]
        if not matches:
            return _error(404, "not_found", f"No route for {request.path}")
        found = next(((r, p) for r, p in matches if r.accepts(request.method)), None)
        if found is None:
            allowed = ", ".join(sorted({r.method for r, _ in matches}))
            return _error(405, "method_not_allowed", f"{request.method} is not allowed here", {"Allow": allowed})
        route, params = found
        event = proxy_event(request, route, params)
        if route.authorized:
            denied = self._authorize(event)
            if denied is not None:
                return denied
        return _lambda_response(self.functions[route.code_dir].invoke(event))

    def _authorize(self, event: dict[str, Any]) -> Response | None:
        headers = {k.lower(): v for k, v in (event["headers"] or {}).items()}
        if not headers.get("authorization"):  # the identity source is missing: API Gateway answers itself
            return _json(401, UNAUTHORIZED)
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:local:000000000000:local/{STAGE}/{event['httpMethod']}{event['path']}",
            **{
                k: event[k]
                for k in (
                    "resource",
                    "path",
                    "httpMethod",
                    "headers",
                    "multiValueHeaders",
                    "queryStringParameters",
                    "pathParameters",
                    "requestContext",
                )
            },
        }
        try:
            policy = self.functions[self.api.authorizer_dir].invoke(authorizer_event)
        except Exception as exc:
            if str(exc) == "Unauthorized":
                return _json(401, UNAUTHORIZED)
            # AUTHORIZER_CONFIGURATION_ERROR gateway response (template.yaml): retryable
            return _json(503, AUTHORIZER_FAILURE, {"Retry-After": "2"})
        statement = policy["policyDocument"]["Statement"][0]
        if statement["Effect"] != "Allow":
            return _error(403, "forbidden", "Not allowed")
        event["requestContext"]["authorizer"] = {
            **policy.get("context", {}),
            "principalId": policy["principalId"],
        }
        return None

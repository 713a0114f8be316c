"""Pages under a stage path: every page and every redirect, from API Gateway events as they arrive on the
execute-api URL the stack outputs (stage `prod`, which `path` leaves out), on a custom domain mapped at its root,
and on a custom domain with a base path mapping (which API Gateway leaves in `path`). Every href, src, form action
and Location must carry the base the request came in on, and so must the OIDC redirect_uri and Stripe's return
URLs."""

import json
import re
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import Api, Session
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc

from local_runner import template
from local_runner.lambdas import LambdaContext, load_module

ATTRIBUTE = re.compile(r"""\b(href|src|action)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE)


@dataclass(frozen=True)
class Deployment:
    name: str
    host: str
    base: str
    path_has_base: bool  # a custom domain's mapping stays in `path`; the execute-api stage does not

    def event(self, method: str, path: str, *, cookie: str | None = None, body: str | None = None) -> dict[str, Any]:
        """The REST API proxy event API Gateway sends for `method base+path` (path may carry a query)."""
        route_path, _, query_string = path.partition("?")
        route, parameters = _route(method, route_path)
        query = dict(urllib.parse.parse_qsl(query_string))
        headers = {"Host": self.host, "X-Forwarded-Proto": "https", "Accept": "text/html"}
        if cookie:
            headers["Cookie"] = cookie
        if method == "POST":
            headers |= {"Origin": f"https://{self.host}", "Content-Type": "application/x-www-form-urlencoded"}
        return {
            "resource": route.path,
            "path": self.base + route_path if self.path_has_base else route_path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
            "body": body,
            "isBase64Encoded": False,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "stage": "prod",
                "domainName": self.host,
                "resourcePath": route.path,
                "httpMethod": method,
                "path": self.base + route_path,
                "protocol": "HTTP/1.1",
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": "203.0.113.10", "userAgent": "test"},
            },
        }

    def check(self, url: str, where: str) -> None:
        """A URL in a page or a Location: on this site it must be under the base; elsewhere, anything."""
        if url.startswith(("#", "?", "mailto:", "data:")):
            return
        parts = urllib.parse.urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.netloc != self.host:
                return  # another site (Stripe, the identity provider, documentation)
            assert parts.scheme == "https", f"{where}: {url}"
            path = parts.path
        else:
            path = url
        assert path.startswith(self.base + "/") and not path.startswith("//"), f"{where}: {url!r} lacks {self.base!r}"


DEPLOYMENTS = [
    Deployment("execute-api", "abc123.execute-api.eu-west-1.amazonaws.com", "/prod", path_has_base=False),
    Deployment("custom domain", "echo.example.com", "", path_has_base=True),
    Deployment("custom domain with a mapping", "api.example.com", "/echo", path_has_base=True),
]

API = template.load()
_modules: dict[Path, ModuleType] = {}


def _route(method: str, path: str) -> tuple[template.Route, dict[str, str]]:
    matches = [(r, p) for r in API.routes if r.accepts(method) and (p := r.match(path)) is not None]
    matches.sort(key=lambda found: found[0].greedy)  # a declared resource before the catch-all
    return matches[0]


def invoke(deployment: Deployment, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    route, _ = _route(method, path.partition("?")[0])
    if route.code_dir not in _modules:
        _modules[route.code_dir] = load_module(route.code_dir)
    result: dict[str, Any] = _modules[route.code_dir].lambda_handler(
        deployment.event(method, path, **kwargs), LambdaContext(route.function)
    )
    return result


def checked(deployment: Deployment, method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], int]:
    """The function's answer, after checking its Location and every URL in its HTML; how many URLs there were."""
    result = invoke(deployment, method, path, **kwargs)
    where = f"{deployment.name} {method} {path}"
    assert result["statusCode"] < 500, (where, result.get("body"))
    headers = response_headers(result)
    seen = 0
    for url in headers.get("location", []):
        deployment.check(url, where)
        seen += 1
    if any(value.startswith("text/html") for value in headers.get("content-type", [])):
        for _, _, url in ATTRIBUTE.findall(result.get("body") or ""):
            deployment.check(url.replace("&amp;", "&"), where)
            seen += 1
    return result, seen


def response_headers(result: dict[str, Any]) -> dict[str, list[str]]:
    """A REST API proxy answer's headers, single- and multi-valued, by lower-case name."""
    found: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        found.setdefault(name.lower(), []).append(str(value))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        found.setdefault(name.lower(), []).extend(str(v) for v in values)
    return found


def location(result: dict[str, Any]) -> str:
    [url] = response_headers(result)["location"]
    return url


@pytest.fixture
def world(api: Api, admin: Session) -> dict[str, Any]:
    """An owner with an app open to customers and a key, a customer of it, and an app the customer may join."""
    owner, customer, stranger = api.sign_in(), api.sign_in(), api.sign_in()
    app = owner.create_app("Staged app", acceptsCustomers=True, markup="1.5")
    key = owner.create_key(app["id"])
    customer.create_key(app["id"])
    joinable = stranger.create_app("Joinable", acceptsCustomers=True)
    checkout = customer.call("POST", "/api/stripe/payment-link", {"amount": "5.00"}, headers={"Host": "localhost"})
    onboarding = owner.call("POST", "/api/payouts/account", headers={"Host": "localhost"})
    card_setup = customer.call("POST", "/api/stripe/setup-link", headers={"Host": "localhost"})
    return {
        "owner": owner,
        "customer": customer,
        "admin": admin,
        "app": app,
        "key": key,
        "joinable": joinable,
        "session_id": urllib.parse.urlsplit(checkout.body["url"]).path.rsplit("/", 1)[-1],
        "account_id": urllib.parse.urlsplit(onboarding.body["url"]).path.rsplit("/", 1)[-1],
        "setup_id": card_setup.body["sessionId"],
    }


def cookie(session: Session) -> str:
    return f"echo_session={session.token}"


OAUTH_API = ("/oauth/token", "/oauth/revoke")  # Sign in with Echo's JSON endpoints: API, not pages


def page_routes(method: str) -> set[str]:
    return {
        f"{r.method} {r.path}" for r in API.routes if not r.path.startswith(("/api", *OAUTH_API)) and r.accepts(method)
    }


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d.name)
def test_every_page_and_redirect_carries_the_base_path(
    deployment: Deployment, world: dict[str, Any], api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from echo_control import auto_top_up, origins, payments, payouts

    # The mocks' webhooks go to the local runner's own address, which these direct invocations do not have; what
    # they credit is tested elsewhere.
    monkeypatch.setattr(origins, "own_webhook_url", lambda event: "http://127.0.0.1:9/api/stripe/webhook")
    monkeypatch.setattr(payments, "mock_pay", lambda *args: None)
    monkeypatch.setattr(payouts, "mock_complete_onboarding", lambda *args: 200)
    monkeypatch.setattr(auto_top_up, "mock_complete_setup", lambda *args: 200)
    owner, customer, admin = world["owner"], world["customer"], world["admin"]
    app_id, key_id, joinable = world["app"]["id"], world["key"]["id"], world["joinable"]["id"]
    revocable = owner.create_key(app_id)["id"]
    leaving = api.sign_in()  # signs out below
    # Sign in with Echo: the app sends people back to its own site (another origin: any URL goes there)
    assert owner.call("PUT", f"/api/echo-apps/{app_id}", {"redirectUris": ["https://app.example.com/cb"]}).status == 200
    authorization = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": app_id,
            "redirect_uri": "https://app.example.com/cb",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "staged",
        }
    )
    # Webhooks: an endpoint of the owner's with one delivery (a new customer of the app) to resend
    hook = owner.call(
        "POST", "/api/webhooks", {"url": "https://hooks.example.com/echo", "events": ["customer.created"]}
    )
    assert hook.status == 201, hook.body
    api.sign_in().create_key(app_id)
    [delivery] = owner.call("GET", f"/api/webhooks/{hook.body['id']}/deliveries").body["deliveries"]
    hook_id, delivery_id = hook.body["id"], delivery["id"]
    get = [
        ("/", None),
        ("/webhooks", cookie(owner)),
        (f"/webhooks/{hook_id}", cookie(owner)),
        ("/", cookie(owner)),
        ("/sign-in?next=%2Fbalance", None),
        ("/dashboard", None),  # not signed in: to the sign-in page, with next
        ("/dashboard", cookie(owner)),
        ("/balance", cookie(admin)),
        ("/balance?payment=success", cookie(customer)),
        ("/balance/statement.csv", cookie(owner)),
        ("/admin/credit-codes", cookie(admin)),
        ("/earnings", cookie(owner)),
        (f"/earnings?app={app_id}", cookie(owner)),
        ("/models", None),
        ("/models?q=gpt", cookie(owner)),
        (f"/oauth/authorize?{authorization}", None),  # to sign-in first, coming back here
        (f"/oauth/authorize?{authorization}", cookie(customer)),  # the consent page
        ("/connections", cookie(customer)),
        (f"/apps/{app_id}", cookie(owner)),
        (f"/apps/{app_id}", cookie(customer)),
        (f"/apps/{joinable}", cookie(customer)),  # an app they may join: to its join page
        (f"/apps/{app_id}/transactions.csv", cookie(owner)),
        (f"/join/{joinable}", cookie(customer)),
        (f"/join/{app_id}", cookie(customer)),
        (f"/checkout/mock/{world['session_id']}?return=%2Fbalance", cookie(customer)),
        (f"/connect/mock/{world['account_id']}?return=%2Fearnings", cookie(owner)),
        (f"/setup/mock/{world['setup_id']}?return=%2Fbalance", cookie(customer)),
        ("/balance?card=saved", cookie(customer)),
        ("/cli-auth", cookie(owner)),
        ("/cli-auth", None),  # not signed in: to the sign-in page, with next
    ]
    not_found = [
        ("/auth/callback?code=x&state=y", None),  # dev mode: no callback
        ("/no/such/page", cookie(owner)),
        (f"/apps/{uuid.uuid4()}", cookie(owner)),  # the error page
    ]
    post = [
        ("/sign-in", None, "email=staged%40example.com&next=%2Fearnings"),
        ("/sign-in", None, "email=not-an-email&next=%2Fearnings"),  # refused: back to the form
        ("/sign-out", cookie(leaving), ""),
        ("/dashboard/apps", cookie(owner), "name=Made+here"),
        ("/dashboard/apps", cookie(owner), "name="),  # refused
        (f"/apps/{app_id}/keys", cookie(owner), "name=laptop"),
        (f"/apps/{app_id}/prices", cookie(owner), "action=allowed&allow=all"),
        (f"/apps/{app_id}/customers", cookie(owner), "acceptsCustomers=true"),
        (f"/apps/{app_id}/redirect-uris", cookie(owner), "redirectUris=https%3A%2F%2Fapp.example.com%2Fcb"),
        ("/oauth/authorize", cookie(customer), f"{authorization}&decision=allow"),  # back to the app, with a code
        (f"/connections/{app_id}/disconnect", cookie(customer), ""),
        (f"/apps/{app_id}/keys/{key_id}/limit", cookie(owner), "spendLimit=5&limitPeriod=month"),
        (f"/apps/{app_id}/keys/{revocable}/revoke", cookie(owner), ""),
        (
            "/balance/adjust",
            cookie(admin),
            f"email={urllib.parse.quote(customer.user['email'])}&operation=increment&amount=1.00&reason=staged",
        ),
        ("/admin/credit-codes", cookie(admin), "amount=2&maxUses=3"),
        ("/balance/redeem", cookie(customer), "code=NOPE-NOPE-NOPE"),  # refused: back to the form, which says why
        ("/credits", cookie(customer), "amount=5&next=%2Fbalance"),  # to the (mock) checkout, an absolute URL
        ("/earnings/onboarding", cookie(owner), ""),
        ("/earnings/payouts", cookie(owner), f"amount=1000&idempotencyKey={uuid.uuid4()}"),  # refused: too little
        (f"/join/{joinable}", cookie(customer), ""),
        (f"/checkout/mock/{world['session_id']}/pay", None, "return=%2Fbalance"),
        (f"/connect/mock/{world['account_id']}/complete", None, "return=%2Fearnings"),
        (f"/setup/mock/{world['setup_id']}/complete", None, "card=succeeds&return=%2Fbalance"),
        ("/balance/card", cookie(customer), ""),  # to the (mock) card setup, an absolute URL
        ("/balance/auto-top-up", cookie(customer), "threshold=5&amount=20&monthlyLimit=100"),  # off: stored
        ("/balance/auto-top-up", cookie(customer), "enabled=on&threshold=5&amount=20&monthlyLimit=100"),  # no card
        ("/cli-auth", cookie(owner), f"echoAppId={app_id}&name=CLI+Access"),
        ("/webhooks", cookie(owner), "url=https%3A%2F%2Fhooks.example.com%2Fother&event%3Apayment.succeeded=on"),
        ("/webhooks/balance-alert", cookie(owner), "lowBalanceThreshold=5"),
        (f"/webhooks/{hook_id}/deliveries/{delivery_id}/resend", cookie(owner), ""),
        (f"/webhooks/{hook_id}/delete", cookie(owner), ""),
    ]
    seen = 0
    for path, who in get:
        result, found = checked(deployment, "GET", path, cookie=who)
        assert result["statusCode"] in (200, 303), (path, result.get("body"))
        seen += found
    for path, who in not_found:
        result, found = checked(deployment, "GET", path, cookie=who)
        assert result["statusCode"] == 404 and "text/html" in response_headers(result)["content-type"][0], path
        seen += found
    for path, who, body in post:
        result, found = checked(deployment, "POST", path, cookie=who, body=body)
        assert result["statusCode"] == 303, (path, result.get("body"))
        seen += found
    # The page asked for travels without the base (it is added once, when redirecting there).
    asked = invoke(deployment, "GET", "/dashboard")
    assert location(asked) == f"{deployment.base}/sign-in?next=%2Fdashboard"
    # Absolute URLs to this deployment carry the base too: the mock checkout (Stripe's return URLs come from the
    # same base URL, see below) and the join link.
    to_checkout = location(invoke(deployment, "POST", "/credits", cookie=cookie(customer), body="amount=5"))
    assert to_checkout.startswith(f"https://{deployment.host}{deployment.base}/checkout/mock/"), to_checkout
    to_setup = location(invoke(deployment, "POST", "/balance/card", cookie=cookie(customer), body=""))
    assert to_setup.startswith(f"https://{deployment.host}{deployment.base}/setup/mock/"), to_setup
    app_page = invoke(deployment, "GET", f"/apps/{app_id}", cookie=cookie(owner))["body"]
    assert f"https://{deployment.host}{deployment.base}/join/{app_id}" in app_page
    assert seen > 100  # the pages really were full of links

    # Every page route of the template was visited, so a new page cannot skip this test.
    visited = {f"GET {_route('GET', p.partition('?')[0])[0].path}" for p, _ in get + not_found}
    visited |= {f"POST {_route('POST', p)[0].path}" for p, _, _ in post}
    assert page_routes("GET") | page_routes("POST") <= visited | {"ANY /{proxy+}"}


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d.name)
def test_the_oidc_redirect_uri_and_the_redirect_after_sign_in_carry_the_base_path(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeOidc().start()
    try:
        monkeypatch.setenv("ECHO_AUTH_MODE", "oidc")
        monkeypatch.setenv("ECHO_OIDC_ISSUER", provider.issuer)
        monkeypatch.setenv("ECHO_OIDC_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET", CLIENT_SECRET)
        started, _ = checked(deployment, "GET", "/sign-in?next=%2Fearnings")
        to_provider = location(started)
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(to_provider).query))
        assert query["redirect_uri"] == f"https://{deployment.host}{deployment.base}/auth/callback"
        state_cookie = response_headers(started)["set-cookie"][0].split(";")[0]

        # The provider signs the person in and sends the browser back (its redirect, not followed).
        class Stop(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any) -> None:
                return None

        try:
            urllib.request.build_opener(Stop).open(to_provider)
        except urllib.error.HTTPError as answer:
            back = answer.headers["Location"]
        callback = "/auth/callback?" + urllib.parse.urlsplit(back).query
        done, _ = checked(deployment, "GET", callback, cookie=state_cookie)
        assert done["statusCode"] == 303 and location(done) == f"{deployment.base}/earnings"
        # the signed-out page's links, too (the logo and "Sign in")
        _, found = checked(deployment, "GET", "/sign-in?signedOut=1")
        assert found == 2
    finally:
        provider.stop()


@pytest.fixture
def checkout_sessions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, str]]]:
    """Stripe's Checkout Sessions API on loopback for the real SDK; records each form it was sent."""
    sent: list[dict[str, str]] = []

    class Stripe(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
            sent.append({k: v[0] for k, v in form.items()})
            session_id = f"cs_test_{uuid.uuid4().hex}"
            url = f"https://checkout.stripe.com/c/pay/{session_id}"
            body = json.dumps({"id": session_id, "object": "checkout.session", "url": url})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_staged")
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{server.server_port}")
    yield sent
    server.shutdown()


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d.name)
def test_stripes_return_urls_carry_the_base_path(
    deployment: Deployment, api: Api, checkout_sessions: list[dict[str, str]]
) -> None:
    buyer = api.sign_in()
    result, _ = checked(deployment, "POST", "/credits", cookie=cookie(buyer), body="amount=5&next=%2Fdashboard")
    assert location(result).startswith("https://checkout.stripe.com/c/pay/cs_test_")
    [form] = checkout_sessions
    site = f"https://{deployment.host}{deployment.base}"
    assert form["success_url"] == f"{site}/dashboard?payment=success"
    assert form["cancel_url"] == f"{site}/dashboard?payment=cancelled"

"""The sign-in modes' configuration fails closed at start, clerk mode's sign-in page leads somewhere real, and an OIDC
sign-in works with the client secret kept in Secrets Manager (the whole flow without a browser), or fails clearly
when the provider does not answer."""

import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import Api
from fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc, User

from echo_control import config
from local_runner import template


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"ECHO_AUTH_MODE": "oidc"}, "ECHO_AUTH_MODE=oidc needs ECHO_OIDC_ISSUER and ECHO_OIDC_CLIENT_ID"),
        ({"ECHO_AUTH_MODE": "oidc", "ECHO_OIDC_ISSUER": "https://id.example.com"}, "needs ECHO_OIDC_ISSUER and"),
        ({"ECHO_AUTH_MODE": "oidc", "ECHO_OIDC_CLIENT_ID": "abc"}, "needs ECHO_OIDC_ISSUER and"),
        ({"ECHO_AUTH_MODE": "oidc", "ECHO_OIDC_ISSUER": "not a url", "ECHO_OIDC_CLIENT_ID": "abc"}, "ECHO_OIDC_ISSUER"),
        ({"ECHO_AUTH_MODE": "clerk", "ECHO_JWKS_URL": "https://x.example/jwks"}, "needs ECHO_CLERK_SIGN_IN_URL"),
        ({"ECHO_AUTH_MODE": "clerk", "ECHO_CLERK_SIGN_IN_URL": "https://x.example/sign-in"}, "and ECHO_JWKS_URL"),
    ],
)
def test_a_sign_in_mode_without_what_it_needs_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for name in ("ECHO_OIDC_ISSUER", "ECHO_OIDC_CLIENT_ID", "ECHO_JWKS_URL", "ECHO_CLERK_SIGN_IN_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(config.InvalidConfiguration, match=problem):
        config.Settings.from_environment()


def test_clerk_modes_sign_in_page_links_to_the_configured_sign_in(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECHO_AUTH_MODE", "clerk")
    monkeypatch.setenv("ECHO_JWKS_URL", "https://clerk.example.test/.well-known/jwks.json")
    monkeypatch.setenv("ECHO_CLERK_SIGN_IN_URL", "https://accounts.example.test/sign-in")
    page = api.call("GET", "/sign-in")
    assert page.status == 200
    assert 'href="https://accounts.example.test/sign-in"' in page.body
    assert 'href="#"' not in page.body


def test_revocation_holds_because_the_authorizer_caches_nothing() -> None:
    doc = yaml.load(template.TEMPLATE.read_text(), Loader=template._CfnLoader)  # noqa: S506 - a SafeLoader
    authorizer = doc["Resources"]["EchoApi"]["Properties"]["Auth"]["Authorizers"]["EchoAuthorizer"]
    assert authorizer["Identity"]["ReauthorizeEvery"] == 0  # a cached "allow" would outlive a sign-out


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOidc]:
    fake = FakeOidc().start()
    monkeypatch.setenv("ECHO_AUTH_MODE", "oidc")
    monkeypatch.setenv("ECHO_OIDC_ISSUER", fake.issuer)
    monkeypatch.setenv("ECHO_OIDC_CLIENT_ID", CLIENT_ID)
    yield fake
    fake.stop()


def cookies(reply: Any) -> dict[str, str]:
    return {h.split("=", 1)[0]: h.split("=", 1)[1].split(";", 1)[0] for h in reply.headers.getlist("Set-Cookie")}


def sign_in_without_a_browser(api: Api, provider: FakeOidc) -> Any:
    """/sign-in, the provider's redirect back (not followed), then /auth/callback with the state cookie."""
    started = api.call("GET", "/sign-in?next=%2Fbalance", headers={"Host": "localhost"})
    assert started.status == 303, started.body

    class Stop(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        urllib.request.build_opener(Stop).open(started.headers["Location"])
        raise AssertionError("the provider did not redirect")
    except urllib.error.HTTPError as answer:
        back = urllib.parse.urlsplit(answer.headers["Location"])
    state = cookies(started)["echo_oidc_state"]
    return api.call(
        "GET", f"{back.path}?{back.query}", headers={"Host": "localhost", "Cookie": f"echo_oidc_state={state}"}
    )


def test_the_client_secret_comes_from_secrets_manager(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        arn = boto3.client("secretsmanager").create_secret(Name="echo/oidc", SecretString=CLIENT_SECRET)["ARN"]
        monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET_ARN", arn)
        done = sign_in_without_a_browser(api, provider)
    assert done.status == 303 and done.headers["Location"] == "/balance"
    assert cookies(done)["echo_session"].startswith("ses_")
    assert provider.token_requests[-1]["authorization"].startswith("Basic ")


def test_without_the_right_client_secret_the_provider_refuses_and_nobody_is_signed_in(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET", "not-the-secret")
    done = sign_in_without_a_browser(api, provider)
    assert done.status == 401 and "refused the code (invalid_client)" in done.body
    assert "echo_session" not in cookies(done)


def test_an_unreachable_provider_is_a_502_page_not_a_crash(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("ECHO_AUTH_MODE", "oidc")
    monkeypatch.setenv("ECHO_OIDC_ISSUER", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ECHO_OIDC_CLIENT_ID", CLIENT_ID)
    page = api.call("GET", "/sign-in", headers={"Host": "localhost"})
    assert page.status == 502 and "The identity provider did not answer" in page.body


def test_a_discovery_document_naming_another_issuer_is_a_configuration_error(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same provider reached under another name (localhost for 127.0.0.1): its document names 127.0.0.1.
    monkeypatch.setenv("ECHO_OIDC_ISSUER", provider.issuer.replace("127.0.0.1", "localhost"))
    page = api.call("GET", "/sign-in", headers={"Host": "localhost"})
    assert page.status == 503 and provider.authorize_requests == []


def existing_user(email: str) -> str:
    """An account made before (by Clerk, or dev sign-in): it has no OpenID Connect identity."""
    from echo_control import db

    found = db.user_for_clerk_id(f"user_{uuid.uuid4().hex}", email, None)
    assert found is not None
    return str(found["id"])


def test_a_verified_email_takes_over_the_account_that_has_no_provider_yet(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    before = existing_user(provider.user.email)  # someone who used the dashboard before sign-in moved to the provider
    done = sign_in_without_a_browser(api, provider)
    assert done.status == 303
    me = api.call("GET", "/api/me", cookies(done)["echo_session"])
    assert me.body["user"]["id"] == before
    # Another identity of the provider with the same email does not take it over again.
    provider.user = User(f"sub-{uuid.uuid4().hex[:8]}", provider.user.email)
    again = sign_in_without_a_browser(api, provider)
    assert again.status == 401 and "this email belongs to another account" in again.body


def test_an_unverified_email_of_another_account_is_refused(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ECHO_OIDC_CLIENT_SECRET", CLIENT_SECRET)
    existing_user(provider.user.email)
    provider.user = User(provider.user.sub, provider.user.email, email_verified=False)
    done = sign_in_without_a_browser(api, provider)
    assert done.status == 401 and "this email belongs to another account" in done.body
    assert "echo_session" not in cookies(done)


def test_a_person_who_cancels_at_the_provider_is_told_so_and_the_state_is_spent(
    api: Api, provider: FakeOidc, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = api.call("GET", "/sign-in", headers={"Host": "localhost"})
    state = cookies(started)["echo_oidc_state"]
    back = {"Host": "localhost", "Cookie": f"echo_oidc_state={state}"}
    cancelled = api.call("GET", f"/auth/callback?error=access_denied&state={state}", headers=back)
    assert cancelled.status == 401 and "the identity provider said &#39;access_denied&#39;" in cancelled.body
    assert "echo_session" not in cookies(cancelled)
    # The state was used up: a code sent back with it now starts nothing either.
    again = api.call("GET", f"/auth/callback?code=anything&state={state}", headers=back)
    assert again.status == 401 and "expired or was already used" in again.body
    assert provider.token_requests == []

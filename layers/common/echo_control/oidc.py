"""OpenID Connect sign-in (ECHO_AUTH_MODE=oidc): the authorization code flow with PKCE (S256), state and nonce,
through Authlib.

`begin` (GET /sign-in) records the state, nonce and PKCE verifier and gives the provider's authorization URL;
the state also goes into a short-lived cookie, so only the browser that started a sign-in can finish it.
`complete` (GET /auth/callback) checks the state against the cookie and takes the record (once), exchanges the
code with the verifier, verifies the ID token (signature by the provider's JWKS, `iss`, `aud`, `nonce`, expiry)
and names the user by (issuer, sub). The caller then starts our own revocable session (auth.start_session).

Authlib and requests are imported inside the functions: only the sign-in functions pay for them at cold start."""

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from echo_control import auth, config, db
from echo_control.errors import BadGateway, Unauthorized

CALLBACK_PATH = "/auth/callback"
STATE_COOKIE = "echo_oidc_state"
SIGN_IN_SECONDS = 600  # from /sign-in to /auth/callback, the time to type a password (and a second factor)
SCOPE = "openid email profile"
HTTP_TIMEOUT_SECONDS = 5
# Asymmetric signatures only: "none", or an HMAC keyed with something the client knows, proves nothing.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


@dataclass(frozen=True)
class Started:
    authorization_url: str
    state: str  # for the browser's state cookie


@dataclass(frozen=True)
class SignedIn:
    user: dict[str, Any]
    next_path: str


def sign_in_failed(why: str) -> Unauthorized:
    return Unauthorized(f"Sign-in did not complete: {why}. Please sign in again.", code="sign_in_failed")


def provider_metadata() -> dict[str, Any]:
    """The provider's discovery document (`<issuer>/.well-known/openid-configuration`), fetched once per container."""
    issuer = config.settings().oidc_issuer
    if not issuer:
        raise config.misconfigured("ECHO_OIDC_ISSUER is not set")
    return _discover(issuer)


@functools.cache
def _discover(issuer: str) -> dict[str, Any]:
    document = _get_json(f"{issuer}/.well-known/openid-configuration")
    if document.get("issuer") != issuer:  # OpenID Connect Discovery 1.0, section 4.3
        raise config.misconfigured(f"the discovery document of {issuer} names another issuer")
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(document.get(field), str):
            raise config.misconfigured(f"the discovery document of {issuer} has no {field}")
    return document


def _get_json(url: str) -> dict[str, Any]:
    import requests

    try:
        response = requests.get(url, timeout=HTTP_TIMEOUT_SECONDS)
        response.raise_for_status()
        body = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise BadGateway("The identity provider did not answer; try again shortly") from exc
    if not isinstance(body, dict):
        raise BadGateway("The identity provider answered something unexpected")
    return body


def _client(redirect_uri: str, secret: str | None = None) -> Any:
    """Authlib's client; with `secret` it authenticates to the token endpoint (HTTP Basic), else it is public."""
    from authlib.integrations.requests_client import OAuth2Session

    settings = config.settings()
    return OAuth2Session(
        client_id=settings.oidc_client_id,
        client_secret=secret,
        scope=SCOPE,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )


def _state_hash(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()


def begin(base_url: str, next_path: str) -> Started:
    """Starts a sign-in that returns to `next_path` (a path on this site): the provider's URL to send the browser to."""
    from authlib.common.security import generate_token

    state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
    url, _ = _client(base_url + CALLBACK_PATH).create_authorization_url(
        provider_metadata()["authorization_endpoint"], state=state, code_verifier=verifier, nonce=nonce
    )
    db.insert_oidc_sign_in(_state_hash(state), nonce, verifier, next_path, SIGN_IN_SECONDS)
    return Started(url, state)


def complete(base_url: str, query: dict[str, str], cookie_state: str | None) -> SignedIn:
    """Finishes the sign-in the provider sent the browser back from (`query`: state, and code or error)."""
    state = query.get("state") or ""
    if not state or not cookie_state or not hmac.compare_digest(state, cookie_state):
        raise sign_in_failed("it was not started in this browser")
    started = db.take_oidc_sign_in(_state_hash(state))
    if started is None:
        raise sign_in_failed("it has expired or was already used")
    if "error" in query:
        raise sign_in_failed(f"the identity provider said {query['error'][:100]!r}")
    if not query.get("code"):
        raise sign_in_failed("the identity provider sent no code")
    token = _exchange(base_url + CALLBACK_PATH, query["code"], started["code_verifier"])
    claims = _verified_id_token(token, started["nonce"])
    sub, email = str(claims["sub"]), claims.get("email")
    found = db.user_for_oidc_identity(
        str(claims["iss"]),
        sub,
        str(email) if email else f"{sub}@users.oidc.invalid",
        str(claims["name"]) if claims.get("name") else None,
        claims.get("email_verified") in (True, "true"),  # Cognito has sent it as a string
    )
    if found is None:
        raise sign_in_failed("this email belongs to another account")
    return SignedIn(auth.with_role(found), started["next_path"])


def _exchange(redirect_uri: str, code: str, verifier: str) -> dict[str, Any]:
    import requests
    from authlib.integrations.requests_client import OAuthError

    try:
        token: dict[str, Any] = _client(redirect_uri, config.oidc_client_secret()).fetch_token(
            provider_metadata()["token_endpoint"],
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
    except OAuthError as exc:
        raise sign_in_failed(f"the identity provider refused the code ({exc.error})") from exc
    except (requests.RequestException, ValueError) as exc:
        raise BadGateway("The identity provider did not answer; try again shortly") from exc
    if not isinstance(token.get("id_token"), str):
        raise sign_in_failed("the identity provider sent no ID token")
    return token


def _verified_id_token(token: dict[str, Any], nonce: str) -> dict[str, Any]:
    """The ID token's claims once its signature (the provider's JWKS), issuer, audience, nonce and times hold."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import InvalidKeyIdError, JoseError

    settings = config.settings()
    metadata = provider_metadata()
    try:
        try:
            decoded = jwt.decode(token["id_token"], _keys(metadata["jwks_uri"]), algorithms=ID_TOKEN_ALGORITHMS)
        except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
            _keys.cache_clear()
            decoded = jwt.decode(token["id_token"], _keys(metadata["jwks_uri"]), algorithms=ID_TOKEN_ALGORITHMS)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": metadata["issuer"]},
                "aud": {"essential": True, "value": settings.oidc_client_id},
            },
            {"nonce": nonce, "client_id": settings.oidc_client_id, "access_token": token.get("access_token")},
        )
        claims.validate(leeway=auth.LEEWAY_SECONDS)
    except (JoseError, ValueError) as exc:
        raise sign_in_failed(f"the ID token is not valid ({type(exc).__name__})") from exc
    return dict(claims)


@functools.cache
def _keys(jwks_uri: str) -> Any:
    from joserfc.jwk import KeySet

    return KeySet.import_key_set(_get_json(jwks_uri))  # type: ignore[arg-type]

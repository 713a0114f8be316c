"""Sign in with Echo: the OAuth 2.1 authorization server for apps, built on Authlib's.

An app is a public client (its id is the client_id; no secret): authorization code with PKCE (S256 only), exact
redirect URIs, codes single-use for 60 s, refresh tokens rotated with reuse detection (RFC 9700 4.14), RFC 7009
revocation. Codes and tokens are random strings kept only as SHA-256 hashes. A person's consent makes a grant with
its own API key (db.oauth): an access token acts as that key, so calls, holds, limits and the ledger work as for
any key. Authlib validates the requests and shapes the answers; this module stores and looks things up.

Only the OAuth functions import this module (Authlib costs ~0.4 s to import); the authorizer resolves access
tokens through keys.authenticate without it.
"""

import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    ClientMixin,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge

from echo_control import db
from echo_control.errors import BadRequest
from echo_control.identity import as_uuid
from echo_control.keys import ACCESS_TOKEN_PREFIX, key_hash

CODE_SECONDS = 60
ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600  # each rotation starts a new 30 days: an app used monthly stays signed in
REFRESH_TOKEN_PREFIX = "echo_rt_"  # noqa: S105 (a public prefix, not a secret)
# What the consent form carries back (the authorization request's parameters, RFC 6749 4.1.1 and RFC 7636 4.3)
AUTHORIZATION_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "code_challenge",
    "code_challenge_method",
    "state",
    "scope",
)


def _secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)  # 256 bits: a fast hash is enough to store it (as for API keys)


# --- Authlib's models ----------------------------------------------------------------------------------------


class _Client(ClientMixin):
    """An active Echo app as a public client: no secret, PKCE instead, exactly its registered redirect URIs."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.row = row
        self.app_id: UUID = row["id"]

    def get_client_id(self) -> str:
        return str(self.app_id)

    def get_default_redirect_uri(self) -> None:
        return None  # redirect_uri is required: never guessed

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""  # one fixed permission (spend on this app, read the balance): nothing to narrow

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row["redirect_uris"]  # exact string match (RFC 9700 2.1)

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class _User:
    id: UUID


@dataclass(frozen=True)
class _Code:
    code_hash: bytes
    grant_id: UUID
    user_id: UUID
    redirect_uri: str
    code_challenge: str
    code_challenge_method: str = "S256"

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return ""


@dataclass(frozen=True)
class _Token:
    token_hash: bytes
    kind: str
    grant_id: UUID
    user_id: UUID | None
    app_id: UUID

    def check_client(self, client: _Client) -> bool:
        return self.app_id == client.app_id

    def get_scope(self) -> str:
        return ""


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in pairs:
            self._datalist[name].append(value)
        self._data = {name: values[0] for name, values in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class Request(OAuth2Request):
    """An HTTP request as Authlib reads it: the query's or the form's parameters, in the order sent."""

    def __init__(self, method: str, uri: str, pairs: list[tuple[str, str]], headers: dict[str, str] | None = None):
        try:
            super().__init__(method, uri, headers=headers or {})
        except OAuth2Error as error:  # plain http on a host other than the loopback
            raise BadRequest("Sign in with Echo takes HTTPS", code=error.error) from None
        self.payload = _Payload(pairs)
        self.conn: db.Conn | None = None  # the token endpoint's transaction

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


# --- the grants ------------------------------------------------------------------------------------------------


class _S256Required(CodeChallenge):
    """PKCE on every authorization request, S256 only (OAuth 2.1: `plain` is refused)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256 (plain is not accepted)")
        super().validate_code_challenge(grant, redirect_uri)


class _AuthorizationCode(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code: str, request: Request) -> None:
        client: _Client = request.client
        owner = client.row["user_id"] == request.user.id
        created = db.create_oauth_grant(
            request.user.id,
            client.app_id,
            key_hash(_secret()),  # the grant's key is reached only through its tokens: nobody holds this secret
            key_hash(code),
            request.payload.redirect_uri,
            request.payload.data["code_challenge"],
            CODE_SECONDS,
            as_customer=not owner,
        )
        if created is None:
            raise AccessDeniedError("This app is not taking new customers", redirect_uri=request.payload.redirect_uri)

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        conn = self.request.conn
        row = db.lock_oauth_code(conn, key_hash(code))
        if row is None or row["echo_app_id"] != client.app_id:
            return None
        if row["used_at"] is not None:  # RFC 6749 4.1.2: a second use revokes what the first one issued
            db.revoke_oauth_grants(conn, "code_reused", grant_id=row["grant_id"])
            return None
        if row["expired"] or not row["live"]:
            return None
        return _Code(key_hash(code), row["grant_id"], row["user_id"], row["redirect_uri"], row["code_challenge"])

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        db.use_oauth_code(self.request.conn, authorization_code.code_hash)  # kept, as used: a reuse is detected

    def authenticate_user(self, authorization_code: _Code) -> _User:
        return _User(authorization_code.user_id)


class _RefreshToken(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: each refresh token is good for one refresh

    def authenticate_refresh_token(self, refresh_token: str) -> _Token | None:
        conn = self.request.conn
        token_hash = key_hash(refresh_token)
        row = db.lock_refresh_token(conn, token_hash)
        if row is None:
            return None
        if row["used_at"] is not None:
            # Already rotated: the old token is in two hands (RFC 9700 4.14.2); end the grant for both.
            db.revoke_oauth_grants(conn, "refresh_token_reused", grant_id=row["grant_id"])
            return None
        if row["revoked_at"] is not None or row["expired"] or not row["live"]:
            return None
        return _Token(token_hash, "refresh", row["grant_id"], row["user_id"], row["echo_app_id"])

    def authenticate_user(self, refresh_token: _Token) -> _User | None:
        return _User(refresh_token.user_id) if refresh_token.user_id else None

    def revoke_old_credential(self, refresh_token: _Token) -> None:
        db.use_refresh_token(self.request.conn, refresh_token.token_hash)


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        row = db.oauth_token(key_hash(token_string))
        if row is None:
            return None
        return _Token(row["token_hash"], row["kind"], row["grant_id"], None, row["echo_app_id"])

    def revoke_token(self, token: _Token, request: Request) -> None:
        if token.kind == "refresh":  # RFC 7009 2.1: and every access token of the same grant
            with db.transaction() as conn:
                db.revoke_oauth_grants(conn, "revoked", grant_id=token.grant_id)
        else:
            db.revoke_oauth_token(token.token_hash)


# --- the server -------------------------------------------------------------------------------------------------


def _bearer_token(
    grant_type: str,
    client: _Client,
    user: _User | None = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = True,
) -> dict[str, Any]:
    return {
        "access_token": _secret(ACCESS_TOKEN_PREFIX),
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECONDS,
        "refresh_token": _secret(REFRESH_TOKEN_PREFIX),
    }


class _Server(AuthorizationServer):
    def __init__(self) -> None:
        super().__init__()
        self.register_token_generator("default", _bearer_token)
        self.register_grant(_AuthorizationCode, [_S256Required(required=True)])
        self.register_grant(_RefreshToken)
        self.register_endpoint(_Revocation)

    def query_client(self, client_id: str) -> _Client | None:
        app_id = as_uuid(client_id)
        row = db.oauth_client(app_id) if app_id else None
        return _Client(row) if row else None

    def save_token(self, token: dict[str, Any], request: Request) -> None:
        grant = request.authorization_code or request.refresh_token
        assert request.conn is not None, "tokens are stored in oauth.token's transaction"
        db.insert_oauth_tokens(
            request.conn,
            grant.grant_id,
            key_hash(token["access_token"]),
            ACCESS_TOKEN_SECONDS,
            key_hash(token["refresh_token"]),
            REFRESH_TOKEN_SECONDS,
        )

    def create_oauth2_request(self, request: Request) -> Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> "Answer":
        return Answer(status, body, dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


_server = _Server()


@dataclass(frozen=True)
class Answer:
    """What Authlib answered: a JSON body (token and revocation endpoints) or a redirect (Location)."""

    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class Consent:
    """A valid authorization request, waiting for the person's decision."""

    app: dict[str, Any]  # the client's row, with its owner's email and name
    redirect_uri: str
    parameters: list[tuple[str, str]]  # what the consent form posts back

    @property
    def redirect_origin(self) -> str:
        parts = urlsplit(self.redirect_uri)
        return f"{parts.scheme}://{parts.netloc}"


def _checked(request: Request, user: _User | None = None) -> Any:
    """Authlib's grant for a valid authorization request; an Answer redirecting the error to the app when its
    redirect URI is registered (RFC 6749 4.1.2.1); otherwise BadRequest, an error page: never a redirect to an
    address the app did not register."""
    try:
        return _server.get_consent_grant(request, end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:
            return _server.handle_error_response(request, error)
        raise BadRequest(error.description or "This sign-in request is not valid", code=error.error) from None


def consent(request: Request) -> Consent | Answer:
    """GET /oauth/authorize: the Consent to ask the person for, or the error to send back to the app."""
    grant = _checked(request)
    if isinstance(grant, Answer):
        return grant
    kept = [(name, value) for name, value in request.payload.data.items() if name in AUTHORIZATION_PARAMETERS]
    return Consent(grant.client.row, grant.redirect_uri, kept)


def decide(request: Request, user_id: UUID, allow: bool) -> Answer:
    """POST /oauth/authorize: the person's decision, as a redirect to the app with a code (allow) or with
    error=access_denied (deny)."""
    user = _User(user_id)
    grant = _checked(request, user)
    if isinstance(grant, Answer):
        return grant
    answer: Answer = _server.create_authorization_response(request, user if allow else None, grant)
    return answer


def token(request: Request) -> Answer:
    """POST /oauth/token: one transaction, so the rows it locks (the code, the refresh token) stay locked until the
    tokens are stored: concurrent exchanges of one code or one refresh token take turns, and only the first wins."""
    with db.transaction() as conn:
        request.conn = conn
        answer: Answer = _server.create_token_response(request)
        return answer


def revoke(request: Request) -> Answer:
    """POST /oauth/revoke (RFC 7009): 200 whether or not the token was known."""
    answer: Answer = _server.create_endpoint_response("revocation", request)
    return answer

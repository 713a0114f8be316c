"""Who is calling: sessions we start (revocable), a provider's JWTs (RS256 against its JWKS), API keys, and admin
rights.

A session we start is a row (db.sessions), so signing out ends it at once, as cookie and as bearer: in dev mode
its token is a JWT naming the row (`sid`); after an OpenID Connect sign-in it is an opaque `ses_…` secret whose
hash finds the row. A provider's own tokens (clerk and oidc modes, for API clients) are verified by its JWKS and
live as the provider says."""

import functools
import hashlib
import os
import secrets
import time
from typing import TYPE_CHECKING, Any
from uuid import UUID

from echo_control import config, db, keys
from echo_control.errors import Forbidden, NotFound, Unauthorized
from echo_control.identity import Caller, as_uuid

if TYPE_CHECKING:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

# PyJWT and cryptography cost ~150 ms to import: only code that signs or verifies imports them (cold starts).

ALGORITHM = "RS256"
SESSION_SECONDS = 12 * 3600
LEEWAY_SECONDS = 30
DEV_KEY_FILE = "dev-signing-key.pem"
SESSION_TOKEN_PREFIX = "ses_"  # noqa: S105 - a prefix, not a secret
SESSION_ENDED = "The session has ended or expired; sign in again"


# --- dev mode: the project is its own issuer ---------------------------------------------------------


@functools.cache
def dev_signing_key() -> "rsa.RSAPrivateKey":
    """ECHO_DEV_SIGNING_KEY (PEM) if set, else a key generated once into the data folder."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = config.settings().dev_signing_key
    path = config.settings().data_dir / DEV_KEY_FILE
    if not pem and path.exists():
        pem = path.read_text()
    if not pem:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pem)
        except FileExistsError:  # another process wrote one first: use theirs
            pem = path.read_text()
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private


def dev_jwks() -> dict[str, Any]:
    import jwt

    public = jwt.algorithms.RSAAlgorithm.to_jwk(dev_signing_key().public_key(), as_dict=True)
    public.update({"use": "sig", "alg": ALGORITHM, "kid": hashlib.sha256(public["n"].encode()).hexdigest()[:16]})
    return {"keys": [public]}


def issue_dev_session(email: str, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """A session token for this email (dev mode only) and the user it signs in, created on first sight."""
    if config.settings().auth_mode != "dev":
        raise NotFound("No such route")
    existing = db.user_by_email(email)
    clerk_id = (existing or {}).get("clerk_id") or f"dev_{email}"
    if existing and not existing.get("clerk_id"):
        db.set_user_clerk_id(existing["id"], clerk_id)
    user = db.user_for_clerk_id(clerk_id, email, name)
    if user is None:
        raise Unauthorized("Could not sign in")
    session_id = db.start_session(user["id"], SESSION_SECONDS)
    now = int(time.time())
    claims = {
        "iss": config.settings().jwt_issuer,
        "aud": config.settings().jwt_audience,
        "sub": clerk_id,
        "sid": str(session_id),
        "email": email,
        "iat": now,
        "nbf": now,
        "exp": now + SESSION_SECONDS,
    }
    import jwt

    kid = dev_jwks()["keys"][0]["kid"]
    token = jwt.encode(claims, dev_signing_key(), algorithm=ALGORITHM, headers={"kid": kid})
    return token, with_role(user)


def start_session(user_id: UUID) -> str:
    """A new opaque session token for this user (the cookie after an OpenID Connect sign-in), live for
    SESSION_SECONDS unless signed out first. Only its SHA-256 is stored."""
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.start_session(user_id, SESSION_SECONDS, _token_hash(token))
    return token


def end_session(token: str) -> None:
    """Signs out: from now on this session's token is refused, as cookie and as bearer. A token that is not a live
    session of ours (a provider's, a forged or an expired one) has nothing to end."""
    if token.startswith(SESSION_TOKEN_PREFIX):
        found = db.session_user_by_token(_token_hash(token))
        session_id = found["session_id"] if found else None
    elif config.settings().auth_mode == "dev":
        try:
            session_id = as_uuid(str(verify_session(token).get("sid", "")))
        except Unauthorized:
            session_id = None
    else:
        session_id = None
    if session_id is not None:
        db.revoke_session(session_id)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# --- verification ------------------------------------------------------------------------------------


@functools.cache
def _jwks_client(url: str) -> "jwt.PyJWKClient":
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


def _verification_key(token: str) -> Any:
    settings = config.settings()
    if settings.auth_mode == "dev":
        return dev_signing_key().public_key()
    url = settings.jwks_url
    if not url and settings.auth_mode == "oidc":
        from echo_control import oidc

        url = oidc.provider_metadata()["jwks_uri"]
    if not url:
        raise Unauthorized("Session verification is not configured (ECHO_JWKS_URL)")
    return _jwks_client(url).get_signing_key_from_jwt(token).key


def _expected_issuer_and_audience() -> tuple[str, str]:
    """Whose tokens this deployment accepts: in oidc mode the provider's ID tokens for our client (unless
    ECHO_JWT_ISSUER / ECHO_JWT_AUDIENCE say otherwise), else ECHO_JWT_ISSUER and ECHO_JWT_AUDIENCE."""
    settings = config.settings()
    if settings.auth_mode == "oidc" and settings.oidc_issuer and settings.oidc_client_id:
        given = settings.model_fields_set
        return (
            settings.jwt_issuer if "jwt_issuer" in given else settings.oidc_issuer,
            settings.jwt_audience if "jwt_audience" in given else settings.oidc_client_id,
        )
    return settings.jwt_issuer, settings.jwt_audience


def verify_session(token: str) -> dict[str, Any]:
    """The claims of a valid session token; anything forged, expired or meant for others is refused."""
    import jwt

    issuer, audience = _expected_issuer_and_audience()
    try:
        return jwt.decode(
            token,
            _verification_key(token),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise Unauthorized("Invalid session token", details=type(exc).__name__) from exc


def with_role(user: dict[str, Any]) -> dict[str, Any]:
    """The user with their role. In dev mode anyone can sign in as anyone, so nobody is an admin there unless
    ECHO_DEV_SIGN_IN_GRANTS_ADMIN says so (the local runner does)."""
    settings = config.settings()
    admin = user["role"] == "admin" or user["email"].lower() in settings.admin_emails
    if settings.auth_mode == "dev" and not settings.dev_sign_in_grants_admin:
        admin = False
    return {**user, "role": "admin" if admin else "user"}


def authenticate(authorization: str | None) -> dict[str, str]:
    """The authorizer's context (all strings, as API Gateway requires) for a bearer credential."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Send Authorization: Bearer <session token or API key>")
    credential = authorization[7:].strip()
    if credential.startswith(keys.KEY_PREFIX):
        key = keys.authenticate(credential, count_hit=True)
        if key is None:
            raise Unauthorized("Invalid, revoked or expired API key")
        user = with_role({"email": key["email"], "role": key["role"]})
        return {
            "userId": str(key["user_id"]),
            "email": key["email"],
            "role": user["role"],
            "authType": "apiKey",
            "echoAppId": str(key["echo_app_id"]),
            "apiKeyId": str(key["id"]),
            "appMarkup": str(key["markup"]),
            "appPricesVersion": str(key["prices_version"]),
            "rateHits": str(key["hits"]),
            "rateRetryAfter": str(key["retry_after"]),
        }
    if credential.startswith(SESSION_TOKEN_PREFIX):
        found = db.session_user_by_token(_token_hash(credential))
        if found is None:
            raise Unauthorized(SESSION_ENDED)
    else:
        found = _token_user(verify_session(credential))
    user = with_role(found)
    return {"userId": str(user["id"]), "email": user["email"], "role": user["role"], "authType": "user"}


def _token_user(claims: dict[str, Any]) -> dict[str, Any]:
    """The user a verified JWT names: in dev mode our own session's (while it lives); else the provider's user,
    created on first sight (by Clerk user id in clerk mode, by (issuer, sub) in oidc mode)."""
    settings = config.settings()
    if settings.auth_mode == "dev":
        session_id = as_uuid(str(claims.get("sid", "")))
        found = db.session_user(session_id) if session_id else None
        if found is None:
            raise Unauthorized(SESSION_ENDED)
        return found
    sub = str(claims["sub"])
    email = str(claims.get("email") or f"{sub}@users.{settings.auth_mode}.invalid")
    if settings.auth_mode == "oidc":
        verified = claims.get("email_verified") in (True, "true")  # Cognito has sent it as a string
        found = db.user_for_oidc_identity(str(claims["iss"]), sub, email, claims.get("name"), verified)
    else:
        found = db.user_for_clerk_id(sub, email, claims.get("name"))
    if found is None:
        raise Unauthorized("This email belongs to another account")
    return found


def authorizer_policy(event: dict[str, Any]) -> dict[str, Any]:
    """A REQUEST authorizer's answer: allow every route of this API, with the caller as context."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    context = authenticate(headers.get("authorization"))
    arn = event.get("methodArn", "*")
    api_root = "/".join(arn.split("/")[:2]) + "/*" if "/" in arn else arn
    return {
        "principalId": context["userId"],
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": api_root}],
        },
        "context": context,
    }


def acting_user(who: Caller, requested: str | None) -> UUID:
    """The user a request acts for: the caller, or with ?userId= another user, for admins only."""
    if requested is None or requested == str(who.user_id):
        return who.user_id
    if not who.is_admin:
        raise Forbidden("Only admins may act for another user")
    user_id = as_uuid(requested)
    if user_id is None or db.user_by_id(user_id) is None:
        raise NotFound("User not found")
    return user_id

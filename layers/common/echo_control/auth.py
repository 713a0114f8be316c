"""Who is calling: session JWTs (RS256 against a JWKS; in dev mode our own), API keys, and admin rights."""

import functools
import hashlib
import os
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
    now = int(time.time())
    claims = {
        "iss": config.settings().jwt_issuer,
        "aud": config.settings().jwt_audience,
        "sub": clerk_id,
        "email": email,
        "iat": now,
        "nbf": now,
        "exp": now + SESSION_SECONDS,
    }
    import jwt

    kid = dev_jwks()["keys"][0]["kid"]
    token = jwt.encode(claims, dev_signing_key(), algorithm=ALGORITHM, headers={"kid": kid})
    return token, with_role(user)


# --- verification ------------------------------------------------------------------------------------


@functools.cache
def _jwks_client(url: str) -> "jwt.PyJWKClient":
    import jwt

    return jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)


def _verification_key(token: str) -> Any:
    if config.settings().auth_mode == "dev":
        return dev_signing_key().public_key()
    url = config.settings().jwks_url
    if not url:
        raise Unauthorized("Session verification is not configured (ECHO_JWKS_URL)")
    return _jwks_client(url).get_signing_key_from_jwt(token).key


def verify_session(token: str) -> dict[str, Any]:
    """The claims of a valid session token; anything forged, expired or meant for others is refused."""
    import jwt

    try:
        return jwt.decode(
            token,
            _verification_key(token),
            algorithms=[ALGORITHM],
            audience=config.settings().jwt_audience,
            issuer=config.settings().jwt_issuer,
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
    claims = verify_session(credential)
    sub = str(claims["sub"])
    email = str(claims.get("email") or f"{sub}@users.clerk.invalid")
    found = db.user_for_clerk_id(sub, email, claims.get("name"))
    if found is None:
        raise Unauthorized("This email belongs to another account")
    user = with_role(found)
    return {"userId": str(user["id"]), "email": user["email"], "role": user["role"], "authType": "user"}


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

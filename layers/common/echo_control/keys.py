"""API keys: echo_ + 256 random bits + a checksum; only a SHA-256 is stored; shown once, revocable."""

import hashlib
import hmac
import re
import secrets
import zlib
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from echo_control import config, db, events, ledger
from echo_control.errors import NotFound, TooManyRequests, Unprocessable
from echo_control.identity import as_uuid
from echo_control.models import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyUpdate,
    ApiKeyWithKey,
    KeyApp,
    KeyUser,
    ValidateApiKeyOut,
)

KEY_PREFIX = "echo_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 32 random bytes in base62
_CHECKSUM_LENGTH = 6  # CRC32 of the body in base62
KEY_LENGTH = len(KEY_PREFIX) + _BODY_LENGTH + _CHECKSUM_LENGTH
# Sign in with Echo (see oauth): an access token stands for its grant's key, an API key of that app for that person.
ACCESS_TOKEN_PREFIX = "echo_at_"  # noqa: S105 (a public prefix, not a secret)
_ACCESS_TOKEN = re.compile(re.escape(ACCESS_TOKEN_PREFIX) + r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LENGTH)


def generate_key() -> str:
    body = _base62(int.from_bytes(secrets.token_bytes(32), "big"), _BODY_LENGTH)
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """Length, alphabet and checksum: a typo or a made-up key never reaches the database."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    body, checksum = key[len(KEY_PREFIX) : -_CHECKSUM_LENGTH], key[-_CHECKSUM_LENGTH:]
    if any(c not in _ALPHABET for c in body):
        return False
    return hmac.compare_digest(checksum, _checksum(body))


def key_hash(key: str) -> bytes:
    # The key has 256 bits of entropy, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


def _to_out(row: dict[str, Any]) -> ApiKeyOut:
    now = datetime.now(UTC)
    active = row["revoked_at"] is None and (row["expires_at"] is None or row["expires_at"] > now)
    return ApiKeyOut(
        id=str(row["id"]),
        name=row["name"],
        key_prefix=row["key_prefix"],
        last4=row["key_last4"],
        echo_app_id=str(row["echo_app_id"]),
        user_id=str(row["user_id"]),
        is_active=active,
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        created_at=row["created_at"],
        spend_limit=row["spend_limit"],
        limit_period=row["limit_period"],
        spent_in_period=row["spent_in_period"] if row["limit_period"] else None,
    )


def create_key(user_id: UUID, body: ApiKeyCreate) -> ApiKeyCreated:
    """A key for the caller's own app, or for an app open to customers, whose customer the caller becomes (at their
    first key). Another user's app that does not accept customers is 404, exactly like a missing one."""
    app_id = as_uuid(body.echo_app_id)
    app = db.app_for_user(app_id, user_id) if app_id else None
    if app_id is None or app is None:
        raise NotFound("Echo app not found", details={"echoAppId": body.echo_app_id})
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise Unprocessable("expiresAt must be in the future", details={"field": "expiresAt"})
    key = generate_key()
    row = db.insert_api_key(
        user_id,
        app_id,
        body.name,
        key_hash(key),
        key[:12],
        key[-4:],
        body.expires_at,
        body.spend_limit,
        body.limit_period,
        as_customer=app["relation"] != "owner",
        on_new_customer=lambda conn, joined: events.emit(
            conn,
            app["user_id"],
            events.CUSTOMER_CREATED,
            {"echoAppId": joined["echo_app_id"], "customerId": joined["user_id"], "email": joined["email"]},
        ),
    )
    if row is None:  # the app stopped accepting customers meanwhile: nothing was written
        raise NotFound("Echo app not found", details={"echoAppId": body.echo_app_id})
    created = ApiKeyWithKey(**_to_out(row).model_dump(), key=key)
    return ApiKeyCreated(**created.model_dump(), api_key=created)


def update_key(user_id: UUID, key_id: str, body: ApiKeyUpdate) -> ApiKeyOut:
    """Changes what the body names: fields left out stay; spendLimit null removes the limit. Setting or changing
    a limit counts what the key already spent in the new period."""
    parsed = as_uuid(key_id)
    given = body.model_fields_set
    with db.transaction() as conn:
        current = db.lock_api_key(conn, parsed, user_id) if parsed else None
        if current is None:
            raise NotFound("API key not found")
        name = body.name if "name" in given else current["name"]
        spend_limit = body.spend_limit if "spend_limit" in given else current["spend_limit"]
        period = body.limit_period if "limit_period" in given else current["limit_period"]
        if spend_limit is None:
            period = None
        elif period is None:
            period = "month"  # as on creation: a limit without a period is monthly
        row = db.update_api_key(conn, current["id"], name, spend_limit, period)
    return _to_out(row)


def list_keys(user_id: UUID) -> ApiKeyList:
    return ApiKeyList(api_keys=[_to_out(r) for r in db.api_keys_for_user(user_id)])


def keys_for_app(user_id: UUID, app_id: UUID) -> list[ApiKeyOut]:
    return [_to_out(r) for r in db.api_keys_for_user(user_id, app_id)]


def revoke_key(user_id: UUID, key_id: str) -> ApiKeyOut:
    parsed = as_uuid(key_id)
    row = db.revoke_api_key(parsed, user_id) if parsed else None
    if row is None:
        raise NotFound("API key not found")
    return _to_out(row)


def authenticate(key: str, *, count_hit: bool = False) -> dict[str, Any] | None:
    """The active key's row with its user (and, when counting, its hits this minute), or None. An access token
    answers with its grant's key while the token is unexpired and unrevoked."""
    if key.startswith(ACCESS_TOKEN_PREFIX):
        if not _ACCESS_TOKEN.fullmatch(key):
            return None
        return db.active_api_key_for_access_token(key_hash(key), count_hit=count_hit)
    if not is_well_formed(key):
        return None
    return db.active_api_key(key_hash(key), count_hit=count_hit)


def check_rate(hits: int, retry_after: int) -> None:
    limit = config.settings().rate_limit_per_minute
    if hits > limit:
        raise TooManyRequests(f"More than {limit} requests a minute with this API key", retry_after=max(1, retry_after))


def validate(key: str) -> ValidateApiKeyOut:
    """For an LLM proxy: is this key good, and for whom. A bad key is simply not valid."""
    row = authenticate(key)
    if row is None:
        return ValidateApiKeyOut(valid=False)
    limit = db.key_room(row["id"])
    if limit is not None and limit["room"] <= 0:  # a proxy that checks the key stops serving it until the reset
        return ValidateApiKeyOut(valid=False, reason="key_limit_exceeded", resets_at=limit["resets_at"])
    balance = ledger.get_balance(row["user_id"], with_lots=False)
    spendable = balance.spendable if limit is None else min(balance.spendable, ledger.money(limit["room"]))
    names = db.key_owner_names(row["user_id"], row["echo_app_id"]) or {}
    return ValidateApiKeyOut(
        valid=True,
        user_id=str(row["user_id"]),
        echo_app_id=str(row["echo_app_id"]),
        user=KeyUser(id=str(row["user_id"]), email=row["email"], name=names.get("user_name")),
        echo_app=KeyApp(id=str(row["echo_app_id"]), name=names.get("app_name") or ""),
        balance=balance.balance,
        held=balance.held,
        available=balance.available,
        spendable=spendable,
    )

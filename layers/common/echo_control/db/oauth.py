"""Sign in with Echo: apps as OAuth clients, grants, their codes and tokens (every secret kept as a SHA-256)."""

from uuid import UUID

from echo_control.db.connection import Conn, Row, connection, transaction
from echo_control.db.keys import _ACTIVE_KEY_BY_HASH, insert_api_key

# An app as an OAuth client, with its owner (named on the consent page). Only an active app is a client.
_CLIENT = """
SELECT a.id, a.name, a.description, a.markup, a.user_id, a.accepts_customers, a.redirect_uris,
       u.email AS owner_email, u.name AS owner_name
FROM echo_apps a JOIN users u ON u.id = a.user_id
WHERE a.id = %s AND a.is_active
"""


def oauth_client(app_id: UUID) -> Row | None:
    return connection().execute(_CLIENT, [app_id]).fetchone()


def create_oauth_grant(
    user_id: UUID,
    app_id: UUID,
    key_hash: bytes,
    code_hash: bytes,
    redirect_uri: str,
    code_challenge: str,
    code_seconds: int,
    *,
    as_customer: bool,
) -> UUID | None:
    """A consent: the grant, its key and its authorization code, in one transaction. For someone other than the
    owner it also makes them the app's customer, and is None (nothing written) when the app does not take them."""
    with transaction() as conn:
        key = insert_api_key(
            user_id, app_id, "Sign in with Echo", key_hash, "oauth", "····", None, as_customer=as_customer
        )
        if key is None:
            return None
        grant = conn.execute(
            "INSERT INTO oauth_grants (user_id, echo_app_id, api_key_id) VALUES (%s, %s, %s) RETURNING id",
            [user_id, app_id, key["id"]],
        ).fetchone()
        assert grant is not None
        conn.execute(
            "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) "
            "VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
            [code_hash, grant["id"], redirect_uri, code_challenge, code_seconds],
        )
    grant_id: UUID = grant["id"]
    return grant_id


# A grant is live while neither it nor its key is revoked and its app is active.
_GRANT_LIVE = "(g.revoked_at IS NULL AND k.revoked_at IS NULL AND a.is_active)"

_LOCK_CODE = f"""
SELECT c.grant_id, c.redirect_uri, c.code_challenge, c.used_at, c.expires_at <= now() AS expired,
       g.user_id, g.echo_app_id, {_GRANT_LIVE} AS live
FROM oauth_codes c JOIN oauth_grants g ON g.id = c.grant_id
JOIN api_keys k ON k.id = g.api_key_id JOIN echo_apps a ON a.id = g.echo_app_id
WHERE c.code_hash = %s
FOR UPDATE OF c
"""


def lock_oauth_code(conn: Conn, code_hash: bytes) -> Row | None:
    """The code with its grant, locked until the caller's transaction ends: concurrent exchanges of one code
    take turns, and each after the first finds it used."""
    return conn.execute(_LOCK_CODE, [code_hash]).fetchone()


def use_oauth_code(conn: Conn, code_hash: bytes) -> None:
    conn.execute("UPDATE oauth_codes SET used_at = now() WHERE code_hash = %s", [code_hash])


_LOCK_REFRESH_TOKEN = f"""
SELECT t.grant_id, t.used_at, t.revoked_at, t.expires_at <= now() AS expired,
       g.user_id, g.echo_app_id, {_GRANT_LIVE} AS live
FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
JOIN api_keys k ON k.id = g.api_key_id JOIN echo_apps a ON a.id = g.echo_app_id
WHERE t.token_hash = %s AND t.kind = 'refresh'
FOR UPDATE OF t
"""


def lock_refresh_token(conn: Conn, token_hash: bytes) -> Row | None:
    """The refresh token with its grant, locked until the caller's transaction ends (one rotation at a time)."""
    return conn.execute(_LOCK_REFRESH_TOKEN, [token_hash]).fetchone()


def use_refresh_token(conn: Conn, token_hash: bytes) -> None:
    conn.execute("UPDATE oauth_tokens SET used_at = now() WHERE token_hash = %s", [token_hash])


def insert_oauth_tokens(
    conn: Conn, grant_id: UUID, access_hash: bytes, access_seconds: int, refresh_hash: bytes, refresh_seconds: int
) -> None:
    conn.execute(
        "INSERT INTO oauth_tokens (token_hash, grant_id, kind, expires_at) VALUES "
        "(%s, %s, 'access', now() + make_interval(secs => %s)), (%s, %s, 'refresh', now() + make_interval(secs => %s))",
        [access_hash, grant_id, access_seconds, refresh_hash, grant_id, refresh_seconds],
    )


def oauth_token(token_hash: bytes) -> Row | None:
    """A token of either kind with its grant's app (RFC 7009 revocation looks tokens up by their value)."""
    return (
        connection()
        .execute(
            "SELECT t.token_hash, t.kind, t.grant_id, g.echo_app_id FROM oauth_tokens t "
            "JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = %s",
            [token_hash],
        )
        .fetchone()
    )


def revoke_oauth_token(token_hash: bytes) -> None:
    with transaction() as conn:
        conn.execute(
            "UPDATE oauth_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE token_hash = %s", [token_hash]
        )


# Revoking a grant revokes its key, which the access-token lookup below checks: every token stops at once.
_REVOKE_GRANTS = """
WITH ended AS (
    UPDATE oauth_grants SET revoked_at = now(), revoked_reason = %(reason)s
    WHERE revoked_at IS NULL
      AND (id = %(grant_id)s OR (%(grant_id)s::uuid IS NULL AND user_id = %(user_id)s AND echo_app_id = %(app_id)s))
    RETURNING api_key_id
)
UPDATE api_keys k SET revoked_at = COALESCE(k.revoked_at, now()) FROM ended WHERE k.id = ended.api_key_id
"""


def revoke_oauth_grants(
    conn: Conn,
    reason: str,
    *,
    grant_id: UUID | None = None,
    user_id: UUID | None = None,
    app_id: UUID | None = None,
) -> int:
    """Ends one grant (grant_id), or every live grant of a user for an app; how many keys that stopped."""
    params = {"reason": reason, "grant_id": grant_id, "user_id": user_id, "app_id": app_id}
    return conn.execute(_REVOKE_GRANTS, params).rowcount


# The authorizer's lookup of an API key, for an access token: the same row (its grant's key), rate window and all.
_MATCH_GRANT_KEY = (
    "k.id = (SELECT g.api_key_id FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id "
    "WHERE t.token_hash = %(hash)s AND t.kind = 'access' AND t.revoked_at IS NULL AND t.expires_at > now() "
    "AND g.revoked_at IS NULL)"
)
_ACTIVE_KEY_BY_ACCESS_TOKEN = _ACTIVE_KEY_BY_HASH.replace("k.key_hash = %(hash)s", _MATCH_GRANT_KEY, 1)
assert _ACTIVE_KEY_BY_ACCESS_TOKEN != _ACTIVE_KEY_BY_HASH, "the API key lookup no longer matches by k.key_hash"


def active_api_key_for_access_token(token_hash: bytes, *, count_hit: bool) -> Row | None:
    return connection().execute(_ACTIVE_KEY_BY_ACCESS_TOKEN, {"hash": token_hash, "count_hit": count_hit}).fetchone()


_CONNECTED_APPS = f"""
SELECT a.id, a.name, a.description, a.markup, u.email AS owner_email, u.name AS owner_name,
       min(g.created_at) AS connected_at, max(k.last_used_at) AS last_used_at, count(*) AS grants
FROM oauth_grants g JOIN api_keys k ON k.id = g.api_key_id JOIN echo_apps a ON a.id = g.echo_app_id
JOIN users u ON u.id = a.user_id
WHERE g.user_id = %s AND {_GRANT_LIVE}
GROUP BY a.id, u.id
ORDER BY min(g.created_at) DESC, a.id
"""


def connected_apps(user_id: UUID) -> list[Row]:
    """The apps this person signed in to with Echo and has not disconnected, one row per app."""
    return connection().execute(_CONNECTED_APPS, [user_id]).fetchall()


# Codes and tokens a day past their expiry: nothing can use them any more, and a reuse that late proves nothing.
_PURGE_EXPIRED = """
WITH codes AS (
    DELETE FROM oauth_codes c USING (
        SELECT code_hash FROM oauth_codes WHERE expires_at < now() - interval '1 day'
        LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) old WHERE c.code_hash = old.code_hash RETURNING 1
), tokens AS (
    DELETE FROM oauth_tokens t USING (
        SELECT token_hash FROM oauth_tokens WHERE expires_at < now() - interval '1 day'
        LIMIT %(limit)s FOR UPDATE SKIP LOCKED
    ) old WHERE t.token_hash = old.token_hash RETURNING 1
)
SELECT (SELECT count(*) FROM codes) + (SELECT count(*) FROM tokens) AS purged
"""


def purge_expired_oauth_secrets(limit: int) -> int:
    """Deletes up to `limit` codes and up to `limit` tokens a day past their expiry; how many rows went."""
    row = connection().execute(_PURGE_EXPIRED, {"limit": limit}).fetchone()
    return int(row["purged"]) if row else 0

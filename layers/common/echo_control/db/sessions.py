"""Sessions we start, revocable server-side, and OpenID Connect sign-ins in flight."""

from uuid import UUID

from echo_control.db.connection import Row, connection

# Ended sessions and abandoned sign-ins are few beside the live ones; each start sweeps a bounded batch of them.
_SWEEP_SESSIONS = """
DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < now() - interval '1 day' LIMIT 100)
"""
_SWEEP_SIGN_INS = """
DELETE FROM oidc_sign_ins WHERE state_hash IN (SELECT state_hash FROM oidc_sign_ins WHERE expires_at < now() LIMIT 100)
"""

_LIVE_SESSION_USER = """
SELECT u.id, u.email, u.name, u.role, s.id AS session_id
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.revoked_at IS NULL AND s.expires_at > now() AND
"""
_BY_ID = _LIVE_SESSION_USER + "s.id = %s"
_BY_TOKEN = _LIVE_SESSION_USER + "s.token_hash = %s"


def start_session(user_id: UUID, seconds: int, token_hash: bytes | None = None) -> UUID:
    """A new session of this user, live for `seconds`; `token_hash` is set for opaque (cookie) tokens."""
    conn = connection()
    conn.execute(_SWEEP_SESSIONS)
    row = conn.execute(
        "INSERT INTO sessions (user_id, token_hash, expires_at) VALUES (%s, %s, now() + make_interval(secs => %s))"
        " RETURNING id",
        [user_id, token_hash, seconds],
    ).fetchone()
    assert row is not None
    session_id: UUID = row["id"]
    return session_id


def session_user(session_id: UUID) -> Row | None:
    """The user of a live session (neither revoked nor expired), found by its id."""
    return connection().execute(_BY_ID, [session_id]).fetchone()


def session_user_by_token(token_hash: bytes) -> Row | None:
    """The user of a live session, found by the SHA-256 of its opaque token."""
    return connection().execute(_BY_TOKEN, [token_hash]).fetchone()


def revoke_session(session_id: UUID) -> None:
    connection().execute("UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", [session_id])


def insert_oidc_sign_in(state_hash: bytes, nonce: str, code_verifier: str, next_path: str, seconds: int) -> None:
    conn = connection()
    conn.execute(_SWEEP_SIGN_INS)
    conn.execute(
        "INSERT INTO oidc_sign_ins (state_hash, nonce, code_verifier, next_path, expires_at)"
        " VALUES (%s, %s, %s, %s, now() + make_interval(secs => %s))",
        [state_hash, nonce, code_verifier, next_path, seconds],
    )


def take_oidc_sign_in(state_hash: bytes) -> Row | None:
    """The sign-in this state started, deleted as it is read (a state works once), or None if unknown or expired."""
    row = (
        connection()
        .execute(
            "DELETE FROM oidc_sign_ins WHERE state_hash = %s"
            " RETURNING nonce, code_verifier, next_path, expires_at > now() AS live",
            [state_hash],
        )
        .fetchone()
    )
    return row if row and row["live"] else None

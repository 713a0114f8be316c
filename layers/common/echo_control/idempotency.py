"""Idempotency-Key, once for every money write: `once(scope, key, request, write)`.

The key is claimed in the write's own transaction (a concurrent request with the same key waits on the claim until
that transaction ends), the request's hash is compared with the one that claimed it, and the write's answer is
stored beside the key before the commit. So a retry replays the first answer, another request under the same key is
409 `idempotency_key_reused` (never someone else's answer), and a write that is refused (a 4xx raised inside it)
rolls its claim back with everything else: a later retry may succeed. The shape of formance/ledger's forgeLog.

Scopes say who may reuse a key: an API key's calls and holds (a signed-in user's own, when no key is involved),
a user's payouts, the adjustments an admin makes to one user, and a hold's one settle.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from echo_control import db
from echo_control.errors import Conflict, EchoError
from echo_control.identity import Caller

ScopeKind = Literal["api_key", "user", "adjusted_user", "hold"]


@dataclass(frozen=True)
class Scope:
    kind: ScopeKind
    id: UUID

    @classmethod
    def of_caller(cls, who: Caller) -> "Scope":
        """Calls and holds: the API key that makes them, or the user when signed in without one."""
        return cls("api_key", who.api_key_id) if who.api_key_id else cls("user", who.user_id)

    @classmethod
    def user(cls, user_id: UUID) -> "Scope":
        return cls("user", user_id)

    @classmethod
    def adjusted_user(cls, user_id: UUID) -> "Scope":
        """An admin's adjustments of one user: two admins retrying the same adjustment apply it once."""
        return cls("adjusted_user", user_id)

    @classmethod
    def hold(cls, hold_id: UUID) -> "Scope":
        return cls("hold", hold_id)


@dataclass(frozen=True)
class Outcome:
    body: dict[str, Any]  # the answer as JSON, the first one again when replayed
    replayed: bool


def _canonical(value: Any) -> Any:
    # Money is compared by value: "10", "10.00" and 10.0 are one amount; -0 is 0.
    if isinstance(value, Decimal):
        return format(value.normalize() + 0, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def request_hash(request: BaseModel) -> str:
    """The request's fingerprint: its fields (by their API names), sorted, money by value."""
    dumped = request.model_dump(by_alias=True)
    canonical = json.dumps(dumped, sort_keys=True, separators=(",", ":"), default=_canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()


def once(
    scope: Scope,
    key: str | None,
    request: BaseModel,
    write: Callable[[db.Conn], BaseModel],
    *,
    operation: str,
    single_statement: bool = False,
    reused: EchoError | None = None,
) -> Outcome:
    """Runs `write` (given the transaction's connection) once per (scope, key) and answers what it returned.

    Without a key, `write` runs in a transaction of its own, or on the autocommit connection when it is one
    statement (`single_statement`: the metering hot path saves the BEGIN and COMMIT). `reused` replaces the 409
    for routes whose key is implicit (a hold's settle)."""
    if key is None:
        if single_statement:
            return Outcome(_json(write(db.connection())), replayed=False)
        with db.pipelined_transaction() as conn:
            return Outcome(_json(write(conn)), replayed=False)
    digest = request_hash(request)
    # Pipelined: BEGIN travels with the claim, and the stored answer with the COMMIT (a settle's claim, statement
    # and answer in three round trips instead of five).
    with db.pipelined_transaction() as conn:
        prior = db.claim_idempotency_key(conn, scope.kind, scope.id, key, operation, digest)
        if prior is not None:
            if prior["operation"] != operation or prior["request_hash"] != digest:
                raise reused or Conflict(
                    "This Idempotency-Key was used with a different request", code="idempotency_key_reused"
                )
            return Outcome(prior["response"], replayed=True)
        body = _json(write(conn))
        db.store_idempotent_response(conn, scope.kind, scope.id, key, body)
    return Outcome(body, replayed=False)


def _json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)

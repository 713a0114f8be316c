"""Housekeeping: the scheduled sweeps (functions/run_housekeeping, every 15 minutes) that keep what expires from
piling up.

Each sweep is one bounded step: it settles at most the batch limit of rows per run (what is left waits for the
next run) and is idempotent (a second run finds nothing; two runs at once take different rows). Adding a sweep is
one more entry in SWEEPS: a name for its count and a function of the limit that returns how many rows it settled.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from echo_control import config, db
from echo_control.observability import count, logger

# An Idempotency-Key replays its first response for 24 hours; after that the key may be used afresh.
IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
# Stripe Checkout sessions expire 24 hours after creation (its default, and its longest); the payment row is made
# just before its session. The extra hour lets a completion sent at the last moment arrive first. (A completion
# that comes later still credits the payment: an expired payment that Stripe reports paid becomes completed.)
# Developers' webhook events (with their deliveries and attempts) are kept 30 days for the Webhooks page and resends;
# one still being delivered stays until it is done.
WEBHOOK_EVENTS_KEPT = timedelta(days=30)
CHECKOUT_PAYABLE_FOR = timedelta(hours=25)


class ScheduledEvent(BaseModel):
    """What EventBridge Scheduler's rule sends (events/run_housekeeping.json). Here rather than in `models`, the
    API's contract: importing that package would add its hundreds of milliseconds to this function's cold start."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    time: AwareDatetime
    resources: list[str] = []


@dataclass(frozen=True)
class Sweep:
    name: str  # the key of its count in the result, e.g. "paymentsExpired"
    metric: str
    run: Callable[[int], int]  # settles at most `limit` rows; returns how many it did


SWEEPS: tuple[Sweep, ...] = (
    Sweep(
        "idempotencyKeysPurged",
        "IdempotencyKeysPurged",
        lambda limit: db.purge_idempotency_keys(IDEMPOTENCY_KEY_TTL, limit),
    ),
    Sweep("paymentsExpired", "PaymentsExpired", lambda limit: db.expire_pending_payments(CHECKOUT_PAYABLE_FOR, limit)),
    Sweep("pageFlashesPurged", "PageFlashesPurged", db.purge_expired_flashes),
    Sweep("holdsExpired", "HoldsExpired", lambda limit: _expire_lapsed_holds(limit)),
    Sweep("grantsExpired", "GrantsExpired", lambda limit: expire_grants(limit)),
    Sweep("earningsFolded", "EarningsFolded", db.fold_earnings),
    Sweep("rateLimitWindowsPurged", "RateLimitWindowsPurged", db.purge_rate_limit_windows),
    Sweep(
        "webhookEventsPurged",
        "WebhookEventsPurged",
        lambda limit: db.purge_webhook_events(WEBHOOK_EVENTS_KEPT, limit),
    ),
    Sweep("oauthSecretsPurged", "OAuthSecretsPurged", db.purge_expired_oauth_secrets),
)


def _expire_lapsed_holds(limit: int) -> int:
    """Marks holds past their expiresAt expired and takes them out of the cached held sums. They stopped counting
    at expiresAt already (every debit and hold reads them as lapsed); this keeps the cache and the table small."""
    with db.transaction() as conn:
        return db.sweep_lapsed_holds(conn, limit) or 0  # None: another run is sweeping


def expire_grants(limit: int) -> int:
    """Takes what is left of grants past their expiresAt out of their users' balances, each with a `grant_expired`
    statement entry. They stopped counting at expiresAt already (every read and debit leaves them out); this makes
    the balance say so. Each lot once (the entry's key is the lot's), under its user's balance lock."""
    done = 0
    for lot in db.expired_grant_lots(limit):
        with db.transaction() as conn:
            row = db.apply_entry(
                conn,
                user_id=lot["user_id"],
                kind="grant_expired",
                amount=-lot["remaining"],
                idempotency_key=f"grant-expired:{lot['id']}",
                reason="The rest of a credit grant expired",
                lot_id=lot["id"],
            )
        done += row is not None
    return done


class HousekeepingFailed(RuntimeError):
    """Some sweep failed (logged with its error); the others ran. The run fails, so Lambda's Errors metric and
    EventBridge's retry see it."""


def run_housekeeping(batch_limit: int | None = None, sweeps: tuple[Sweep, ...] = SWEEPS) -> dict[str, int | bool]:
    """Runs every sweep once with the batch limit (ECHO_HOUSEKEEPING_BATCH_LIMIT unless given).

    Returns each sweep's count, the limit, and `complete`: False when a sweep reached the limit, so rows may be
    left for the next run."""
    limit = batch_limit or config.settings().housekeeping_batch_limit
    result: dict[str, int | bool] = {}
    failed = []
    for sweep in sweeps:
        try:
            done = sweep.run(limit)
        except Exception:
            logger.exception("housekeeping sweep failed", extra={"sweep": sweep.name})
            count("HousekeepingSweepFailed")
            db.discard_connection()  # the next sweep starts on a fresh connection
            failed.append(sweep.name)
            continue
        result[sweep.name] = done
        if done:
            count(sweep.metric, done)
    result["batchLimit"] = limit
    result["complete"] = not failed and all(result[sweep.name] < limit for sweep in sweeps)
    logger.info("housekeeping", extra={"counts": result, "failed": failed})
    if failed:
        raise HousekeepingFailed(f"housekeeping sweeps failed: {', '.join(failed)}")
    return result

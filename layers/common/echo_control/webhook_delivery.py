"""Delivering developers' webhooks from the outbox, as Standard Webhooks says: one POST of `{type, timestamp, data}`
per delivery, signed by the `standardwebhooks` library (webhook-id: the event's id, the same on every attempt;
webhook-timestamp; webhook-signature `v1,<base64 HMAC-SHA256>`).

Each attempt resolves the URL's host and refuses private, loopback, link-local, metadata and other non-public
addresses (unless ECHO_WEBHOOKS_ALLOW_PRIVATE=true, for local development), then connects to the address it checked
(no second lookup to rebind), follows no redirect, waits at most 5 seconds and keeps at most 1 KB of the answer.
A failure is retried after 5 s, 5 min, 30 min, 2 h, 5 h and 10 h; after that the delivery is `failed`. An endpoint
whose every attempt failed for 5 days is disabled (its owner sees it on the Webhooks page).

The same code sends everywhere: locally a thread of the runner (`run_local`) sends what is due as soon as a
transaction that emitted an event commits (NOTIFY); in the cloud the relay (`relay`, on a schedule) puts due
deliveries on an SQS queue and the delivery function (`handle_queue_batch`) sends each, using the message's
visibility timeout as the backoff."""

import base64
import hashlib
import http.client
import ipaddress
import json
import os
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from echo_control import config, db
from echo_control.errors import Unprocessable
from echo_control.identity import as_uuid
from echo_control.observability import count, logger

BACKOFF = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=6, minutes=25),  # the last attempt 24 hours after the first
)
DISABLE_AFTER = timedelta(days=5)
TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 1024
SECRET_BYTES = 32
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "Echo-Webhooks/1.0"
KEY_FILE = "webhook-key"
NOTIFY_CHANNEL = "webhook_deliveries"
# Deliveries one sender takes at a time, sent in parallel by this many threads.
BATCH = 50
WORKERS = 8
# SQS: a message's delay and visibility timeout are at most 15 minutes and 12 hours.
MAX_DELAY_SECONDS = 900
MAX_VISIBILITY_SECONDS = 12 * 3600
# The relay puts a delivery on the queue again when it is this overdue (its message was lost or dead-lettered).
REQUEUE_AFTER = timedelta(minutes=15)


class Refused(Exception):
    """The target may not be called (its address or scheme); never sent, retried like any failure."""


# --- secrets: sealed at rest, since signing needs the secret itself ------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _sealing_key() -> bytes:
    """The SHA-256 of ECHO_WEBHOOK_KEY, or of the secret WEBHOOK_KEY_SECRET_ARN names (the cloud: required; the
    template generates it), or locally of a key made once into the data folder. At least 32 characters."""
    settings = config.settings()
    text = config.webhook_key_text()
    if not text and settings.in_cloud:
        raise config.misconfigured("the webhook key is missing (WEBHOOK_KEY_SECRET_ARN)")
    if not text:
        path = settings.data_dir / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_urlsafe(48))
            except FileExistsError:  # another process made it first: use theirs
                pass
        text = path.read_text()
    text = text.strip()
    if len(text) < 32:
        raise config.misconfigured("the webhook key is shorter than 32 characters")
    return hashlib.sha256(text.encode()).digest()


def seal(endpoint_id: UUID, secret: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(_sealing_key()).encrypt(nonce, secret.encode(), endpoint_id.bytes)


def unseal(endpoint_id: UUID, sealed: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(_sealing_key()).decrypt(sealed[:12], sealed[12:], endpoint_id.bytes).decode()


# --- where we may send ----------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """The URL as it will be called, or 422: https (http too outside the cloud), a host, no credentials, and no
    private address literal (names are resolved and checked again at each send)."""
    parts = urlsplit(url)
    allowed = ("https",) if config.settings().in_cloud else ("https", "http")
    if parts.scheme not in allowed:
        raise Unprocessable(f"url must be {' or '.join(allowed)}", details={"field": "url"}, code="invalid_url")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or parts.username or parts.password or port == 0 or port == -1 or parts.fragment:
        raise Unprocessable(
            "url must name a host (no credentials, no fragment)", details={"field": "url"}, code="invalid_url"
        )
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    private = literal is not None and not _public(literal)
    if (private or parts.hostname.lower().rstrip(".") == "localhost") and not config.settings().webhooks_allow_private:
        raise Unprocessable(
            "url must not point at a private, loopback or link-local address",
            details={"field": "url"},
            code="private_url",
        )
    return url


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return address.is_global and not address.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """The host's addresses, each one allowed; Refused when any is not (a name may not hide a private address
    among public ones), or when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"cannot resolve {host}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not config.settings().webhooks_allow_private:
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%")[0])):
                raise Refused(f"{host} resolves to a non-public address ({address})")
    if not addresses:
        raise Refused(f"cannot resolve {host}")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked, whatever the name resolves to by now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


# --- one attempt ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    body: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def payload(row: dict[str, Any]) -> str:
    """The body every attempt of a delivery sends (the same bytes each time)."""
    created: datetime = row["event_created_at"]
    return json.dumps(
        {
            "type": row["type"],
            "timestamp": created.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": row["data"],
        },
        separators=(",", ":"),
    )


def signed_headers(event_id: str, secret: str, body: str, at: datetime | None = None) -> dict[str, str]:
    from standardwebhooks import Webhook

    at = at or datetime.now(UTC)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, body),
    }


def post(url: str, body: str, headers: dict[str, str]) -> Outcome:
    """One POST to a checked address: the status and at most 1 KB of the answer; no redirect is followed."""
    started = time.monotonic()
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection: http.client.HTTPConnection | None = None
    try:
        if parts.scheme == "http" and config.settings().in_cloud:
            raise Refused("only https URLs are called in the cloud")
        address = resolve(host, port)[0]
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = kind(host, port, address, TIMEOUT_SECONDS)
        connection.request(
            "POST",
            path,
            body=body.encode(),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        answer = response.read(MAX_RESPONSE_BYTES)
        text = answer.decode("utf-8", errors="replace").encode()[:MAX_RESPONSE_BYTES].decode("utf-8", "ignore")
        return Outcome(response.status, None, text.replace("\x00", ""), _ms(started))
    except Refused as exc:
        return Outcome(None, f"refused: {exc}"[:500], None, _ms(started))
    except (OSError, http.client.HTTPException) as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:500], None, _ms(started))
    finally:
        if connection is not None:
            connection.close()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def attempt(row: dict[str, Any]) -> dict[str, Any] | None:
    """Sends one leased delivery and records what happened; the delivery's state after it (None if it was deleted
    meanwhile)."""
    body = payload(row)
    try:
        secret = unseal(row["endpoint_id"], row["secret_sealed"])
    except Exception:  # a key that no longer opens it: nothing can be signed, so nothing is sent
        logger.error("webhook secret cannot be unsealed", extra={"endpoint_id": str(row["endpoint_id"])})
        outcome = Outcome(None, "the endpoint's secret cannot be read", None, 0)
    else:
        outcome = post(row["url"], body, signed_headers(str(row["event_id"]), secret, body))
    retry_in = None if outcome.ok or row["attempts"] >= len(BACKOFF) else BACKOFF[row["attempts"]]
    state = db.record_attempt(
        row["id"],
        ok=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error,
        body=outcome.body,
        duration_ms=outcome.duration_ms,
        retry_in=retry_in,
        disable_after=DISABLE_AFTER,
    )
    count("WebhookDelivered" if outcome.ok else "WebhookAttemptFailed")
    if state is not None and state["disabled"]:
        logger.warning(
            "webhook endpoint disabled after 5 days of failures", extra={"endpoint_id": str(row["endpoint_id"])}
        )
    return state


# --- senders ---------------------------------------------------------------------------------------------


def deliver_due(limit: int = BATCH, pool: ThreadPoolExecutor | None = None) -> int:
    """Sends up to `limit` due deliveries (in parallel on `pool`, else one by one); how many it sent."""
    rows = db.lease_due(limit)
    if pool is None:
        for row in rows:
            attempt(row)
    else:
        list(pool.map(_attempt_on_own_connection, rows))
    return len(rows)


def _attempt_on_own_connection(row: dict[str, Any]) -> None:
    try:
        attempt(row)
    except Exception:
        logger.exception("webhook attempt failed to record")  # the lease ends and it is sent again
        db.discard_connection()


def run_local(stop: threading.Event) -> None:
    """The local runner's deliverer: sends what is due, then sleeps until a transaction that emitted an event
    commits (NOTIFY) or the next retry is due (at most a second)."""
    import psycopg

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="webhook-send") as pool:
        while not stop.is_set():
            try:
                with psycopg.connect(config.database_url(), autocommit=True) as listener:
                    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not stop.is_set():
                        while deliver_due(BATCH, pool) == BATCH and not stop.is_set():
                            pass
                        for _ in listener.notifies(timeout=1.0, stop_after=1):
                            pass
            except Exception:
                logger.exception("local webhook deliverer: retrying in a second")
                db.discard_connection()
                stop.wait(1.0)


def start_local() -> threading.Thread:
    """Starts run_local on a daemon thread (the local runner's)."""
    stop = threading.Event()
    thread = threading.Thread(target=run_local, args=(stop,), name="webhook-deliverer", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread


# --- the cloud: outbox → SQS → delivery function ------------------------------------------------------------


def relay(sqs: Callable[[], Any], queue_url: str, limit: int = 1000) -> int:
    """Puts pending deliveries not yet queued (or overdue, their message lost) on the queue, each delayed until it
    is due (up to SQS's 15 minutes; the delivery function waits out the rest); how many it queued."""
    rows = db.deliveries_to_queue(limit, REQUEUE_AFTER)
    failed: list[UUID] = []
    for start in range(0, len(rows), 10):
        batch = rows[start : start + 10]
        entries = [
            {
                "Id": str(i),
                "MessageBody": json.dumps({"deliveryId": str(row["id"])}),
                "DelaySeconds": min(int(row["wait"]), MAX_DELAY_SECONDS),
            }
            for i, row in enumerate(batch)
        ]
        answer = sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)
        failed += [batch[int(f["Id"])]["id"] for f in answer.get("Failed", [])]
    if failed:
        db.unqueue(failed)
    return len(rows) - len(failed)


def handle_queue_batch(event: dict[str, Any], sqs: Callable[[], Any], queue_url: str) -> dict[str, Any]:
    """The delivery function's work on one SQS batch: each message names a delivery. A delivery sent (or no longer
    pending) is done; one to try again later stays on the queue, invisible until then (the backoff), reported as
    a batch item failure. `sqs` makes the SQS client, when one is needed."""
    failures = []
    for record in event.get("Records", []):
        try:
            delivery_id = as_uuid(json.loads(record["body"]).get("deliveryId"))
        except (ValueError, AttributeError, KeyError):
            delivery_id = None
        if delivery_id is None:
            logger.warning("webhook queue message without a delivery id")
            continue  # nothing to deliver: dropped
        wait = _send_queued(delivery_id)
        if wait is not None:
            failures.append({"itemIdentifier": record["messageId"]})
            sqs().change_message_visibility(
                QueueUrl=queue_url,
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=max(1, min(int(wait), MAX_VISIBILITY_SECONDS)),
            )
    return {"batchItemFailures": failures}


def _send_queued(delivery_id: UUID) -> float | None:
    """Sends the delivery if it is due; seconds until it should be looked at again, or None when it is done."""
    row = db.lease_one(delivery_id)
    if row is not None:
        attempt(row)
    state = db.delivery_state(delivery_id)
    if state is None or state["status"] != "pending":
        return None
    return float(state["wait"]) or 1.0

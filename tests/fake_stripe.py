"""A fake of Stripe's API on loopback, for the real `stripe` SDK (STRIPE_API_BASE).

Connect: Express accounts, account links and transfers, which can be refused (a 400: nothing made) or lost (made,
but answered 503 until the mode changes, as when Stripe's answers do not come back; the SDK's own retries with the
same key then get the 503 too).

Saved cards and off-session charges: customers, Checkout sessions (setup mode included; `complete_setup` does what a
customer finishing one does: a SetupIntent that succeeded, its card attached, and Stripe's events), SetupIntents and
PaymentMethods to retrieve (`expand[]` honoured), and off-session PaymentIntents whose outcome is the test card's, as
Stripe's test cards behave: `pm_card_visa` succeeds, `pm_card_chargeDeclined` is declined (402 card_declined),
`pm_card_authenticationRequired` needs the customer present (402 authentication_required), `pm_card_requiresAction`
is left requiring action (200, status requires_action). Payment intents can be lost like transfers.

Each POST honours Idempotency-Key as Stripe does (the same key answers the first answer, and makes nothing new).
With `send_events_to(url, secret)` the fake delivers the events Stripe would (checkout.session.completed,
setup_intent.succeeded, payment_intent.succeeded / payment_failed), signed as Stripe signs them."""

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_KEY = "sk_test_fake"
# The test cards' off-session outcomes (Stripe's test payment methods; pm_card_requiresAction is the fake's own).
CARDS = {
    "pm_card_visa": ("visa", "4242", "succeeds"),
    "pm_card_chargeDeclined": ("visa", "0002", "declines"),
    "pm_card_authenticationRequired": ("visa", "3184", "authentication_required"),
    "pm_card_requiresAction": ("visa", "3220", "requires_action"),
}


def _card_error(code: str, message: str, intent: dict[str, Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "card_error", "code": code, "decline_code": code, "message": message}
    if intent is not None:
        error["payment_intent"] = intent
    return {"error": error}


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # every POST: path, form fields, idempotency key
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.setup_intents: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.payment_intents: dict[str, dict[str, Any]] = {}
        self.transfer_mode = "ok"  # "ok", "refuse" (400: nothing made) or "lose" (made, answered 503)
        self.intent_mode = "ok"  # "ok" or "lose" (made, answered 503 until the mode changes)
        self.transfer_delay = 0.0
        self.events_sent: list[dict[str, Any]] = []  # each event delivered, with our endpoint's status
        self.hold_events = False  # True: events wait (Stripe's are late) until release_events()
        self._held: list[dict[str, Any]] = []
        self._webhook: tuple[str, str] | None = None
        self._replies: dict[str, tuple[int, dict[str, Any]]] = {}  # idempotency key → first answer
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._senders: list[threading.Thread] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "FakeStripe":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.wait_for_events()
        self.server.shutdown()

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    # --- events ------------------------------------------------------------------------------------------------

    def send_events_to(self, url: str, secret: str) -> None:
        """Deliver the events Stripe would to our webhook endpoint at `url`, signed with `secret`."""
        self._webhook = (url, secret)

    def _deliver(self, event_type: str, obj: dict[str, Any], *, later: bool = False) -> None:
        if self._webhook is None:
            return
        event = {
            "id": f"evt_fake{uuid.uuid4().hex[:16]}",
            "object": "event",
            "type": event_type,
            "created": int(time.time()),
            "data": {"object": json.loads(json.dumps(obj))},
        }
        if self.hold_events:
            self._held.append(event)
        elif later:  # after the request that caused it has been answered, as Stripe's events arrive
            sender = threading.Thread(target=self._post_event, args=(event, 0.05), daemon=True)
            self._senders.append(sender)
            sender.start()
        else:
            self._post_event(event, 0)

    def _post_event(self, event: dict[str, Any], delay: float) -> None:
        time.sleep(delay)
        assert self._webhook is not None
        url, secret = self._webhook
        payload = json.dumps(event)
        stamp = int(time.time())
        signature = hmac.new(secret.encode(), f"{stamp}.{payload}".encode(), hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            url,
            data=payload.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": f"t={stamp},v1={signature}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as answer:
            status = answer.code
        self.events_sent.append({"type": event["type"], "object": event["data"]["object"], "status": status})

    def release_events(self) -> None:
        """Delivers the events held back, in order."""
        self.hold_events, held, self._held = False, self._held, []
        for event in held:
            self._post_event(event, 0)

    def wait_for_events(self, timeout: float = 10) -> None:
        """Until every event sent after its request was answered has been delivered."""
        for sender in list(self._senders):
            sender.join(timeout)

    # --- what a customer does in Stripe's pages ----------------------------------------------------------------

    def complete_setup(self, session_id: str, card: str = "pm_card_visa") -> dict[str, Any]:
        """The customer saved `card` in a setup-mode session: the card is attached to the session's customer, the
        SetupIntent succeeded, and Stripe's two events are delivered. Returns the SetupIntent."""
        with self._lock:
            session = self.sessions[session_id]
            brand, last4, _ = CARDS[card]
            method_id = f"{card}_{next(self._ids)}"
            method = {
                "id": method_id,
                "object": "payment_method",
                "type": "card",
                "customer": session["customer"],
                "card": {"brand": brand, "last4": last4, "exp_month": 12, "exp_year": 2034},
            }
            self.payment_methods[method_id] = method
            intent = {
                "id": f"seti_fake{uuid.uuid4().hex[:16]}",
                "object": "setup_intent",
                "status": "succeeded",
                "usage": "off_session",
                "customer": session["customer"],
                "payment_method": method_id,
                "metadata": session.get("setup_intent_metadata", {}),
            }
            self.setup_intents[intent["id"]] = intent
            session.update(status="complete", setup_intent=intent["id"])
        self._deliver("checkout.session.completed", session)
        self._deliver("setup_intent.succeeded", intent)
        return intent

    # --- the API -----------------------------------------------------------------------------------------------

    def _answer(self, path: str, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append({"path": path, "form": form, "idempotency_key": key})
            if path == "/v1/transfers":
                return self._transfer(form, key)
            if key is not None and key in self._replies:
                reply = self._replies[key]
            else:
                reply = self._make(path, form)
                if key is not None:
                    self._replies[key] = reply
            if path == "/v1/payment_intents" and self.intent_mode == "lose":
                return 503, {"error": {"type": "api_error", "message": "An error occurred; the answer was lost"}}
            return reply

    def _retrieve(self, path: str, expand: list[str]) -> tuple[int, dict[str, Any]]:
        collections = {
            "/v1/setup_intents/": self.setup_intents,
            "/v1/payment_methods/": self.payment_methods,
            "/v1/payment_intents/": self.payment_intents,
            "/v1/customers/": self.customers,
            "/v1/checkout/sessions/": self.sessions,
        }
        prefix = next((p for p in collections if path.startswith(p)), None)
        obj = collections[prefix].get(path.removeprefix(prefix)) if prefix else None
        if obj is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": path}}
        obj = dict(obj)
        if "payment_method" in expand and isinstance(obj.get("payment_method"), str):
            obj["payment_method"] = self.payment_methods.get(obj["payment_method"])
        return 200, obj

    def _make(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        if path == "/v1/accounts":
            account = {
                "id": f"acct_fake{uuid.uuid4().hex[:16]}",
                "object": "account",
                "type": form.get("type"),
                "email": form.get("email"),
                "payouts_enabled": False,
                "metadata": metadata,
            }
            self.accounts[account["id"]] = account
            return 200, account
        if path == "/v1/account_links":
            link = f"https://connect.stripe.com/setup/e/{form['account']}/{next(self._ids)}"
            return 200, {"object": "account_link", "url": link, "expires_at": int(time.time()) + 300}
        if path == "/v1/customers":
            customer = {"id": f"cus_fake{uuid.uuid4().hex[:14]}", "object": "customer", "email": form.get("email")}
            self.customers[customer["id"]] = {**customer, "metadata": metadata}
            return 200, self.customers[customer["id"]]
        if path == "/v1/checkout/sessions":
            return self._session(form, metadata)
        if path == "/v1/payment_intents":
            return self._payment_intent(form, metadata)
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}

    def _session(self, form: dict[str, str], metadata: dict[str, str]) -> tuple[int, dict[str, Any]]:
        mode = form.get("mode")
        if mode == "setup" and form.get("customer") not in self.customers:
            return 400, {"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "customer"}}
        session_id = f"cs_test_{uuid.uuid4().hex}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": mode,
            "status": "open",
            "customer": form.get("customer"),
            "client_reference_id": form.get("client_reference_id"),
            "payment_method_types": [v for k, v in sorted(form.items()) if k.startswith("payment_method_types[")],
            "setup_intent": None,
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "metadata": metadata,
            "setup_intent_metadata": {
                k[len("setup_intent_data[metadata][") : -1]: v
                for k, v in form.items()
                if k.startswith("setup_intent_data[metadata][")
            },
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return 200, session

    def _payment_intent(self, form: dict[str, str], metadata: dict[str, str]) -> tuple[int, dict[str, Any]]:
        method = self.payment_methods.get(form.get("payment_method", ""))
        if method is None or method["customer"] != form.get("customer"):
            error = {"type": "invalid_request_error", "code": "resource_missing", "param": "payment_method"}
            return 400, {"error": {**error, "message": "No such PaymentMethod"}}
        kind = next(outcome for name, (_, _, outcome) in CARDS.items() if method["id"].startswith(name + "_"))
        intent: dict[str, Any] = {
            "id": f"pi_fake{uuid.uuid4().hex[:16]}",
            "object": "payment_intent",
            "amount": int(form["amount"]),
            "amount_received": 0,
            "currency": form["currency"],
            "customer": form["customer"],
            "payment_method": method["id"],
            "off_session": form.get("off_session") == "true",
            "metadata": metadata,
            "last_payment_error": None,
        }
        self.payment_intents[intent["id"]] = intent
        if kind == "succeeds":
            intent.update(status="succeeded", amount_received=intent["amount"])
            self._deliver("payment_intent.succeeded", intent, later=True)
            return 200, intent
        if kind == "requires_action":
            intent.update(status="requires_action", next_action={"type": "use_stripe_sdk"})
            return 200, intent
        code = "card_declined" if kind == "declines" else "authentication_required"
        message = "Your card was declined." if kind == "declines" else "This payment requires authentication."
        intent.update(status="requires_payment_method", last_payment_error={"code": code, "message": message})
        self._deliver("payment_intent.payment_failed", intent, later=True)
        return 402, _card_error(code, message, intent)

    def _transfer(self, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        if key is not None and key in self._replies:  # Stripe: the same key answers the same transfer
            reply = self._replies[key]
        elif self.transfer_mode == "refuse":
            error = {"type": "invalid_request_error", "code": "balance_insufficient", "message": "Insufficient funds"}
            return 400, {"error": error}
        else:
            transfer = {
                "id": f"tr_fake{uuid.uuid4().hex[:16]}",
                "object": "transfer",
                "amount": int(form["amount"]),
                "amount_reversed": 0,
                "currency": form["currency"],
                "destination": form["destination"],
                "reversed": False,
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.transfers[transfer["id"]] = transfer
            reply = (200, transfer)
            if key is not None:
                self._replies[key] = reply
        if self.transfer_mode == "lose":  # made, but every answer is lost until the mode changes
            return 503, {"error": {"type": "api_error", "message": "An error occurred; the answer was lost"}}
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                if self.path == "/v1/transfers" and fake.transfer_delay:
                    time.sleep(fake.transfer_delay)
                status, reply = fake._answer(self.path, form, self.headers.get("Idempotency-Key"))
                self._send(status, reply)

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                parts = urllib.parse.urlsplit(self.path)
                expand = [v for k, v in urllib.parse.parse_qsl(parts.query) if k.startswith("expand")]
                with fake._lock:
                    status, reply = fake._retrieve(parts.path, expand)
                self._send(status, reply)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {SECRET_KEY}":
                    return True
                self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                return False

            def _send(self, status: int, reply: dict[str, Any]) -> None:
                body = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

"""A fake of Stripe's Connect API on loopback, for the real `stripe` SDK (STRIPE_API_BASE): Express accounts, account
links and transfers, each POST honouring Idempotency-Key as Stripe does (the same key answers the same object), and
transfers that can be refused (a 400: nothing made) or lost (made, but answered 503 until the mode changes, as when
Stripe's answers do not come back; the SDK's own retries with the same key then get the 503 too)."""

import itertools
import json
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_KEY = "sk_test_fake"


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # every POST: path, form fields, idempotency key
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.transfer_mode = "ok"  # "ok", "refuse" (400: nothing made) or "lose" (made, answered 503)
        self.transfer_delay = 0.0
        self._replies: dict[str, tuple[int, dict[str, Any]]] = {}  # idempotency key → first answer
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "FakeStripe":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def posts(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def _answer(self, path: str, form: dict[str, str], key: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append({"path": path, "form": form, "idempotency_key": key})
            if path == "/v1/transfers":
                return self._transfer(form, key)
            if key is not None and key in self._replies:
                return self._replies[key]
            reply = self._make(path, form)
            if key is not None:
                self._replies[key] = reply
            return reply

    def _make(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if path == "/v1/accounts":
            account = {
                "id": f"acct_fake{uuid.uuid4().hex[:16]}",
                "object": "account",
                "type": form.get("type"),
                "email": form.get("email"),
                "payouts_enabled": False,
                "metadata": {"userId": form.get("metadata[userId]")},
            }
            self.accounts[account["id"]] = account
            return 200, account
        if path == "/v1/account_links":
            link = f"https://connect.stripe.com/setup/e/{form['account']}/{next(self._ids)}"
            return 200, {"object": "account_link", "url": link, "expires_at": int(time.time()) + 300}
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}

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
                if self.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                    self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                if self.path == "/v1/transfers" and fake.transfer_delay:
                    time.sleep(fake.transfer_delay)
                status, reply = fake._answer(self.path, form, self.headers.get("Idempotency-Key"))
                self._send(status, reply)

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

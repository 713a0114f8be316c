"""A fake OpenID Connect provider on loopback: discovery, a JWKS with a real RSA key, an authorization endpoint that
signs in `user` at once (as a provider whose person already has a session there), and a token endpoint that checks
what a real one checks (the code, once; its redirect_uri and client; the PKCE verifier against the S256 challenge;
the client secret, by HTTP Basic) and answers an RS256 ID token.

A test makes it misbehave the ways a sign-in can go wrong: `state_override` (the browser comes back with another
state), `refuse_tokens` (400 invalid_grant), `claims_override` (a wrong `aud`, `nonce` or `exp` in the ID token),
or `signing_key` (a key the JWKS does not have)."""

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "echo-control-test-client"
CLIENT_SECRET = "fake-client-secret"
KID = "fake-oidc-key-1"


@dataclass
class User:
    sub: str
    email: str
    email_verified: bool = True
    name: str | None = None


@dataclass
class FakeOidc:
    user: User = field(
        default_factory=lambda: User(f"sub-{secrets.token_hex(6)}", f"{secrets.token_hex(5)}@example.com")
    )
    state_override: str | None = None
    refuse_tokens: bool = False
    claims_override: dict[str, Any] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    issued_id_tokens: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.signing_key = self.key
        self._codes: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "FakeOidc":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def id_token(self, nonce: str | None = None, overrides: dict[str, Any] | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": self.user.sub,
            "email": self.user.email,
            "email_verified": self.user.email_verified,
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            **({"nonce": nonce} if nonce is not None else {}),
            **({"name": self.user.name} if self.user.name else {}),
            **(overrides or {}),
        }
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": KID})

    # --- the endpoints ------------------------------------------------------------------------------------

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def _jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}

    def _authorize(self, query: dict[str, str]) -> str:
        """Signs `user` in at once and answers where to send the browser back."""
        self.authorize_requests.append(query)
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = query
        back = {"code": code, "state": self.state_override or query.get("state", "")}
        return query["redirect_uri"] + "?" + urllib.parse.urlencode(back)

    def _token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.token_requests.append({**form, "authorization": authorization})
        if self.refuse_tokens:
            return 400, {"error": "invalid_grant", "error_description": "The code was refused"}
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != expected:
            return 401, {"error": "invalid_client"}
        with self._lock:
            started = self._codes.pop(form.get("code", ""), None)  # a code works once
        if started is None or form.get("grant_type") != "authorization_code":
            return 400, {"error": "invalid_grant"}
        if form.get("redirect_uri") != started["redirect_uri"] or started.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if started.get("code_challenge_method") != "S256" or challenge != started.get("code_challenge"):
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        id_token = self.id_token(started.get("nonce"), self.claims_override)
        self.issued_id_tokens.append(id_token)
        access = secrets.token_urlsafe(24)
        return 200, {"access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    self._json(200, provider._discovery())
                elif url.path == "/jwks":
                    self._json(200, provider._jwks())
                elif url.path == "/authorize":
                    self.send_response(302)
                    self.send_header("Location", provider._authorize(query))
                    self.end_headers()
                else:
                    self._json(404, {"error": "not_found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if urllib.parse.urlsplit(self.path).path != "/token":
                    self._json(404, {"error": "not_found"})
                    return
                status, answer = provider._token(dict(urllib.parse.parse_qsl(body)), self.headers.get("Authorization"))
                self._json(status, answer)

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

"""The rows the sample events in events/ name, and each event made ready to send.

The events carry an authorizer context for a sample user, app and API key; these rows make them real in any
database (the dev database, a test's), so every sample does real work. What an event cannot carry is filled in
when it is sent: a Stripe signature made now (they expire after 5 minutes) and a session cookie signed with this
installation's dev key.
"""

import copy
from decimal import Decimal
from typing import Any
from uuid import UUID

SAMPLE_EMAIL = "sample@example.com"
SAMPLE_ADMIN_EMAIL = "events-admin@example.com"
SAMPLE_USER = UUID("11111111-1111-4111-8111-111111111111")
SAMPLE_ADMIN = UUID("11111111-1111-4111-8111-000000000000")
# The pages only an admin may use: their sample events come signed in as the sample admin.
ADMIN_PAGES = {"adjust_balance_page", "show_credit_codes", "create_credit_code_page"}
SAMPLE_APP = UUID("22222222-2222-4222-8222-222222222222")
SAMPLE_KEY_ID = UUID("33333333-3333-4333-8333-333333333333")
SPARE_KEY_ID = UUID("33333333-3333-4333-8333-444444444444")  # the one revoke_api_key revokes
# Holds the settle, release and get events name: each reserves $0.50 for an hour from when the rows are loaded.
SAMPLE_HOLDS = [UUID(f"44444444-4444-4444-8444-00000000000{n}") for n in (1, 2, 3)]
SAMPLE_KEY = "echo_SampleKeyForEventsOnly000000000000000000000056Lus"
SAMPLE_SESSION = "cs_mock_SampleSessionForTheEventsOnly"
SAMPLE_ACCOUNT = "acct_mock_SampleAccountForTheEvents"  # the sample user's (mock) connected account
SAMPLE_CUSTOMER = UUID("11111111-1111-4111-8111-222222222222")
SAMPLE_CUSTOMER_EMAIL = "sample-customer@example.com"
SAMPLE_CUSTOMER_KEY_ID = UUID("33333333-3333-4333-8333-555555555555")
COOKIE_PLACEHOLDER = "SIGNED-BY-THE-TESTS"
# The sample user's webhook endpoints (the spare one is what delete_webhook removes) and a delivery to the first.
SAMPLE_WEBHOOK = UUID("55555555-5555-4555-8555-555555555555")
SPARE_WEBHOOK = UUID("55555555-5555-4555-8555-666666666666")
SPARE_PAGE_WEBHOOK = UUID("55555555-5555-4555-8555-777777777777")  # the one delete_webhook_page removes
SAMPLE_WEBHOOK_EVENT = UUID("66666666-6666-4666-8666-666666666666")
SAMPLE_DELIVERY = UUID("77777777-7777-4777-8777-777777777777")
# Sign in with Echo: the sample app's redirect URI, and the PKCE verifier of the code each token event gets minted
SAMPLE_REDIRECT_URI = "http://localhost:8765/callback"
SAMPLE_CODE_CHALLENGE = "xhMK2jXDglip-o5whMgyK9Fi1Ek0h6UKiaY8HfJZEe0"  # S256 of the verifier in the token event
CODE_PLACEHOLDER = "MINTED-BY-THE-TESTS"
# Automatic top-up: the sample user's (mock) Stripe Customer with a saved test card, and a mock card setup session.
SAMPLE_STRIPE_CUSTOMER = "cus_mock_SampleCustomerForTheEvents"
SAMPLE_CARD = "pm_mock_succeeds_SampleCardForTheEvents"
SAMPLE_CARD_SETUP = "cs_mock_setup_SampleSessionForTheEvents"


def load_sample_rows() -> None:
    """The user, admin, app and keys the sample events name, with some credit and a pending payment; a customer of
    the app whose one call earned the sample user 12 USD, and the sample user's onboarded (mock) connected account,
    so that a sample payout is paid; a saved (mock) card and a card setup session for auto top-up (idempotent)."""
    from echo_control import db, keys, ledger

    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO users (id, email, clerk_id, role) VALUES (%s, %s, %s, 'user'), (%s, %s, %s, 'admin') "
            "ON CONFLICT DO NOTHING",
            [
                *(SAMPLE_USER, SAMPLE_EMAIL, f"dev_{SAMPLE_EMAIL}"),
                *(SAMPLE_ADMIN, SAMPLE_ADMIN_EMAIL, f"dev_{SAMPLE_ADMIN_EMAIL}"),
            ],
        )
        conn.execute(
            "INSERT INTO balances (user_id) VALUES (%s), (%s) ON CONFLICT DO NOTHING", [SAMPLE_USER, SAMPLE_ADMIN]
        )
        conn.execute(
            "INSERT INTO echo_apps (id, name, user_id, markup, accepts_customers, redirect_uris) "
            "VALUES (%s, 'Sample app', %s, 2, true, ARRAY[%s]) ON CONFLICT DO NOTHING",
            [SAMPLE_APP, SAMPLE_USER, SAMPLE_REDIRECT_URI],
        )
        for key_id, key in ((SAMPLE_KEY_ID, SAMPLE_KEY), (SPARE_KEY_ID, keys.generate_key())):
            conn.execute(
                "INSERT INTO api_keys (id, key_hash, key_prefix, key_last4, user_id, echo_app_id) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [key_id, keys.key_hash(key), key[:12], key[-4:], SAMPLE_USER, SAMPLE_APP],
            )
        ledger.credit(
            conn,
            SAMPLE_USER,
            Decimal("10"),
            kind="admin_adjustment",
            key="events:credit",
            reference_id=None,
            paid=Decimal(0),
        )
        conn.execute(
            "INSERT INTO payments (user_id, amount, status, stripe_session_id) VALUES (%s, 2000, 'pending', %s) "
            "ON CONFLICT DO NOTHING",
            [SAMPLE_USER, SAMPLE_SESSION],
        )
        for hold_id in SAMPLE_HOLDS:  # reserved as POST /api/holds would: the hold and the cached sums together
            conn.execute(
                "WITH hold AS (INSERT INTO holds (id, user_id, echo_app_id, api_key_id, amount, expires_at) "
                "VALUES (%(id)s, %(user)s, %(app)s, %(key)s, 0.5, now() + interval '1 hour') "
                "ON CONFLICT DO NOTHING RETURNING amount), "
                "reserve AS (UPDATE balances SET held = held + hold.amount FROM hold WHERE user_id = %(user)s) "
                "UPDATE api_keys SET held = held + hold.amount FROM hold WHERE id = %(key)s",
                {"id": hold_id, "user": SAMPLE_USER, "app": SAMPLE_APP, "key": SAMPLE_KEY_ID},
            )
        _load_sample_customer(conn)
        _load_sample_webhooks(conn)
        conn.execute(
            "INSERT INTO billing_customers (user_id, stripe_customer_id, payment_method_id, card_brand, card_last4, "
            "card_exp_month, card_exp_year, card_saved_at) VALUES (%s, %s, %s, 'visa', '4242', 12, 2034, now()) "
            "ON CONFLICT DO NOTHING",
            [SAMPLE_USER, SAMPLE_STRIPE_CUSTOMER, SAMPLE_CARD],
        )
        conn.execute(
            "INSERT INTO card_setups (session_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [SAMPLE_CARD_SETUP, SAMPLE_USER],
        )


def _load_sample_webhooks(conn: Any) -> None:
    from echo_control import webhook_delivery

    for endpoint_id in (SAMPLE_WEBHOOK, SPARE_WEBHOOK, SPARE_PAGE_WEBHOOK):
        conn.execute(
            "INSERT INTO webhook_endpoints (id, user_id, url, events, secret_sealed) "
            "VALUES (%s, %s, 'https://example.com/hooks/echo', '{payment.succeeded}', %s) ON CONFLICT DO NOTHING",
            [endpoint_id, SAMPLE_USER, webhook_delivery.seal(endpoint_id, webhook_delivery.new_secret())],
        )
    conn.execute(
        "INSERT INTO webhook_events (id, user_id, type, data) VALUES (%s, %s, 'payment.succeeded', "
        '\'{"paymentId": "sample", "amount": "20.00"}\') ON CONFLICT DO NOTHING',
        [SAMPLE_WEBHOOK_EVENT, SAMPLE_USER],
    )
    # failed already, so that no deliverer sends it to example.com before a resend asks for it
    conn.execute(
        "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts) "
        "VALUES (%s, %s, %s, 'failed', 7) ON CONFLICT DO NOTHING",
        [SAMPLE_DELIVERY, SAMPLE_WEBHOOK_EVENT, SAMPLE_WEBHOOK],
    )


def _load_sample_customer(conn: Any) -> None:
    from echo_control import db, keys, ledger

    conn.execute(
        "INSERT INTO users (id, email, clerk_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        [SAMPLE_CUSTOMER, SAMPLE_CUSTOMER_EMAIL, f"dev_{SAMPLE_CUSTOMER_EMAIL}"],
    )
    conn.execute("INSERT INTO balances (user_id) VALUES (%s) ON CONFLICT DO NOTHING", [SAMPLE_CUSTOMER])
    conn.execute(
        "INSERT INTO app_customers (echo_app_id, user_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [SAMPLE_APP, SAMPLE_CUSTOMER],
    )
    key = keys.generate_key()
    conn.execute(
        "INSERT INTO api_keys (id, key_hash, key_prefix, key_last4, user_id, echo_app_id) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        [SAMPLE_CUSTOMER_KEY_ID, keys.key_hash(key), key[:12], key[-4:], SAMPLE_CUSTOMER, SAMPLE_APP],
    )
    conn.execute(
        "INSERT INTO earnings_accounts (user_id, stripe_account_id, payouts_enabled) VALUES (%s, %s, true) "
        "ON CONFLICT (user_id) DO UPDATE SET stripe_account_id = COALESCE(earnings_accounts.stripe_account_id, "
        "excluded.stripe_account_id), payouts_enabled = true",
        [SAMPLE_USER, SAMPLE_ACCOUNT],
    )
    credited = ledger.credit(
        conn,
        SAMPLE_CUSTOMER,
        Decimal("30"),
        kind="admin_adjustment",
        key="events:customer-credit",
        reference_id=None,
        paid=Decimal(0),
        cash=True,
    )
    if credited:  # first load only: one metered call whose markup (×2) earns the owner 12 USD
        db.record_debit(
            conn,
            {
                "user_id": SAMPLE_CUSTOMER,
                "echo_app_id": SAMPLE_APP,
                "api_key_id": SAMPLE_CUSTOMER_KEY_ID,
                "model": "gpt-4o",
                "provider": "openai",
                "input_tokens": 1000,
                "output_tokens": 500,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "total_tokens": 1500,
                "cost": Decimal("24"),
                "markup_amount": Decimal("12"),
                "status": "success",
                "metadata": None,
                "clearing_days": 0,  # the sample owner's earnings are there to pay out at once
            },
        )


def ready_event(name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The sample event `name` (its file's stem) with a fresh Stripe signature, a signed session cookie, or a fresh
    authorization code."""
    event = copy.deepcopy(event)
    if name == "stripe_webhook":
        from echo_control import config, payments

        secret = config.stripe_credentials().webhook_secret
        event["headers"]["Stripe-Signature"] = payments.sign_payload(event["body"], secret)
    if CODE_PLACEHOLDER in (event.get("body") or ""):  # codes are single-use: a fresh one, as a consent makes
        import secrets

        from echo_control import db, keys

        code = secrets.token_urlsafe(32)
        db.create_oauth_grant(
            SAMPLE_USER,
            SAMPLE_APP,
            keys.key_hash(secrets.token_urlsafe(32)),
            keys.key_hash(code),
            SAMPLE_REDIRECT_URI,
            SAMPLE_CODE_CHALLENGE,
            60,
            as_customer=False,
        )
        event["body"] = event["body"].replace(CODE_PLACEHOLDER, code)
    cookie = (event.get("headers") or {}).get("Cookie", "")
    if COOKIE_PLACEHOLDER in cookie:
        from echo_control import auth

        token, _ = auth.issue_dev_session(SAMPLE_ADMIN_EMAIL if name in ADMIN_PAGES else SAMPLE_EMAIL)
        event["headers"]["Cookie"] = cookie.replace(COOKIE_PLACEHOLDER, token)
    return event

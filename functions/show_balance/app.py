"""GET /balance — balance, payment history, spend history, automatic top-up; for admins, a form to adjust balances."""

from typing import Annotated

from echo_control import auto_top_up, config, ledger, pages, payments
from echo_control.http import Query, Response, entrypoint

app = pages.page_resolver()
ENTRY_KINDS = {
    "payment_credit": "Payment",
    "refund": "Refund",
    "admin_adjustment": "Adjustment",
    "llm_debit": "Metered call",
    "grant_credit": "Credit code redeemed",
    "grant_expired": "Unused credit from a code expired",
    "dispute": "Payment disputed: its credits taken back, what was spent is owed",
    "dispute_won": "Dispute won: the payment's credits are back",
}
NOTICES = {
    "success": ("Thanks! Your payment was received; credits appear as soon as Stripe confirms it.", "ok"),
    "cancelled": ("Checkout was cancelled; nothing was charged.", ""),
    "adjusted": ("The balance was adjusted.", "ok"),
}
CARD_NOTICES = {
    "saved": ("Your card is saved; it shows below as soon as Stripe confirms it.", "ok"),
    "cancelled": ("Saving a card was cancelled; nothing changed.", ""),
}


@app.get("/balance", include_in_schema=False)
def show_balance(
    payment: Annotated[str | None, Query(max_length=20)] = None,
    card: Annotated[str | None, Query(max_length=20)] = None,
) -> Response[str]:
    who = pages.signed_in(app)
    notice, kind = NOTICES.get(payment or "", CARD_NOTICES.get(card or "", (None, None)))
    return pages.render_page(
        app,
        "balance.html",
        active="balance",
        user=pages.user_view(who),
        balance=ledger.get_balance(who.user_id),
        payments=payments.list_payments(who.user_id).payments,
        spend=ledger.list_transactions(who.user_id, limit=20).transactions,
        adjustments=ledger.list_adjustments(who.user_id),
        statement=ledger.statement(who.user_id, limit=20),
        entry_kinds=ENTRY_KINDS,
        top_up=auto_top_up.settings(who.user_id),
        max_payment=config.settings().max_payment_usd,
        notice=notice,
        notice_kind=kind,
    )


lambda_handler = entrypoint(app)

"""LLM transaction history: keyset pages, newest first."""

from typing import Any

from echo_control.db.connection import Row, connection

_TX_COLUMNS = (
    "t.id, t.model, t.input_tokens, t.output_tokens, t.total_tokens, t.cost, t.status, t.user_id, "
    "t.echo_app_id, t.metadata, t.created_at, t.cost - t.markup_amount AS provider_cost, t.markup_amount, "
    "t.provider, t.cache_read_tokens, t.cache_write_tokens, t.reasoning_tokens, t.earned_amount, t.shortfall"
)

# Keyset pagination, newest first; the filters are all optional (NULL matches everything).
_TX_FILTERS = """
      AND (%(echo_app_id)s::uuid IS NULL OR t.echo_app_id = %(echo_app_id)s)
      AND (%(model)s::text IS NULL OR t.model = %(model)s)
      AND (%(status)s::text IS NULL OR t.status = %(status)s)
      AND (%(since)s::timestamptz IS NULL OR t.created_at >= %(since)s)
      AND (%(until)s::timestamptz IS NULL OR t.created_at < %(until)s)
      AND (%(after_at)s::timestamptz IS NULL OR (t.created_at, t.id) < (%(after_at)s, %(after_id)s::uuid))
    ORDER BY t.created_at DESC, t.id DESC
    LIMIT %(limit)s
"""
_TX_BY_USER = f"SELECT {_TX_COLUMNS} FROM llm_transactions t WHERE t.user_id = %(user_id)s {_TX_FILTERS}"
_TX_BY_APP = f"SELECT {_TX_COLUMNS} FROM llm_transactions t WHERE t.echo_app_id = %(app_scope)s {_TX_FILTERS}"


def transactions_page(filters: dict[str, Any]) -> list[Row]:
    """A page of history for a user (user_id) or for one app (app_scope); see _TX_FILTERS for the rest."""
    sql = _TX_BY_APP if filters.get("app_scope") else _TX_BY_USER
    return connection().execute(sql, filters).fetchall()

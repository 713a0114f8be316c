"""An app's own prices: the models it allows and its per-model prices, replaced as a whole."""

from typing import Any
from uuid import UUID

from echo_control.db.connection import Conn, Row, connection

_PRICE_COLUMNS = (
    "p.model, p.input_per_million, p.output_per_million, p.cache_read_per_million, p.cache_write_per_million"
)


def lock_app_prices(conn: Conn, app_id: UUID, user_id: UUID) -> Row | None:
    """The owner's app's allowed models, its row locked until the caller's transaction ends (None: not theirs).

    Every change of an app's prices takes this lock first, so changes to one app's prices happen one at a time."""
    return conn.execute(
        "SELECT a.id, a.allowed_models FROM echo_apps a WHERE a.id = %s AND a.user_id = %s FOR UPDATE",
        [app_id, user_id],
    ).fetchone()


def app_prices(app_id: UUID, conn: Conn | None = None) -> tuple[list[str] | None, list[Row]]:
    """(allowed models or None for every model, overrides ordered by their model's key)."""
    conn = conn or connection()
    app = conn.execute("SELECT allowed_models FROM echo_apps WHERE id = %s", [app_id]).fetchone()
    overrides = conn.execute(
        f"SELECT {_PRICE_COLUMNS} FROM app_model_prices p WHERE p.echo_app_id = %s ORDER BY p.model_key",
        [app_id],
    ).fetchall()
    return (app or {}).get("allowed_models"), overrides


# The overrides go in as one statement of parallel arrays, whatever their number.
_INSERT_OVERRIDES = """
INSERT INTO app_model_prices
    (echo_app_id, model_key, model, input_per_million, output_per_million, cache_read_per_million,
     cache_write_per_million)
SELECT %(app_id)s, o.* FROM unnest(
    %(model_keys)s::text[], %(models)s::text[], %(inputs)s::numeric[], %(outputs)s::numeric[],
    %(cache_reads)s::numeric[], %(cache_writes)s::numeric[]
) AS o
"""


def replace_app_prices(
    conn: Conn,
    app_id: UUID,
    allowed: list[tuple[str, str]] | None,
    overrides: list[dict[str, Any]],
) -> None:
    """Inside the caller's transaction (holding lock_app_prices): the allowed models as (model, key) pairs, or None
    for every model, and the overrides (model_key, model and the four prices) instead of what was there."""
    conn.execute(
        "UPDATE echo_apps SET allowed_models = %s, allowed_model_keys = %s, prices_version = prices_version + 1, "
        "updated_at = now() WHERE id = %s",
        [
            None if allowed is None else [model for model, _ in allowed],
            None if allowed is None else [key for _, key in allowed],
            app_id,
        ],
    )
    conn.execute("DELETE FROM app_model_prices WHERE echo_app_id = %s", [app_id])
    if overrides:
        conn.execute(
            _INSERT_OVERRIDES,
            {
                "app_id": app_id,
                "model_keys": [o["model_key"] for o in overrides],
                "models": [o["model"] for o in overrides],
                "inputs": [o["input_per_million"] for o in overrides],
                "outputs": [o["output_per_million"] for o in overrides],
                "cache_reads": [o["cache_read_per_million"] for o in overrides],
                "cache_writes": [o["cache_write_per_million"] for o in overrides],
            },
        )


# On the metering path, for an app with prices of its own: all of them in one query (parallel arrays), which a
# function keeps until the app's prices_version moves.
_PRICE_RULES = """
SELECT a.prices_version AS version, a.allowed_model_keys,
       COALESCE(array_agg(p.model_key) FILTER (WHERE p.model_key IS NOT NULL), '{}') AS model_keys,
       array_agg(p.input_per_million) AS inputs, array_agg(p.output_per_million) AS outputs,
       array_agg(p.cache_read_per_million) AS cache_reads, array_agg(p.cache_write_per_million) AS cache_writes
FROM echo_apps a LEFT JOIN app_model_prices p ON p.echo_app_id = a.id
WHERE a.id = %(app_id)s
GROUP BY a.id
"""


def price_rules(app_id: UUID, conn: Conn | None = None) -> Row | None:
    """The app's prices_version, allowed model keys (None: every model) and overrides as parallel arrays."""
    return (conn or connection()).execute(_PRICE_RULES, {"app_id": app_id}).fetchone()

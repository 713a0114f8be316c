"""Schema migrations (yoyo), applied by the migrate function after each deploy and by the local runner."""

from pathlib import Path

from echo_control import config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def apply_migrations(url: str | None = None) -> list[str]:
    """Applies pending migrations with yoyo under its lock; returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(url or config.database_url()))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def _yoyo_url(url: str) -> str:
    # yoyo picks its driver from the scheme; a libpq key=value string is turned into a URL.
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "=" in url and "://" not in url:
        from urllib.parse import quote

        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(url)
        auth = quote(str(parts.pop("user", "")), safe="")
        if password := parts.pop("password", None):
            auth += ":" + quote(str(password), safe="")
        host = str(parts.pop("host", ""))
        if host.startswith("/"):  # a socket directory travels as a query parameter
            parts["host"], host = host, ""
        port = parts.pop("port", None)
        dbname = parts.pop("dbname", "")
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in parts.items())
        netloc = f"{auth}@{host}" + (f":{port}" if port else "")
        return f"postgresql+psycopg://{netloc}/{dbname}" + (f"?{query}" if query else "")
    return url

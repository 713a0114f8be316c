"""`python -m local_runner`: the whole product on http://localhost:3000 (PORT and HOST override)."""

import logging
import os
import signal
import sys

from dotenv import load_dotenv

from local_runner.template import ROOT

LOCAL_DEFAULTS = {
    "POWERTOOLS_SERVICE_NAME": "echo-control",
    "POWERTOOLS_METRICS_NAMESPACE": "EchoControl",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "ECHO_AUTH_MODE": "dev",
    # Locally anyone signs in with an email, so admin emails (ECHO_ADMIN_EMAILS) may act as admins here.
    "ECHO_DEV_SIGN_IN_GRANTS_ADMIN": "true",
}
# Loopback only: dev sign-in accepts any email, so the runner must not be reachable from the network
# unless someone asks for it (HOST=0.0.0.0).
DEFAULT_HOST = "127.0.0.1"


def configure_environment() -> None:
    load_dotenv(ROOT / ".env")
    for key, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("ECHO_DATA_DIR", str(ROOT / ".data"))


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_once(signum: int, frame: object) -> None:
    """The first of SIGINT, SIGTERM or SIGHUP stops the runner as Ctrl-C does; later ones are ignored, so that
    a second signal (`kill -TERM -- -PGID` reaches make and the runner; an impatient Ctrl-C) cannot interrupt
    the embedded PostgreSQL's shutdown half way and leave it running. (Python's default for SIGTERM and
    SIGHUP exits without running any cleanup.)"""
    for later in STOP_SIGNALS:
        signal.signal(later, signal.SIG_IGN)
    raise KeyboardInterrupt


def listening_port() -> int:
    """PORT (default 3000), or the start stops here with one line saying what is wrong."""
    given = os.environ.get("PORT") or "3000"
    if not given.isdecimal() or not 1 <= int(given) <= 65535:
        sys.exit(f"PORT must be a port number from 1 to 65535, not {given!r}")
    return int(given)


def main() -> None:
    configure_environment()
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop_once)
    from werkzeug.serving import make_server

    from local_runner import database, lambdas, samples
    from local_runner.server import LocalApiGateway, bound_url

    port = listening_port()
    if problem := lambdas.configuration_problem():
        sys.exit(problem)  # a wrong variable stops the start, with its name

    try:
        database.ensure_database()
        database.load_demo_data()
        samples.load_sample_rows()  # the rows events/*.json name: make invoke and sam local invoke work on them
        from echo_control import auto_top_up, webhook_delivery

        webhook_delivery.start_local()  # developers' webhooks, sent from the outbox as the cloud's queue would
        host = os.environ.get("HOST") or DEFAULT_HOST
        logging.getLogger("werkzeug").setLevel(logging.INFO)
        # Bound before saying where: a port in use ends the start with werkzeug's message, not after our line.
        server = make_server(host, port, LocalApiGateway(), threaded=True)
        # auto top-up charges, sent as soon as a call requests one; the mock's are confirmed to this runner's webhook
        auto_top_up.start_local(bound_url(host, server.server_port) + "/api/stripe/webhook")
        where = "DATABASE_URL" if database.embedded_server is None else "embedded PostgreSQL"
        shown = "localhost" if host in (DEFAULT_HOST, "localhost") else host
        print(f"Echo Control on http://{shown}:{port}  (database: {where}; sign in as demo@example.com)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        database.stop_embedded_server()


if __name__ == "__main__":
    main()

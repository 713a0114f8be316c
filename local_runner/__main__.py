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


def stop_like_ctrl_c() -> None:
    """SIGTERM and SIGHUP end the runner the way Ctrl-C does, so the embedded PostgreSQL is stopped too
    (Python's default for them exits without running any cleanup)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)


def main() -> None:
    configure_environment()
    stop_like_ctrl_c()
    from werkzeug.serving import run_simple

    from local_runner import database, lambdas, samples
    from local_runner.server import LocalApiGateway

    if problem := lambdas.configuration_problem():
        sys.exit(problem)  # a wrong variable stops the start, with its name

    try:
        database.ensure_database()
        database.load_demo_data()
        samples.load_sample_rows()  # the rows events/*.json name: make invoke and sam local invoke work on them
        from echo_control import webhook_delivery

        webhook_delivery.start_local()  # developers' webhooks, sent from the outbox as the cloud's queue would
        host = os.environ.get("HOST") or DEFAULT_HOST
        port = int(os.environ.get("PORT", "3000"))
        logging.getLogger("werkzeug").setLevel(logging.INFO)
        where = "DATABASE_URL" if database.embedded_server is None else "embedded PostgreSQL"
        shown = "localhost" if host in (DEFAULT_HOST, "localhost") else host
        print(f"Echo Control on http://{shown}:{port}  (database: {where}; sign in as demo@example.com)")
        run_simple(host, port, LocalApiGateway(), threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        database.stop_embedded_server()


if __name__ == "__main__":
    main()

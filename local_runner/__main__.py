"""`python -m local_runner`: the whole product on http://localhost:3000 (PORT overrides)."""

import logging
import os
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


def configure_environment() -> None:
    load_dotenv(ROOT / ".env")
    for key, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("ECHO_DATA_DIR", str(ROOT / ".data"))


def main() -> None:
    configure_environment()
    from werkzeug.serving import run_simple

    from local_runner import database, lambdas
    from local_runner.server import LocalApiGateway

    if problem := lambdas.configuration_problem():
        sys.exit(problem)  # a wrong variable stops the start, with its name

    url = database.ensure_database()
    database.load_demo_data()
    port = int(os.environ.get("PORT", "3000"))
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    where = "embedded PostgreSQL" if ".data" in url else "DATABASE_URL"
    print(f"Echo Control on http://localhost:{port}  (database: {where}; sign in as demo@example.com)")
    run_simple("0.0.0.0", port, LocalApiGateway(), threaded=True, use_reloader=False)  # noqa: S104


if __name__ == "__main__":
    main()

"""One logger, tracer and metrics object for every function (configured by POWERTOOLS_* env)."""

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "echo-control")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "EchoControl"))

# Most API functions publish no custom metric on most calls; that is expected, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")

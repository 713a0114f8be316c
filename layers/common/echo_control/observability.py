"""One logger, tracer and metrics object for every function (configured by POWERTOOLS_* env)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()

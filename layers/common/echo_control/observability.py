"""One logger, tracer and metrics object for every function (configured by POWERTOOLS_* env)."""

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "echo-control")

Handler = Callable[[dict[str, Any], Any], Any]


class LazyTracer:
    """Powertools' Tracer, made on the first invocation X-Ray samples rather than at cold start.

    Making it imports the X-Ray SDK and patches botocore and requests: about 100 ms of every cold start
    (bench/cold_start.py), for traces of which X-Ray keeps a sample. An invocation that is not sampled (Lambda
    says so in _X_AMZN_TRACE_ID) records nothing through the SDK anyway, so it runs without it; Lambda still
    traces the invocation itself."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._tracer: Tracer | None = None

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = Tracer(service=self.service)
        return self._tracer

    @staticmethod
    def sampled() -> bool:
        # Set by the runtime for each invocation, e.g. "Root=1-…;Parent=…;Sampled=1"; absent outside Lambda.
        return "Sampled=1" in os.environ.get("_X_AMZN_TRACE_ID", "") and not Tracer._is_tracer_disabled()

    def capture_lambda_handler(self, *, capture_response: bool = True) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            traced: Handler | None = None
            invoked = False

            @functools.wraps(handler)
            def lambda_handler(event: dict[str, Any], context: Any) -> Any:
                nonlocal traced, invoked
                first, invoked = not invoked, True
                if not self.sampled():
                    return handler(event, context)
                if traced is None:
                    traced = self.tracer.capture_lambda_handler(handler, capture_response=capture_response)
                    if not first:  # Powertools annotates its first traced call as the cold start: it was not
                        from aws_lambda_powertools.tracing import tracer as powertools_tracer

                        powertools_tracer.is_cold_start = False
                return traced(event, context)

            return lambda_handler

        return decorate


logger = Logger(service=SERVICE)
tracer = LazyTracer(SERVICE)
metrics = Metrics(service=SERVICE, namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "EchoControl"))

# Most API functions publish no custom metric on most calls; that is expected, not worth a warning per call.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def count(name: str, value: float = 1) -> None:
    """A business metric; skipped when metrics are off (locally), where Powertools would still print every 100."""
    if not is_metrics_disabled():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

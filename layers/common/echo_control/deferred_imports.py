"""Packages whose `__init__` imports far more than a function uses, opened lazily (cold starts, bench/cold_start.py).

`import asyncio` runs all of asyncio (its event loop, ssl, streams, subprocesses) although psycopg only takes
CancelledError and a few other names from it at import; `aws_lambda_powertools.event_handler` imports every
resolver (AppSync, Bedrock, VPC Lattice …) and its data_classes package every event class. Each package here is put
in sys.modules as an empty module with the package's own path and spec: a name listed with it loads only the
submodule that defines it, a submodule loads as usual, and any other name runs the package's real `__init__` first,
so every name still resolves to the same object as without this module. Installed by `echo_control/__init__.py`,
before anything imports these packages: a function's app.py imports Powertools through `echo_control.http`.
"""

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

# package -> {name: the submodule its __init__ takes it from}
DEFERRED: dict[str, dict[str, str]] = {
    "asyncio": {
        "CancelledError": "exceptions",
        "TimeoutError": "exceptions",
        "Future": "futures",
        "get_running_loop": "events",
        "Lock": "locks",
        "Queue": "queues",
        "Task": "tasks",
        "sleep": "tasks",
    },
    "aws_lambda_powertools.event_handler": {
        "APIGatewayRestResolver": "api_gateway",
        "ApiGatewayResolver": "api_gateway",
        "CORSConfig": "api_gateway",
        "Response": "api_gateway",
    },
    "aws_lambda_powertools.utilities.data_classes": {
        "ALBEvent": "alb_event",
        "APIGatewayProxyEvent": "api_gateway_proxy_event",
        "APIGatewayProxyEventV2": "api_gateway_proxy_event",
        "BedrockAgentEvent": "bedrock_agent_event",
        "LambdaFunctionUrlEvent": "lambda_function_url_event",
        "VPCLatticeEvent": "vpc_lattice",
        "VPCLatticeEventV2": "vpc_lattice",
    },
}

_loading = threading.RLock()


def defer(package: str, names: dict[str, str]) -> None:
    """Puts `package` in sys.modules unopened, unless it is imported already or does not exist."""
    if package in sys.modules:
        return
    parent, _, _ = package.rpartition(".")
    if parent:
        importlib.import_module(parent)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = importlib.util.module_from_spec(spec)

    def open_package() -> None:
        with _loading:
            if "__getattr__" in module.__dict__:
                del module.__getattr__
                spec.loader.exec_module(module)  # type: ignore[union-attr]

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            open_package()
            try:
                return module.__dict__[name]
            except KeyError:
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(module, name, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[package] = module
    if parent:
        setattr(sys.modules[parent], package.rpartition(".")[2], module)


def is_open(package: str) -> bool:
    """Whether the package's own `__init__` has run (tests check that a function's start leaves it unopened)."""
    module: ModuleType | None = sys.modules.get(package)
    return module is not None and "__getattr__" not in module.__dict__


for _package, _names in DEFERRED.items():
    defer(_package, _names)

"""Loads function handlers as Lambda does and keeps warm "containers" so concurrent requests don't share one."""

import importlib.util
import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from local_runner.template import ROOT

LAYER_DIR = ROOT / "layers" / "common"  # what Lambda mounts at /opt/python
if str(LAYER_DIR) not in sys.path:
    sys.path.insert(0, str(LAYER_DIR))

Handler = Callable[[dict[str, Any], Any], Any]
_instance_numbers = itertools.count()


class LambdaContext:
    """The parts of Lambda's context object that Powertools and handlers read."""

    def __init__(self, function_name: str, timeout_seconds: float = 30.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def configuration_problem() -> str | None:
    """Parses the settings as each function's cold start does: the message naming a wrong variable, or None."""
    from echo_control import config

    try:
        config.settings()
    except config.InvalidConfiguration as exc:
        return str(exc)
    return None


def load_module(code_dir: Path) -> ModuleType:
    """A fresh instance of code_dir/app.py (its own module, as in its own container)."""
    name = f"_lambda_{code_dir.name}_{next(_instance_numbers)}"
    spec = importlib.util.spec_from_file_location(name, code_dir / "app.py")
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_handler(code_dir: Path) -> Handler:
    handler: Handler = load_module(code_dir).lambda_handler
    return handler


class Function:
    """One function's warm containers: a request takes an idle one or starts a new one."""

    def __init__(self, code_dir: Path) -> None:
        self.code_dir = code_dir
        self.name = code_dir.name
        self._idle: list[Handler] = []
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any]) -> Any:
        with self._lock:
            handler = self._idle.pop() if self._idle else None
        if handler is None:
            handler = load_handler(self.code_dir)
        try:
            return handler(event, LambdaContext(self.name))
        finally:
            with self._lock:
                self._idle.append(handler)


class Functions:
    def __init__(self) -> None:
        self._by_dir: dict[Path, Function] = {}
        self._lock = threading.Lock()

    def __getitem__(self, code_dir: Path) -> Function:
        with self._lock:
            if code_dir not in self._by_dir:
                self._by_dir[code_dir] = Function(code_dir)
            return self._by_dir[code_dir]


def _keep_powertools_requests_per_thread() -> None:
    """Powertools keeps the request being resolved in class attributes of BaseRouter: right for a Lambda container,
    which serves one request at a time, wrong for this runner, which serves many at once on threads of one
    process (one request would read another's path and authorizer context). Here those attributes are per thread."""
    from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

    state = threading.local()

    class PerThread:
        def __init__(self, name: str) -> None:
            self.name = name

        def __get__(self, obj: Any, owner: Any = None) -> Any:
            try:
                return getattr(state, self.name)
            except AttributeError:
                raise AttributeError(self.name) from None

        def __set__(self, obj: Any, value: Any) -> None:
            setattr(state, self.name, value)

    names = ("current_event", "lambda_context")
    for name in names:  # read through instances (app.current_event) …
        setattr(BaseRouter, name, PerThread(name))
    # … and written on the class (BaseRouter.current_event = …), which only a metaclass's descriptor sees.
    per_thread_meta = type("PerThreadRouterMeta", (type(BaseRouter),), {name: PerThread(name) for name in names})
    BaseRouter.__class__ = per_thread_meta  # type: ignore[method-assign]


_keep_powertools_requests_per_thread()

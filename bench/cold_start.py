"""Cold-start import time of every function: a fresh interpreter imports its app.py as Lambda's runtime would
(the layer on the path as /opt/python, the function's folder as the task root). Tracing stays on, as deployed.

Lambda's code and layer folders are read-only, so Python cannot cache bytecode there: without .pyc files every
cold start compiles every module again. `make build` compiles the built layer; this script measures both ways
(source only, as `sam build` alone ships it, and with bytecode, as `make build` ships it).

Prints per function the median of N fresh processes, and the heaviest modules of the slowest function
(python -X importtime). Target: under 300 ms each on this machine.
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "common"
RUNS = int(os.environ.get("COLD_START_RUNS", "5"))
TARGET_MS = 300.0
PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
assert callable(module.lambda_handler)
print((time.perf_counter() - start) * 1000)
"""
ENV = {
    **os.environ,
    "POWERTOOLS_SERVICE_NAME": "echo-control",
    "POWERTOOLS_METRICS_NAMESPACE": "EchoControl",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "ECHO_AUTH_MODE": "clerk",
    "AWS_REGION": "us-east-1",
}


# Bytecode goes to a cache of its own (PYTHONPYCACHEPREFIX), so the working tree is left as it was.
BYTECODE = Path(tempfile.gettempdir()) / "echo-control-cold-start-pycache"


def import_ms(function_dir: Path, *flags: str, bytecode: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**ENV, "PYTHONPATH": f"{function_dir}{os.pathsep}{LAYER}", "PYTHONDONTWRITEBYTECODE": "1"}
    env["PYTHONPYCACHEPREFIX"] = str(BYTECODE) if bytecode else str(BYTECODE) + "-none"  # none: compile all
    return subprocess.run(
        [sys.executable, *flags, "-c", PROBE, str(function_dir / "app.py")],
        env=env,
        cwd=function_dir,
        capture_output=True,
        text=True,
        check=True,
    )


def main() -> None:
    site_packages = next(Path(sys.prefix, "lib").glob("python3.*/site-packages"))
    stdlib = Path(os.__file__).parent  # Lambda's runtime ships the standard library compiled
    compiled = {BYTECODE: (stdlib, site_packages, LAYER, ROOT / "functions"), Path(f"{BYTECODE}-none"): (stdlib,)}
    for cache, folders in compiled.items():
        for folder in folders:
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", "-j", "0", "-x", "site-packages|test", str(folder)]
                if folder == stdlib
                else [sys.executable, "-m", "compileall", "-q", "-j", "0", str(folder)],
                env={**os.environ, "PYTHONPYCACHEPREFIX": str(cache)},
                capture_output=True,
                check=False,
            )
    functions = sorted(p.parent for p in (ROOT / "functions").glob("*/app.py"))
    results: dict[str, tuple[float, float]] = {}
    for function_dir in functions:
        compiled = [float(import_ms(function_dir).stdout.strip()) for _ in range(RUNS)]
        source = [float(import_ms(function_dir, bytecode=False).stdout.strip()) for _ in range(max(1, RUNS // 2))]
        results[function_dir.name] = (statistics.median(compiled), statistics.median(source))
    width = max(map(len, results))
    print(f"cold-start import of each function, median of {RUNS} fresh interpreters (target < {TARGET_MS:.0f} ms)")
    print(f"  {'function':<{width}}  {'bytecode':>9}  {'source only':>11}")
    for name, (ms, source_ms) in sorted(results.items(), key=lambda item: item[1], reverse=True):
        print(f"  {name:<{width}}  {ms:7.1f} ms  {source_ms:8.1f} ms{'  over target' if ms > TARGET_MS else ''}")
    compiled_all = sorted(ms for ms, _ in results.values())
    source_all = sorted(ms for _, ms in results.values())
    print(
        f"functions: {len(compiled_all)}; with bytecode median {statistics.median(compiled_all):.1f} ms, "
        f"max {compiled_all[-1]:.1f} ms; source only median {statistics.median(source_all):.1f} ms "
        f"(bytecode is {statistics.median(source_all) / statistics.median(compiled_all):.2f}x faster)"
    )
    slowest = max(results, key=lambda name: results[name][0])
    trace = import_ms(ROOT / "functions" / slowest, "-X", "importtime").stderr
    cumulative = []
    for line in trace.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 4:  # the first two levels
            cumulative.append((int(match.group(1)) / 1000, match.group(3)))
    print(f"heaviest imports of {slowest} (with bytecode, cumulative):")
    for ms, module in sorted(cumulative, reverse=True)[:10]:
        print(f"  {module:<60} {ms:7.1f} ms")


if __name__ == "__main__":
    main()

"""Cold starts of every function as built for Lambda: the INIT duration the Runtime Interface Emulator reports for a
fresh container of the built function (`make build-host`: the layer with bytecode, as `make build` ships it), then
its first invocation with the function's sample event. Tracing is on, as deployed (no AWS_SAM_LOCAL), and no
invocation is sampled, as most are not.

Prints per function the median INIT of N fresh containers (COLD_START_RUNS, default 5), the CPU time of the same
start (the runtime client and the function's module imported in a fresh interpreter, as INIT does: on a shared,
busy machine the INIT's wall time is mostly waiting for a core, its CPU time much less so), the first call and INIT
plus first call (work moved out of INIT into the first call shows there), and where the slowest function's start
spends its import time, per package (python -X importtime, on the built layer). Target: median under 250 ms, each
function under 350 ms.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

from local_runner import __main__ as runner  # noqa: E402
from local_runner import database, emulator, samples, template  # noqa: E402

RUNS = int(os.environ.get("COLD_START_RUNS", "5"))  # --runs
MEDIAN_TARGET_MS = 250.0
MAX_TARGET_MS = 350.0
PRICED_FUNCTION, PRICED_EVENT = "RecordTransactionFunction", "record_transaction"  # a call priced from its tokens
PRICED_TARGET_MS = 50.0  # what the first priced call in a fresh container may cost more than a later one


def cold_starts(logical_id: str, event: dict, runs: int) -> tuple[list[float], list[float]]:
    inits, firsts = [], []
    for _ in range(runs):
        env = emulator.function_environment(logical_id, sam_local=False)
        env.pop("POWERTOOLS_TRACE_DISABLED", None)  # traced as deployed
        function = emulator.Container(logical_id, env)
        try:
            result = function.invoke(event)
        finally:
            function.stop()
        assert result.init_ms is not None, result.log
        inits.append(result.init_ms)
        firsts.append(result.duration_ms - result.init_ms)
    return inits, firsts


def priced_event() -> dict:
    """The sample call without its Idempotency-Key: each is a new call, priced from its tokens."""
    event = samples.ready_event(PRICED_EVENT, json.loads((ROOT / "events" / f"{PRICED_EVENT}.json").read_text()))
    event["headers"].pop("Idempotency-Key")
    event["multiValueHeaders"].pop("Idempotency-Key")
    assert "cost" not in json.loads(event["body"])
    return event


def priced_calls(event: dict, runs: int) -> tuple[float, float]:
    """(first, later): the first priced call's duration in a fresh container, after its INIT, and the median of the
    three after it in the same container, each a median over `runs` containers."""
    firsts, laters = [], []
    for _ in range(runs):
        function = emulator.Container(PRICED_FUNCTION, emulator.function_environment(PRICED_FUNCTION, sam_local=False))
        try:
            calls = [function.invoke(event) for _ in range(4)]
        finally:
            function.stop()
        assert all(call.response["statusCode"] == 201 for call in calls), calls[0].log
        assert calls[0].init_ms is not None, calls[0].log
        firsts.append(calls[0].duration_ms - calls[0].init_ms)
        laters.append(statistics.median(call.duration_ms for call in calls[1:]))
    return statistics.median(firsts), statistics.median(laters)


# The same calls in the runtime's interpreter, timed in CPU: the first priced call's own work, without the waiting for
# a core (or for the database) that a busy machine adds to the wall time.
PRICED_CPU_PROBE = """
import json, sys, time
import app
event = json.loads(sys.stdin.read())
class Context:
    function_name, function_version, memory_limit_in_mb = "f", "1", 512
    invoked_function_arn, aws_request_id = "arn:aws:lambda:local:0:function:f", "r"
    def get_remaining_time_in_millis(self): return 30000
spent = []
for _ in range(4):
    began = time.process_time()
    assert app.lambda_handler(event, Context())["statusCode"] == 201
    spent.append((time.process_time() - began) * 1000)
print(json.dumps(spent))
"""


def priced_cpu(event: dict, runs: int) -> tuple[float, float]:
    """(first, later) CPU milliseconds of the priced calls, as priced_calls, in `runs` fresh interpreters."""
    env = emulator.function_environment(PRICED_FUNCTION, sam_local=False)
    firsts, laters = [], []
    for _ in range(runs):
        spent = json.loads(
            subprocess.run(
                [str(emulator.RUNTIME_PYTHON), "-c", PRICED_CPU_PROBE],
                cwd=emulator.BUILD_DIR / PRICED_FUNCTION,
                env=env,
                input=json.dumps(event),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        firsts.append(spent[0])
        laters.append(statistics.median(spent[1:]))
    return statistics.median(firsts), statistics.median(laters)


# What INIT does in the runtime's interpreter: start the runtime client, import the handler's module.
INIT_PROBE = """
import resource
import awslambdaric.bootstrap
import app
usage = resource.getrusage(resource.RUSAGE_SELF)
print((usage.ru_utime + usage.ru_stime) * 1000)
"""


def init_cpu(logical_id: str, runs: int) -> list[float]:
    """CPU milliseconds (user + system) of a function's start, interpreter included, in `runs` fresh processes."""
    env = emulator.function_environment(logical_id, sam_local=False)
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    return [
        float(
            subprocess.run(
                [str(emulator.RUNTIME_PYTHON), "-c", INIT_PROBE],
                cwd=emulator.BUILD_DIR / logical_id,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(runs)
    ]


def where_time_goes(logical_id: str, runs: int = 3) -> list[tuple[float, str]]:
    """Each imported module's own import time (python -X importtime, the built layer), the least of `runs` fresh
    starts (a load spike drops out), summed per package (two levels for ours, Powertools and pydantic): where a
    start's time goes, heaviest first."""
    env = emulator.function_environment(logical_id, sam_local=False)
    least: dict[str, int] = {}
    for _ in range(runs):
        trace = subprocess.run(
            [str(emulator.RUNTIME_PYTHON), "-X", "importtime", "-c", "import awslambdaric.bootstrap, app"],
            cwd=emulator.BUILD_DIR / logical_id,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        found = re.findall(r"^import time:\s+(\d+) \|\s+\d+ \| +(\S+)", trace, re.MULTILINE)
        if not found:
            raise RuntimeError(f"python -X importtime printed no import times:\n{trace[-2000:]}")
        for self_us, module in found:
            least[module] = min(least.get(module, int(self_us)), int(self_us))
    packages: dict[str, float] = {}
    for module, self_us in least.items():
        parts = module.split(".")
        package = ".".join(parts[:2] if parts[0] in DETAILED_PACKAGES else parts[:1])
        packages[package] = packages.get(package, 0.0) + self_us / 1000
    return sorted(((ms, package) for package, ms in packages.items()), reverse=True)


DETAILED_PACKAGES = ("echo_control", "aws_lambda_powertools", "pydantic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=RUNS, help="fresh containers per function")
    parser.add_argument("--only", nargs="*", help="these functions (logical ids) only")
    args = parser.parse_args()
    subprocess.run(["make", "-s", "build-host", ".venv/lambda-runtime/.installed"], cwd=ROOT, check=True)
    runner.configure_environment()
    database.ensure_database()
    samples.load_sample_rows()
    functions = {k: v for k, v in template.load().functions.items() if not args.only or k in args.only}
    if args.only and len(functions) != len(args.only):
        parser.error(f"no such function: {sorted(set(args.only) - set(functions))}")
    load_before = os.getloadavg()[0]
    results: dict[str, tuple[float, float, float, float, float]] = {}
    for logical_id, code_dir in sorted(functions.items()):
        event = samples.ready_event(code_dir.name, json.loads((ROOT / "events" / f"{code_dir.name}.json").read_text()))
        inits, firsts = cold_starts(logical_id, event, args.runs)
        cpu = statistics.median(init_cpu(logical_id, args.runs))
        started = statistics.median(init + first for init, first in zip(inits, firsts, strict=True))
        results[logical_id] = (statistics.median(inits), max(inits), statistics.median(firsts), cpu, started)
    width = max(map(len, results))
    print(
        f"INIT of each built function under the emulator, {args.runs} fresh containers "
        f"(target: median < {MEDIAN_TARGET_MS:.0f} ms)"
    )
    print(f"  {'function':<{width}}  {'INIT median':>11}  {'INIT max':>9}  {'1st call':>9}  {'INIT CPU':>9}")
    for name, (median, most, first, cpu, _) in sorted(results.items(), key=lambda item: item[1], reverse=True):
        print(f"  {name:<{width}}  {median:8.1f} ms  {most:6.1f} ms  {first:6.1f} ms  {cpu:6.1f} ms")
    for what, index in (("INIT", 0), ("INIT CPU", 3)):
        medians = sorted(result[index] for result in results.values())
        overall, slowest = statistics.median(medians), medians[-1]
        verdict = "meets" if overall < MEDIAN_TARGET_MS and slowest < MAX_TARGET_MS else "misses"
        print(
            f"functions: {len(medians)}; {what} median of medians {overall:.1f} ms, slowest {slowest:.1f} ms "
            f"({verdict} the target: median < {MEDIAN_TARGET_MS:.0f} ms, each < {MAX_TARGET_MS:.0f} ms)"
        )
    # What a user of a cold container waits for: work moved from INIT to the first call would show here.
    for what, index in (("first call", 2), ("INIT + first call", 4)):
        medians = sorted(result[index] for result in results.values())
        print(
            f"functions: {len(medians)}; {what} median of medians {statistics.median(medians):.1f} ms, "
            f"slowest {medians[-1]:.1f} ms"
        )
    event = priced_event()
    for what, (first, later) in (("", priced_calls(event, args.runs)), (" CPU", priced_cpu(event, args.runs))):
        verdict = "meets" if first - later < PRICED_TARGET_MS else "misses"
        print(
            f"first priced call{what} ({PRICED_FUNCTION}, fresh container): {first:.1f} ms; later ones {later:.1f} ms;"
            f" the first costs {first - later:.1f} ms more ({verdict} the target: < {PRICED_TARGET_MS:.0f} ms)"
        )
    load_after, cores = os.getloadavg()[0], os.cpu_count()
    print(f"load average (1 min): {load_before:.1f} at the start, {load_after:.1f} at the end, {cores} cores")
    slowest_id = max(results, key=lambda name: results[name][0])
    packages = where_time_goes(slowest_id)
    total = sum(ms for ms, _ in packages)
    print(
        f"where the imports of {slowest_id}'s start go (python -X importtime, own time of each module summed per"
        f" package, least of 3 starts; {len(packages)} packages, {total:.0f} ms in all):"
    )
    for ms, package in packages[:15]:
        print(f"  {package:<45} {ms:7.1f} ms  {ms / total:4.0%}")


if __name__ == "__main__":
    main()

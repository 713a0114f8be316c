"""Cold starts of every function as built for Lambda: the INIT duration the Runtime Interface Emulator reports for a
fresh container of the built function (`make build-host`: the layer with bytecode, as `make build` ships it), then
its first invocation with the function's sample event. Tracing is on, as deployed (no AWS_SAM_LOCAL), and no
invocation is sampled, as most are not.

Prints per function the median INIT of N fresh containers (COLD_START_RUNS, default 5), the CPU time of the same
start (the runtime client and the function's module imported in a fresh interpreter, as INIT does: on a shared,
busy machine the INIT's wall time is mostly waiting for a core, its CPU time much less so), and the heaviest
imports of the slowest function (python -X importtime, on the built layer). Target: median under 300 ms, each
function under 400 ms.
"""

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

RUNS = int(os.environ.get("COLD_START_RUNS", "5"))
MEDIAN_TARGET_MS = 300.0
MAX_TARGET_MS = 400.0


def cold_starts(logical_id: str, event: dict) -> tuple[list[float], list[float]]:
    inits, firsts = [], []
    for _ in range(RUNS):
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


# What INIT does in the runtime's interpreter: start the runtime client, import the handler's module.
INIT_PROBE = """
import resource
import awslambdaric.bootstrap
import app
usage = resource.getrusage(resource.RUSAGE_SELF)
print((usage.ru_utime + usage.ru_stime) * 1000)
"""


def init_cpu(logical_id: str) -> list[float]:
    """CPU milliseconds (user + system) of a function's start, interpreter included, in RUNS fresh processes."""
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
        for _ in range(RUNS)
    ]


def heaviest_imports(logical_id: str) -> list[tuple[float, str]]:
    env = emulator.function_environment(logical_id, sam_local=False)
    trace = subprocess.run(
        [str(emulator.RUNTIME_PYTHON), "-X", "importtime", "-c", "import app"],
        cwd=emulator.BUILD_DIR / logical_id,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    cumulative = []
    for line in trace.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match and len(match.group(2)) <= 4:  # the first two levels
            cumulative.append((int(match.group(1)) / 1000, match.group(3)))
    return sorted(cumulative, reverse=True)[:10]


def main() -> None:
    subprocess.run(["make", "-s", "build-host", ".venv/lambda-runtime/.installed"], cwd=ROOT, check=True)
    runner.configure_environment()
    database.ensure_database()
    samples.load_sample_rows()
    load_before = os.getloadavg()[0]
    results: dict[str, tuple[float, float, float, float]] = {}
    for logical_id, code_dir in sorted(template.load().functions.items()):
        event = samples.ready_event(code_dir.name, json.loads((ROOT / "events" / f"{code_dir.name}.json").read_text()))
        inits, firsts = cold_starts(logical_id, event)
        cpu = statistics.median(init_cpu(logical_id))
        results[logical_id] = (statistics.median(inits), max(inits), statistics.median(firsts), cpu)
    width = max(map(len, results))
    print(f"INIT of each built function under the emulator, {RUNS} fresh containers (target: median < 300 ms)")
    print(f"  {'function':<{width}}  {'INIT median':>11}  {'INIT max':>9}  {'1st call':>9}  {'INIT CPU':>9}")
    for name, (median, most, first, cpu) in sorted(results.items(), key=lambda item: item[1], reverse=True):
        print(f"  {name:<{width}}  {median:8.1f} ms  {most:6.1f} ms  {first:6.1f} ms  {cpu:6.1f} ms")
    for what, index in (("INIT", 0), ("INIT CPU", 3)):
        medians = sorted(result[index] for result in results.values())
        overall, slowest = statistics.median(medians), medians[-1]
        verdict = "meets" if overall < MEDIAN_TARGET_MS and slowest < MAX_TARGET_MS else "misses"
        print(
            f"functions: {len(medians)}; {what} median of medians {overall:.1f} ms, slowest {slowest:.1f} ms "
            f"({verdict} the target: median < {MEDIAN_TARGET_MS:.0f} ms, each < {MAX_TARGET_MS:.0f} ms)"
        )
    load_after, cores = os.getloadavg()[0], os.cpu_count()
    print(f"load average (1 min): {load_before:.1f} at the start, {load_after:.1f} at the end, {cores} cores")
    slowest_id = max(results, key=lambda name: results[name][0])
    print(f"heaviest imports of {slowest_id} (built layer with bytecode, cumulative):")
    for ms, module in heaviest_imports(slowest_id):
        print(f"  {module:<60} {ms:7.1f} ms")


if __name__ == "__main__":
    main()

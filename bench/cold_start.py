"""Cold starts of every function as built for Lambda: the INIT duration the Runtime Interface Emulator reports for a
fresh container of the built function (`make build-host`: the layer with bytecode, as `make build` ships it), then
its first invocation with the function's sample event. Tracing is on, as deployed (no AWS_SAM_LOCAL), and no
invocation is sampled, as most are not.

Prints per function the median INIT of N fresh containers (COLD_START_RUNS, default 5) and the heaviest imports
of the slowest function (python -X importtime, on the built layer). Target: median under 300 ms, each function
under 400 ms.
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
    results: dict[str, tuple[float, float, float]] = {}
    for logical_id, code_dir in sorted(template.load().functions.items()):
        event = samples.ready_event(code_dir.name, json.loads((ROOT / "events" / f"{code_dir.name}.json").read_text()))
        inits, firsts = cold_starts(logical_id, event)
        results[logical_id] = (statistics.median(inits), max(inits), statistics.median(firsts))
    width = max(map(len, results))
    print(f"INIT of each built function under the emulator, {RUNS} fresh containers (target: median < 300 ms)")
    print(f"  {'function':<{width}}  {'INIT median':>11}  {'INIT max':>9}  {'1st call':>9}")
    for name, (median, most, first) in sorted(results.items(), key=lambda item: item[1], reverse=True):
        print(f"  {name:<{width}}  {median:8.1f} ms  {most:6.1f} ms  {first:6.1f} ms")
    medians = sorted(median for median, _, _ in results.values())
    overall, slowest = statistics.median(medians), medians[-1]
    verdict = "meets" if overall < MEDIAN_TARGET_MS and slowest < MAX_TARGET_MS else "misses"
    print(
        f"functions: {len(medians)}; INIT median of medians {overall:.1f} ms, slowest {slowest:.1f} ms "
        f"({verdict} the target: median < {MEDIAN_TARGET_MS:.0f} ms, each < {MAX_TARGET_MS:.0f} ms)"
    )
    slowest_id = max(results, key=lambda name: results[name][0])
    print(f"heaviest imports of {slowest_id} (built layer with bytecode, cumulative):")
    for ms, module in heaviest_imports(slowest_id):
        print(f"  {module:<60} {ms:7.1f} ms")


if __name__ == "__main__":
    main()

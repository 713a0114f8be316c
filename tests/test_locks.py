"""The lock files are what `make lock` makes of the declared inputs: an input edited without relocking fails."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_lock_files_are_up_to_date() -> None:
    result = subprocess.run(["make", "-s", "lock-check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_declared_pin_is_in_its_lock() -> None:
    """Each exact pin of an input file is the version its lock file holds (the layer's lock is what sam build
    installs)."""
    for declared in [ROOT / "layers/common/requirements.in", *ROOT.glob("requirements-*.in")]:
        locked = {
            line.split("==")[0].split("[")[0].lower(): line.split("==")[1].split(";")[0].strip()
            for line in declared.with_suffix(".txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")
        }
        for line in declared.read_text().splitlines():
            line = line.split("#")[0].strip()  # a pin may carry a comment
            if "==" in line and not line.startswith(("#", "-")):
                name, version = line.split("==")
                assert locked[name.split("[")[0].lower()] == version.strip(), f"{declared.name}: {line}"

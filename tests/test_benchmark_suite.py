"""The pytest-benchmark suite writes pytest-benchmark's own JSON, which its compare command reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_benchmark_json_is_read_by_pytest_benchmark_compare(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    # not an xdist worker's environment: pytest-benchmark in a process that looks like a worker leaves the JSON to a
    # controller that does not exist here
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")} | {"PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "0",  # pytest-benchmark measures nothing under xdist workers (the tests' default, pyproject addopts)
            str(REPO / "benchmarks" / "test_modules.py"),
            "-k",
            "rms_norm_fused-small",
            f"--benchmark-json={out}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    (bench,) = data["benchmarks"]
    assert bench["name"] == "test_module[rms_norm_fused-small]"
    extra = bench["extra_info"]
    # the ratio's interval is reported; whether the fused norm is faster is measured in benchmarks/test_regression.py
    assert 0 < extra["ratio_low"] <= extra["ratio"] <= extra["ratio_high"]
    assert {"roofline_pct", "gbps", "candidate_peak_bytes", "memory_ratio", "device", "dtype"} <= set(extra)
    # the statistics are the module's own call times, measured in the contestant (tens of microseconds here)
    assert 1e-6 < bench["stats"]["median"] < 1e-2 and bench["stats"]["rounds"] >= 5
    other = tmp_path / "other.json"  # a second run to compare against (a copy: compare reads each file once)
    other.write_text(out.read_text())
    compare = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(out), str(other)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert compare.returncode == 0, compare.stderr
    assert "rms_norm_fused-small" in compare.stdout

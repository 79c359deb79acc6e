"""The benchmark runs end to end in --smoke mode and prints its figures (no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_rules_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_rules.py"), "--smoke"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=420,  # generous: the machine may be shared with other suites
    ).stdout
    assert re.search(r"full evaluation: \d+ rules over all patients: best [0-9.]+ s", out)
    assert re.search(r"speedup \d+x", out)
    assert "findings identical: True" in out
    assert "SQL window query" in out
    assert "same patients count: True" in out
    assert "same findings as in memory: True" in out
    assert "incremental read plan uses the ingested_at BRIN index: True" in out
    assert out.count("cached region equals a full load: True") == 2
    assert re.search(r"steady-state sweep, 400 patients: \d+ new rows .* incremental load [0-9.]+ s", out)
    assert re.search(r"steady-state load \+ evaluate x[0-9.]+ for x2.0 patients", out)
    assert re.search(r"sweep by 2 partitioned workers, 400 patients: slowest worker [0-9.]+ s", out)

"""The ingest benchmark runs end to end in its smoke size and prints its figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_smoke_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_ingest.py", "--smoke"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for label in ("1 reading/message:", "100 readings/message:", "raw binary COPY:", "batched / raw COPY:"):
        assert label in out, out
    assert out.count("readings/s") >= 3

"""benchmarks/bench_api.py --smoke runs and prints its figures (no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.clinic_api.conftest import ROOT


@pytest.mark.slow
def test_bench_api_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_api.py", "--smoke"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=480,  # a hang guard, not a speed check: the shared machine can be slow
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    scenarios = ("alert queue", "queue page", "queue fragment", "alert detail", "alert page", "cgm 90 days")
    for name in (*scenarios, "cgm 90 days page"):
        assert re.search(rf"{name}\s+p50\s+[\d.]+ ms\s+p95\s+[\d.]+ ms\s+p99\s+[\d.]+ ms", proc.stdout), proc.stdout
    assert "2000 readings" in proc.stdout
    # The seed interleaves many patients and holds alerts in every status.
    assert re.search(r"seeded 20 patients \(2 with CGM\)", proc.stdout), proc.stdout
    for status in ("open", "acknowledged", "snoozed", "resolved", "awaiting_confirmation"):
        assert re.search(rf"\d+ {status}\b", proc.stdout), proc.stdout

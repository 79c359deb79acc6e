"""The benchmark runs (tiny size) and prints its figures; no timing asserts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_gateway_smoke() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gateway.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "readings: 200" in out
    assert "cpu_s_per_1000_readings:" in out
    assert "peak_rss_mb:" in out


@pytest.mark.slow
def test_fuzz_gateway_smoke() -> None:
    import json  # noqa: PLC0415

    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fuzz_gateway.py"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert (doc["payloads"], doc["crashes"]) == (2000, 0)
    assert doc["undecodable_kept"] > 0

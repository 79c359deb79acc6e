"""The fleet benchmark runs in its --smoke size and prints its figures (no timing asserts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_fleet_smoke_prints_its_figures() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MQTT_URL"}
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_fleet.py", "--smoke"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "published: " in result.stdout
    assert "readings/s" in result.stdout
    assert "cohort: 20 gateways" in result.stdout

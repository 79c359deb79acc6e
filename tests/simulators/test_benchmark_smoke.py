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


def test_bench_fleet_score_smoke_drives_ingest_and_alerting_and_prints_scores() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"MQTT_URL", "DATABASE_URL"}}
    result = subprocess.run(
        [sys.executable, "benchmarks/bench_fleet.py", "--score", "--smoke"],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "ingest stored" in result.stdout
    assert "condition | episode | rule |" in result.stdout
    # The replayed engine raised alerts, and some matched labelled episodes.
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.count(" | ") == 8]
    detected = [int(r[4]) for r in rows[1:] if r[2] == "*"]
    assert sum(detected) >= 1

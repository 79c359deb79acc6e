"""benchmarks/bench_latency.py --smoke runs the real services and every probe raises its finding (no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_latency_smoke_probes_raise_findings() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_latency.py"), "--smoke"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    # Every probe's 2.5 mmol/L reached alert_finding as D4 high within the smoke's timeout.
    m = re.search(r"; (\d+) probes, (\d+) without an alert in", out)
    assert m is not None, out
    assert int(m.group(1)) > 0
    assert m.group(2) == "0", out
    all_line = re.search(r"commit -> alert all\s+n=\s*(\d+)\s+p50\s+[0-9.]+ ms\s+p99\s+[0-9.]+ ms", out)
    assert all_line is not None, out
    assert int(all_line.group(1)) == int(m.group(1))
    # Both paths ran: the notify evaluator and the sweep.
    assert re.search(r"notify evaluations\s+[1-9]", out), out
    assert re.search(r"sweep\s+evaluations\s+[1-9]", out), out

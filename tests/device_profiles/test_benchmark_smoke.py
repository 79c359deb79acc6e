"""The decode benchmark runs and prints its figures (no timing asserts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_decode_smoke() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_decode.py"), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = result.stdout
    assert "codec/s" in out
    for name in ("blood_pressure 0x2A35", "glucose 0x2A18", "cgm 0x2AA7", "weight 0x2A9D", "peak_flow"):
        assert name in out
    assert "blood pressure decodes/s (profile path):" in out

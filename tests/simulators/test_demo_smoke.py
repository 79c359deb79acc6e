"""The README's demo in its bounded smoke mode, run as a subprocess like CI does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL runs as the
    # postgres user when the suite runs as root, so it must be able to reach the directory.
    base = Path(tempfile.mkdtemp(prefix="egenmon-demo-"))
    base.chmod(0o755)
    try:
        yield base / "state"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _processes_mentioning(text: str, session: int) -> list[str]:
    """Live processes whose command line or environment names ``text`` or that belong to
    ``session`` (the demo's gateways carry their state directory in the environment)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        try:
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:  # another user's process
            environ = ""
        # Fields after the parenthesised command name: state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        if text in cmdline or text in environ or int(fields[3]) == session:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


@pytest.mark.slow
def test_demo_smoke_runs_and_leaves_nothing_behind(state_dir: Path) -> None:
    state = state_dir
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "MQTT_URL"}}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.demo", "--smoke", "--state-dir", str(state), "--clinic-port", "0",
         "--smoke-timeout", "60", "--ble-gateways", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=280)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "PASS seed" in out
    assert "PASS publish" in out
    # Virtual BLE → `python -m gateway run` → Mosquitto → ingest → observation table.
    assert "PASS reading through a real gateway" in out
    assert out.count("real gateway code:") == 2
    assert "FAIL" not in out
    assert (state / "labels.json").exists()
    assert len(list((state / "gateways").glob("*/scenario.json"))) == 2
    assert _processes_mentioning(str(state), proc.pid) == []


def test_demo_exits_1_when_a_step_fails(state_dir: Path) -> None:
    # An unreachable database is a failure, and the broker it started is stopped again.
    env = {k: v for k, v in os.environ.items() if k != "MQTT_URL"}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL="postgresql://nobody:x@127.0.0.1:1/none")
    state = state_dir
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--smoke", "--state-dir", str(state), "--smoke-timeout", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert _processes_mentioning(str(state), -1) == []


def test_demo_refuses_to_delete_a_directory_it_did_not_make(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    precious = state_dir / "thesis.txt"
    precious.write_text("keep me")
    result = subprocess.run(
        [sys.executable, "-m", "deploy.demo", "--smoke", "--state-dir", str(state_dir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert precious.read_text() == "keep me"

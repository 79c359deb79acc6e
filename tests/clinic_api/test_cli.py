"""``python -m clinic_api seed-demo`` as the demo runs it (a subprocess, idempotent)."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from clinic_api import demo_seed
from tests.clinic_api.conftest import ROOT


def _seed(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "EGENMON_CLINIC_DEMO": "1"}
    return subprocess.run(
        [sys.executable, "-m", "clinic_api", "seed-demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_seed_demo_staff_only_twice(database_url: str) -> None:
    for _ in range(2):
        proc = _seed(database_url, "--no-with-patients")
        assert proc.returncode == 0, proc.stderr
        assert "Sjuksköterska Anna Demo" in proc.stdout
    with psycopg.connect(database_url) as conn:
        staff = conn.execute("SELECT subject, roles FROM staff ORDER BY subject").fetchall()
        units = conn.execute("SELECT code FROM care_unit ORDER BY code").fetchall()
        patients = conn.execute("SELECT count(*) FROM patient").fetchone()
    assert {s[0] for s in staff} == {s.subject for s in demo_seed.STAFF}
    assert [u[0] for u in units] == ["MON-NORD", "MON-SYD"]
    assert patients == (0,)


def test_settings_refuse_to_start_outside_demo_with_placeholders(database_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "EGENMON_CLINIC_DEMO": "0"}
    env.pop("EGENMON_CLINIC_OIDC_ISSUER", None)
    env.pop("EGENMON_CLINIC_ENROLLMENT_PEPPER", None)
    proc = subprocess.run(
        [sys.executable, "-m", "clinic_api", "seed-demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "must be a real secret outside the local demo" in proc.stderr

"""``python -m clinic_api create-admin``: the first admin of an empty installation, then
that admin's token (dev issuer) opens the admin API."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import psycopg

from clinic_api import demo_seed
from clinic_api.app import create_app
from clinic_api.auth import DevIssuerKeys
from tests.clinic_api.conftest import NURSE, ROOT, TestClient, make_settings, token_headers

HSA_ID = "SE0000000000-TEST1"  # an HSA-id-shaped test value, no real person
NAME = "Administratör Eva Test"


def _cli(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": database_url, "EGENMON_CLINIC_DEMO": "1", **env}
    return subprocess.run(
        [sys.executable, "-m", "clinic_api", "create-admin", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _staff(conn: psycopg.Connection[Any], subject: str) -> tuple[Any, ...] | None:
    return conn.execute(
        """SELECT s.display_name, s.roles, array_agg(u.code ORDER BY u.code)
           FROM staff s JOIN staff_unit su ON su.staff_id = s.id JOIN care_unit u ON u.id = su.unit_id
           WHERE s.subject = %s GROUP BY s.id""",
        (subject,),
    ).fetchone()


def test_first_admin_of_an_empty_installation(database_url: str, dev_keys: DevIssuerKeys) -> None:
    # The production settings: the command needs no demo.
    production = {
        "EGENMON_CLINIC_DEMO": "0",
        "EGENMON_CLINIC_OIDC_ISSUER": "https://idp.example.se/realms/region",
        "EGENMON_CLINIC_OIDC_CLIENT_ID": "egenmon-clinic",
        "EGENMON_CLINIC_ENROLLMENT_PEPPER": "a-real-long-secret-value-123",
        "EGENMON_CLINIC_SESSION_SECRET": "another-real-long-secret-456",
    }
    args = ("--subject", HSA_ID, "--name", NAME, "--unit", "MON-NY")
    no_unit = _cli(database_url, *args, **production)
    assert no_unit.returncode == 1
    assert "no care unit 'MON-NY'; pass --unit-name" in no_unit.stderr
    assert "Traceback" not in no_unit.stderr

    made = _cli(database_url, *args, "--unit-name", "Monitoreringsfunktionen Ny", **production)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("created staff ")
    assert "roles admin; unit MON-NY" in made.stdout
    with psycopg.connect(database_url) as conn:
        assert _staff(conn, HSA_ID) == (NAME, ["admin"], ["MON-NY"])
        audit = conn.execute("SELECT staff_id, subject, action, resource, detail FROM audit_log ORDER BY id").fetchall()
    assert [(a[0], a[1], a[2], a[3].split("/")[0]) for a in audit] == [
        (None, "cli", "create", "care_unit"),
        (None, "cli", "create", "staff"),
    ]
    assert audit[1][4]["via"] == "create-admin"
    assert audit[1][4]["roles"] == ["admin"]

    # The new admin signs in (a dev-issuer token for the subject) and administers staff.
    with TestClient(create_app(make_settings(database_url), dev_keys=dev_keys)) as c:
        headers = token_headers(c, HSA_ID)
        r = c.get("/api/v1/staff", headers=headers)
        assert r.status_code == 200, r.text
        assert [s["display_name"] for s in r.json()] == [NAME]
        assert c.get("/api/v1/me", headers=headers).json()["roles"] == ["admin"]
        assert c.get("/api/v1/patients", headers=headers).status_code == 403  # admin is not clinical


def test_existing_subject_under_another_name_needs_force(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        demo_seed.seed_staff(conn)
    renamed = _cli(database_url, "--subject", NURSE, "--name", "Någon Annan", "--unit", "MON-NORD")
    assert renamed.returncode == 1
    assert "already belongs to 'Sjuksköterska Anna Demo'" in renamed.stderr
    with psycopg.connect(database_url) as conn:
        assert _staff(conn, NURSE) == ("Sjuksköterska Anna Demo", ["nurse"], ["MON-NORD"])
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)

    # Same name: promoted, the nurse role kept, a second unit added; idempotent.
    for _ in range(2):
        promoted = _cli(database_url, "--subject", NURSE, "--name", "Sjuksköterska Anna Demo", "--unit", "MON-SYD")
        assert promoted.returncode == 0, promoted.stderr
        assert "updated staff" in promoted.stdout
    with psycopg.connect(database_url) as conn:
        assert _staff(conn, NURSE) == ("Sjuksköterska Anna Demo", ["nurse", "admin"], ["MON-NORD", "MON-SYD"])

    forced = _cli(database_url, "--subject", NURSE, "--name", "Anna Omdöpt", "--unit", "MON-NORD", "--force")
    assert forced.returncode == 0, forced.stderr
    with psycopg.connect(database_url) as conn:
        assert _staff(conn, NURSE) == ("Anna Omdöpt", ["nurse", "admin"], ["MON-NORD", "MON-SYD"])
        rows = conn.execute("SELECT subject, action, detail->>'forced' FROM audit_log ORDER BY id").fetchall()
    assert rows == [("cli", "update", "false"), ("cli", "update", "false"), ("cli", "update", "true")]

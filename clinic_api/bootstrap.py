"""The first admin of a fresh installation (``python -m clinic_api create-admin``).

Nobody can sign in to create staff before some staff row has the admin role, so region IT
creates (or promotes) that one from the command line; the change is audited as done by
"cli", since no staff member acts.
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from clinic_api import audit
from clinic_api.errors import ClinicError

ACTOR = "cli"


class BootstrapError(ClinicError):
    """The admin was not created; the message says why and what to pass instead."""


@dataclass(frozen=True, slots=True)
class AdminResult:
    staff_id: uuid.UUID
    created: bool
    roles: tuple[str, ...]
    unit_code: str


def create_admin(
    conn: psycopg.Connection[Any],
    *,
    subject: str,
    name: str,
    unit_code: str,
    unit_name: str | None = None,
    force: bool = False,
) -> AdminResult:
    """Give ``subject`` the admin role in ``unit_code``, creating the staff row (and, with
    ``unit_name``, the unit) when missing. An existing row under another name is refused
    unless ``force``: the subject may have been mistyped into someone else's."""
    subject, name, unit_code = subject.strip(), name.strip(), unit_code.strip()
    if not subject or not name or not unit_code:
        raise BootstrapError("subject, name and unit must not be empty")
    with conn.transaction():
        unit = conn.execute("SELECT id FROM care_unit WHERE code = %s", (unit_code,)).fetchone()
        if unit is None:
            if not unit_name:
                raise BootstrapError(f"no care unit {unit_code!r}; pass --unit-name to create it")
            unit = conn.execute(
                "INSERT INTO care_unit (code, name) VALUES (%s, %s) RETURNING id", (unit_code, unit_name.strip())
            ).fetchone()
            assert unit is not None
            audit.record(conn, None, "create", f"care_unit/{unit[0]}", actor=ACTOR, detail=_detail())
        row = conn.execute(
            "SELECT id, display_name, roles, active FROM staff WHERE subject = %s FOR UPDATE", (subject,)
        ).fetchone()
        if row is None:
            created = conn.execute(
                "INSERT INTO staff (subject, display_name, roles) VALUES (%s, %s, ARRAY['admin']) RETURNING id, roles",
                (subject, name),
            ).fetchone()
            assert created is not None
            staff_id, roles, was_created = created[0], created[1], True
        else:
            if row[1] != name and not force:
                raise BootstrapError(
                    f"subject {subject!r} already belongs to {row[1]!r}; check the subject, or pass --force to rename"
                )
            updated = conn.execute(
                """UPDATE staff SET display_name = %s, active = true,
                          roles = CASE WHEN 'admin' = ANY(roles) THEN roles ELSE roles || ARRAY['admin'] END
                   WHERE id = %s RETURNING roles""",
                (name, row[0]),
            ).fetchone()
            assert updated is not None
            staff_id, roles, was_created = row[0], updated[0], False
        conn.execute(
            "INSERT INTO staff_unit (staff_id, unit_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (staff_id, unit[0])
        )
        audit.record(
            conn,
            None,
            "create" if was_created else "update",
            f"staff/{staff_id}",
            actor=ACTOR,
            detail={**_detail(), "subject": subject, "roles": sorted(roles), "unit": unit_code, "forced": force},
        )
    return AdminResult(staff_id, was_created, tuple(sorted(roles)), unit_code)


def _detail() -> dict[str, Any]:
    # Which operating-system account ran the command, for the auditor.
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = None
    return {"via": "create-admin", "os_user": user}

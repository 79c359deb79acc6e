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
from clinic_api.queries import staff as staff_queries

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
        unit_id = staff_queries.unit_id_by_code(conn, unit_code)
        if unit_id is None:
            if not unit_name:
                raise BootstrapError(f"no care unit {unit_code!r}; pass --unit-name to create it")
            unit_id = staff_queries.create_unit(conn, unit_code, unit_name.strip())
            audit.record(conn, None, "create", f"care_unit/{unit_id}", actor=ACTOR, detail=_detail())
        row = staff_queries.by_subject_for_update(conn, subject)
        if row is None:
            staff_id, roles = staff_queries.insert_admin(conn, subject, name)
            was_created = True
        else:
            if row["display_name"] != name and not force:
                raise BootstrapError(
                    f"subject {subject!r} already belongs to {row['display_name']!r}; "
                    "check the subject, or pass --force to rename"
                )
            staff_id, was_created = row["id"], False
            roles = staff_queries.promote_admin(conn, staff_id, name)
        staff_queries.add_to_unit(conn, staff_id, unit_id)
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

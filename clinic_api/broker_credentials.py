"""Gateway broker accounts from the database into Mosquitto's password file.

Enrollment stores each gateway's MQTT password only as ``gateway.credential_hash``, in
Mosquitto's own PBKDF2-SHA512 format (``$7$iterations$salt$hash``, secrets_util), so the
broker can check it as it is: this module writes ``<gateway id>:<hash>`` lines. The
database is the authority for every gateway it knows (enrolled: its line; not enrolled:
no line); other lines of an existing file (the ``ingest`` and ``platform`` service
accounts, made with mosquitto_passwd) are kept as they were.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from clinic_api.queries import gateways
from device_profiles.wire import GATEWAY_ID_PATTERN

_GATEWAY_ID_RE = re.compile(GATEWAY_ID_PATTERN)
# What Mosquitto 2.x accepts as a PBKDF2-SHA512 entry (base64 salt and digest).
_HASH_RE = re.compile(r"^\$7\$[0-9]+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$")
RESERVED = frozenset({"ingest", "platform"})


class ExportError(RuntimeError):
    """The database holds something that must not reach the broker's password file."""


@dataclass(frozen=True)
class ExportResult:
    gateways: int  # lines written from the database
    kept: int  # other accounts carried over from the existing file
    removed: int  # lines of the existing file dropped (gateways no longer enrolled)


def gateway_entries(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[dict[str, str], set[str]]:
    """(enrolled gateway id -> hash, every gateway id the database knows)."""
    rows = gateways.credential_hashes(conn)
    entries: dict[str, str] = {}
    known: set[str] = set()
    for gid, chash in rows:
        gateway_id = str(gid)
        known.add(gateway_id)
        if chash is None:
            continue
        # The schema's CHECK already holds the id to this pattern; a line break or colon in
        # either field would let a database row write someone else's broker account.
        if not _GATEWAY_ID_RE.match(gateway_id) or gateway_id in RESERVED or gateway_id.startswith("egenmon-"):
            raise ExportError(f"gateway id {gateway_id!r} is not a valid broker user name")
        if not _HASH_RE.match(str(chash)):
            raise ExportError(f"gateway {gateway_id}: credential_hash is not a Mosquitto $7$ hash")
        entries[gateway_id] = str(chash)
    return entries, known


def merge(existing: str, entries: dict[str, str], known: set[str]) -> tuple[str, ExportResult]:
    """The new file's text: kept foreign lines first, in their order, then the gateways."""
    kept: list[str] = []
    removed = 0
    for line in existing.splitlines():
        user = line.split(":", 1)[0]
        if not line.strip() or line.startswith("#"):
            continue
        if user in known:
            removed += user not in entries
            continue
        kept.append(line)
    lines = kept + [f"{gid}:{h}" for gid, h in sorted(entries.items())]
    return "".join(line + "\n" for line in lines), ExportResult(gateways=len(entries), kept=len(kept), removed=removed)


def export(database_url: str, out: Path) -> ExportResult:
    """Rewrite ``out`` atomically (same directory, rename), keeping its mode and owner."""
    with psycopg.connect(database_url) as conn:
        entries, known = gateway_entries(conn)
    existing = out.read_text() if out.exists() else ""
    text, result = merge(existing, entries, known)
    st = out.stat() if out.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # The broker reads this file after dropping to its own user: keep what IT set up.
        os.chmod(tmp, st.st_mode & 0o777 if st else 0o600)
        if st is not None and os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return result

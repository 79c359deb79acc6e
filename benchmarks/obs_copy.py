"""Fast seeding for the benchmarks: observation rows as PostgreSQL binary COPY built with numpy.

Writing tens of millions of rows through psycopg's row formatter takes minutes; here each
(series, censoring) group is a numpy structured array in COPY's binary tuple layout (all
text fields of a group have the same length, so every tuple has the same size). Rows are
written in time slices, so the heap holds many patients interleaved in time, as
production's ingest leaves it, not one patient's rows in one block.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH = 946_684_800.0  # 2000-01-01 in Unix seconds: binary timestamptz counts from there
COLUMNS = (
    "reading_id, component, measured_at, patient_id, gateway_id, device_address, kind,"
    " value, unit, censored, received_at"
)


def patient_uuid_bytes(n: int) -> np.ndarray:
    """The uuids ``UUID(int=i + 1)`` for i < n as an (n, 16) uint8 array (big-endian)."""
    out = np.zeros((n, 16), dtype=np.uint8)
    v = np.arange(1, n + 1, dtype=np.uint64)
    out[:, 8:] = v.astype(">u8").view(np.uint8).reshape(n, 8)
    return out


def patient_ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def _tuples(
    pat: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    pids: np.ndarray,
    *,
    kind: str,
    component: str,
    unit: str,
    censored: str | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """One group's rows (censored fixed) as an (n, rowsize) byte array."""
    texts = {
        "component": component.encode(),
        "gateway": b"gw-bench",
        "addr": b"AA",
        "kind": kind.encode(),
        "unit": unit.encode(),
    }
    fields: list[tuple[str, Any]] = [("nf", ">i2")]
    fields += [("l_rid", ">i4"), ("rid", "u1", (16,))]
    fields += [("l_comp", ">i4"), ("comp", f"S{len(texts['component'])}")]
    fields += [("l_at", ">i4"), ("at", ">i8")]
    fields += [("l_pid", ">i4"), ("pid", "u1", (16,))]
    fields += [("l_gw", ">i4"), ("gw", f"S{len(texts['gateway'])}")]
    fields += [("l_addr", ">i4"), ("addr", f"S{len(texts['addr'])}")]
    fields += [("l_kind", ">i4"), ("kind", f"S{len(texts['kind'])}")]
    fields += [("l_val", ">i4")] + ([("val", ">f8")] if censored is None else [])
    fields += [("l_unit", ">i4"), ("unit", f"S{len(texts['unit'])}")]
    fields += [("l_cens", ">i4")] + ([("cens", f"S{len(censored)}")] if censored is not None else [])
    fields += [("l_recv", ">i4"), ("recv", ">i8")]
    rec = np.zeros(len(pat), dtype=np.dtype(fields))
    rec["nf"] = 11
    rec["l_rid"], rec["rid"] = 16, rng.integers(0, 256, size=(len(pat), 16), dtype=np.uint8)
    rec["l_comp"], rec["comp"] = len(texts["component"]), texts["component"]
    micros = np.round((t - PG_EPOCH) * 1e6).astype(np.int64)
    rec["l_at"], rec["at"] = 8, micros
    rec["l_pid"], rec["pid"] = 16, pids[pat]
    rec["l_gw"], rec["gw"] = len(texts["gateway"]), texts["gateway"]
    rec["l_addr"], rec["addr"] = len(texts["addr"]), texts["addr"]
    rec["l_kind"], rec["kind"] = len(texts["kind"]), texts["kind"]
    if censored is None:
        rec["l_val"], rec["val"] = 8, v
        rec["l_cens"] = -1
    else:
        rec["l_val"] = -1
        rec["l_cens"], rec["cens"] = len(censored), censored.encode()
    rec["l_unit"], rec["unit"] = len(texts["unit"]), texts["unit"]
    rec["l_recv"], rec["recv"] = 8, micros
    return rec.view(np.uint8).reshape(len(pat), rec.dtype.itemsize)


def copy_observations(
    conn: psycopg.Connection[Any],
    series: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    n_patients: int,
    *,
    slice_s: float = 6 * 3600.0,
    seed: int = 3,
) -> int:
    """COPY the (key, patient index, epoch time, value) series into ``observation``; ±inf: censored.

    Patient index i becomes ``UUID(int=i + 1)``. Returns the number of rows written.
    """
    rng = np.random.default_rng(seed)
    pids = patient_uuid_bytes(n_patients)
    groups: list[tuple[np.ndarray, np.ndarray]] = []  # (time, row bytes), each sorted by time
    for key, pat, t, v in series:
        kind, component = key.split(".", 1)
        for cens, mask in ((None, np.isfinite(v)), ("low", v == -np.inf), ("high", v == np.inf)):
            if not mask.any():
                continue
            order = np.argsort(t[mask], kind="stable")
            rows = _tuples(
                pat[mask][order],
                t[mask][order],
                v[mask][order],
                pids,
                kind=kind,
                component=component,
                unit="x",
                censored=cens,
                rng=rng,
            )
            groups.append((t[mask][order], rows))
    if not groups:
        return 0
    lo = min(float(g[0][0]) for g in groups)
    hi = max(float(g[0][-1]) for g in groups)
    edges = np.arange(lo, hi + slice_s, slice_s)
    cuts = [np.searchsorted(gt, edges, side="right") for gt, _ in groups]

    def blocks() -> Iterator[bytes]:
        yield SIGNATURE
        prev = [0] * len(groups)
        for e in range(len(edges)):
            for g, (_, rows) in enumerate(groups):
                c = int(cuts[g][e])
                if c > prev[g]:
                    yield rows[prev[g] : c].tobytes()
                    prev[g] = c
        for g, (_, rows) in enumerate(groups):
            if prev[g] < len(rows):
                yield rows[prev[g] :].tobytes()
        yield TRAILER

    with conn.cursor().copy(f"COPY observation ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as cp:
        for b in blocks():
            cp.write(b)
    return sum(len(r) for _, r in groups)

"""The sweep's region kept between sweeps: each sweep reads only the rows ingested since the last.

``load_region`` reads the whole window (about 70 M values for 100,000 patients with one in
ten on CGM), too much to read every five minutes. Observations are append-only (ingest
inserts, ``ON CONFLICT DO NOTHING``; nothing updates or deletes a stored row: no path
changes its value or status in place), so a worker keeps its last ``Region`` and, at each
sweep, reads only

* the cohort's patients whose patient row or care plans changed (a stamp of the two
  tables says whether any did; reading and building the whole cohort costs about 1 s per
  20,000 patients, mostly Python);
* the rows with ``ingested_at`` after the last read's watermark minus ``overlap_s``:
  ``ingested_at`` is ingest's transaction start (``DEFAULT now()``), and a transaction
  commits after it, so a row can become visible later than a newer ``ingested_at``; the
  overlap reads such rows again, and the exact duplicates it brings are dropped as
  ``Series.build`` drops them (a (patient, time) pair keeps its lowest value either way);
* the rows measured after the last sweep's ``now`` whatever their ``ingested_at``
  (ingest accepts readings up to 10 minutes ahead of reception: they enter the window
  only now);
* every row in the window of the patients new to the cohort (enrolled, reactivated, or a
  care plan that appeared), as ``load_region`` reads them.

The new rows are merged into the cached series (sorted by patient, then time: a late
reading lands in the middle of its patient's rows), patient indices are remapped when the
cohort changed (removed and deactivated patients' rows are dropped), and rows that left
their kind group's window (``KIND_GROUPS``) are trimmed: binary searches and one slice copy
per run of kept rows, no per-row Python. The result equals ``load_region`` from scratch
array for array (tests/alerting/test_region_cache.py).

A full reload (``load_region``) happens on the first load, every ``full_reload_s``, when
the scope changes (a partitioned worker's partitions), when ``now`` goes back, and after a
failed load. It is also the safety net for what the incremental read cannot see: a row
whose ingest transaction stayed open longer than the overlap, or rows deleted by hand.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from alerting.cohort import Cohort
from alerting.load import (
    KIND_GROUPS,
    KNOWN_KEYS,
    LOAD_BLOCK_PATIENTS,
    Region,
    cohort_from_rows,
    cohort_rows,
    copy_records,
    copy_row,
    group_rows,
    load_region,
    schedule_per_day,
    window_sql,
)
from alerting.notified import NOTIFIED_COHORT_SQL
from alerting.series import F64, I64, SEC_PER_DAY, Dataset, Series

log = logging.getLogger(__name__)

DEFAULT_FULL_RELOAD_S = 3600.0
DEFAULT_OVERLAP_S = 300.0

# Every kind's window in days: a series' key is "<kind>.<component>".
KIND_DAYS = {kind: days for kinds, days in KIND_GROUPS for kind in kinds}
WINDOW_DAYS = max(days for _, days in KIND_GROUPS)

# The rows since the watermark, or measured after the last ``now``: by the BRIN indexes on
# ingested_at (migration 0007) and measured_at, not by the patient index (that would walk
# every patient's whole window, the full load). The patient comes back as its 16 uuid bytes
# and is mapped to the cohort in numpy: rows of patients outside it (another worker's
# share, inactive) are dropped there.
_FILTER = """
    o.status <> 'rejected'
      AND (o.ingested_at > to_timestamp(%(since)s) OR o.measured_at > to_timestamp(%(prev)s))
      AND o.measured_at > to_timestamp(%(lo)s) AND o.measured_at <= to_timestamp(%(hi)s)
      AND ({windows})
"""
_VALUE = """CASE o.censored WHEN 'low' THEN '-Infinity'::float8
                           WHEN 'high' THEN 'Infinity'::float8
                           ELSE coalesce(o.value, 'NaN'::float8) END"""
_SINCE_SQL = f"""
    SELECT o.patient_id, coalesce(array_position(%(keys)s::text[], o.kind || '.' || o.component), 0)::int4,
           o.measured_at, {_VALUE}
    FROM observation o
    WHERE {_FILTER}
"""
# Components no rule reads (triage still sees the series): by name, one array row per series.
_NAMED_SINCE_SQL = f"""
    SELECT o.kind || '.' || o.component, array_agg(o.patient_id::text),
           array_agg(extract(epoch FROM o.measured_at)::float8), array_agg({_VALUE})
    FROM observation o
    WHERE {_FILTER} AND NOT (o.kind || '.' || o.component = ANY(%(keys)s::text[]))
    GROUP BY 1
"""
# Whether any patient or care plan changed since the last look: the tables' row counts and
# the sum of their rows' xmin (an insert or update writes a row version with a newer
# transaction id), and the year (ages). Two scans of small tables; no row leaves the server.
_COHORT_STAMP_SQL = """
SELECT (SELECT count(*)::text || '/' || coalesce(sum(xmin::text::bigint), 0)::text FROM patient)
    || ' ' || (SELECT count(*)::text || '/' || coalesce(sum(xmin::text::bigint), 0)::text FROM care_plan)
    || ' ' || extract(year FROM now() AT TIME ZONE 'Europe/Stockholm')::text
"""
# When something changed: each active patient's row version and its care plans' (newest row
# version, count), to find the patients whose cohort row may differ.
_PATIENT_STAMPS_SQL = """
SELECT p.id::text, p.xmin::text::bigint, max(c.xmin::text::bigint), count(*)
FROM patient p JOIN care_plan c ON c.patient_id = p.id
WHERE p.active
GROUP BY 1, 2
"""
_SINCE_ROW = copy_row(("id", "S16"))
# The hex digits of a canonical uuid's text (8-4-4-4-12).
_HEX_COLUMNS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])
_HEX_VALUE = np.zeros(256, dtype=np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX_VALUE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX_VALUE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


@dataclass
class LoadReport:
    """What the last ``RegionCache.load`` did (for the sweep's log line and the benchmark)."""

    full: bool
    reason: str  # why a full reload ("" for an incremental load)
    rows: int  # rows read from the database
    added: int = 0  # patients new to the cohort (their whole window read)
    removed: int = 0  # patients gone from it (their rows dropped)
    seconds: float = 0.0
    # An incremental load's parts: the care plans, the database reads, the merge.
    cohort_s: float = 0.0
    read_s: float = 0.0
    merge_s: float = 0.0


def uuid_bytes(ids: Sequence[str]) -> np.ndarray:
    """The ids as 16-byte strings (uuid byte order: sorted like the canonical text)."""
    if not ids:
        return np.zeros(0, dtype="S16")
    text = "".join(ids).encode("ascii", errors="replace")
    if len(text) != 36 * len(ids):  # not all canonical: the slow way
        return np.frombuffer(b"".join(uuid.UUID(i).bytes for i in ids), dtype="S16")
    nibbles = _HEX_VALUE[np.frombuffer(text, np.uint8).reshape(-1, 36)[:, _HEX_COLUMNS]]
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.frombuffer(np.ascontiguousarray(packed).tobytes(), dtype="S16")


def _lookup(sorted_keys: np.ndarray, wanted: np.ndarray) -> I64:
    """Index of each ``wanted`` in ``sorted_keys``, -1 where absent."""
    if len(sorted_keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, wanted)
    at = np.minimum(pos, len(sorted_keys) - 1)
    return np.where(sorted_keys[at] == wanted, at, -1).astype(np.int64)


def insertion_points(base: Series, pat: I64, t: F64) -> I64:
    """For each (pat, t), how many rows of the sorted ``base`` sort before it by (patient, time).

    A binary search per query over its patient's rows, all queries at once.
    """
    n = len(base)
    lo = np.searchsorted(base.pat, pat, side="left")
    hi = np.searchsorted(base.pat, pat, side="right")
    active = lo < hi
    while active.any():
        mid = np.minimum((lo + hi) // 2, n - 1)
        right = active & (base.t[mid] < t)
        lo = np.where(right, mid + 1, lo)
        hi = np.where(active & ~right, mid, hi)
        active = lo < hi
    return lo.astype(np.int64)


def merge_series(cached: Series | None, new: Series | None, lo: float, old_to_new: I64 | None = None) -> Series:
    """``cached`` (its patients renumbered by ``old_to_new``, -1: dropped) without the rows at
    or before ``lo``, with ``new`` merged in; as ``Series.build`` of all the rows would be.

    Both inputs are sorted by (patient, time) with one row per pair (``Series.build``); where
    the two share a pair, the lower value stays (``Series.build``'s rule). The output is
    written in one pass: the cached rows that stay form a few long runs (a patient's rows
    between the trimmed ones and a new one), each copied as a slice; where they go and which
    rows are dropped is found by binary searches, per patient and per new row, never by a
    pass over the cached rows. The cached arrays are never written to: they may still back
    an earlier region's findings.
    """
    base = cached if cached is not None and len(cached) else None
    if new is not None and len(new) == 0:
        new = None
    if base is None:
        return new if new is not None else Series.empty()
    n = len(base)
    n_old = int(base.pat[-1]) + 1 if old_to_new is None else len(old_to_new)
    starts = np.searchsorted(base.pat, np.arange(n_old + 1))  # each patient's first row
    # Per patient, the rows at or before ``lo`` (a prefix); a dropped patient's rows, all.
    first_kept = insertion_points(base, np.arange(n_old), np.nextafter(np.full(n_old, lo), np.inf))
    if old_to_new is not None:
        first_kept = np.where(old_to_new[:n_old] >= 0, first_kept, starts[1:])
    gone = first_kept > starts[:-1]
    drop_lo, drop_hi = starts[:-1][gone], first_kept[gone]
    if new is not None:
        # Where each new row goes among the cached rows: searched in the cached (old)
        # numbering. A patient new to the cohort goes before the first cached patient
        # numbered after it.
        if old_to_new is None:
            q_pat, q_t, known = new.pat, new.t, np.ones(len(new), dtype=bool)
        else:
            kept_old = np.flatnonzero(old_to_new >= 0)
            kept_new = old_to_new[kept_old]
            k = np.searchsorted(kept_new, new.pat)
            at = np.minimum(k, max(len(kept_old) - 1, 0))
            known = (k < len(kept_old)) & (kept_new[at] == new.pat) if len(kept_old) else np.zeros(len(new), bool)
            q_pat = np.where(k < len(kept_old), kept_old[at] if len(kept_old) else n_old, n_old)
            q_t = np.where(known, new.t, -np.inf)
        pos = insertion_points(base, q_pat, q_t)
        at = np.minimum(pos, n - 1)
        same = known & (pos < n) & (base.pat[at] == q_pat) & (base.t[at] == q_t)
        if same.any():
            # A pair in both: the lower value stays (the cached row is dropped, or the new one).
            lower = same & (new.v < base.v[at])
            drop_lo = np.r_[drop_lo, pos[lower]]
            drop_hi = np.r_[drop_hi, pos[lower] + 1]
            order = np.argsort(drop_lo, kind="stable")
            drop_lo, drop_hi = drop_lo[order], drop_hi[order]
            fresh = ~same | lower
            new, pos = Series(new.pat[fresh], new.t[fresh], new.v[fresh]), pos[fresh]
        if len(new) == 0:
            new = None
    if new is None:
        if len(drop_lo) == 0 and old_to_new is None:
            return base
        pos = np.zeros(0, dtype=np.int64)
    # The cached rows cut at every drop and insertion point into pieces; the kept pieces and
    # the groups of new rows (one per insertion point) in output order.
    cuts = np.unique(np.r_[0, n, drop_lo, drop_hi, pos])
    piece_lo, piece_hi = cuts[:-1], cuts[1:]
    r = np.searchsorted(drop_lo, piece_lo, side="right") - 1
    dropped = (r >= 0) & (piece_lo < drop_hi[np.maximum(r, 0)]) if len(drop_lo) else np.zeros(len(piece_lo), bool)
    piece_lo, piece_hi = piece_lo[~dropped], piece_hi[~dropped]
    group_at, group_lo = np.unique(pos, return_index=True)
    group_hi = np.r_[group_lo[1:], len(pos)][: len(group_lo)]
    # Output order: by cached position, a new group before the cached piece at its point.
    where = np.r_[group_at, piece_lo]
    is_cached = np.r_[np.zeros(len(group_at), bool), np.ones(len(piece_lo), bool)]
    order = np.lexsort((is_cached, where))
    src_lo = np.r_[group_lo, piece_lo][order]
    src_hi = np.r_[group_hi, piece_hi][order]
    from_cached = is_cached[order]
    total = int((src_hi - src_lo).sum())
    out_pat = np.empty(total, dtype=np.int64)
    out_t = np.empty(total, dtype=np.float64)
    out_v = np.empty(total, dtype=np.float64)
    add = new if new is not None else Series.empty()
    w = 0
    for a, b, cached_piece in zip(src_lo.tolist(), src_hi.tolist(), from_cached.tolist(), strict=True):
        e = w + b - a
        src = base if cached_piece else add
        if cached_piece and old_to_new is not None:
            out_pat[w:e] = old_to_new[src.pat[a:b]]
        else:
            out_pat[w:e] = src.pat[a:b]
        out_t[w:e] = src.t[a:b]
        out_v[w:e] = src.v[a:b]
        w = e
    return Series(out_pat, out_t, out_v)


def schedule_mentions(rows: Sequence[Sequence[Any]]) -> dict[str, np.ndarray]:
    """Per schedule kind, which patients' care plans name it (in ``cohort_from_rows``' order):
    ``Cohort.schedule`` holds a kind iff some plan names it, even at 0 a day."""
    rows = sorted(rows, key=lambda r: str(r[0]))
    out: dict[str, np.ndarray] = {}
    for i, r in enumerate(rows):
        for kind in schedule_per_day(r[4]):
            out.setdefault(kind, np.zeros(len(rows), dtype=bool))[i] = True
    return out


def splice_cohort(
    ids: list[str],
    old: Cohort,
    fresh: Cohort,
    *,
    kept_old: I64,
    kept_new: I64,
    fresh_new: I64,
    old_mentions: dict[str, np.ndarray],
    fresh_mentions: dict[str, np.ndarray],
) -> tuple[Cohort, dict[str, np.ndarray]]:
    """The cohort of ``ids``: patient ``kept_new[j]`` is ``old``'s ``kept_old[j]``, patient
    ``fresh_new[j]`` is ``fresh``'s j; as ``cohort_from_rows`` of all their rows would build it."""
    n = len(ids)
    new_of_old = np.full(old.n, -1, dtype=np.int64)
    new_of_old[kept_old] = kept_new

    def column(a: np.ndarray, b: np.ndarray, fill: Any = 0) -> np.ndarray:
        out = np.full(n, fill, dtype=a.dtype)
        out[kept_new] = a[kept_old]
        out[fresh_new] = b
        return out

    def keyed(x: dict[str, np.ndarray], y: dict[str, np.ndarray], dtype: Any) -> dict[str, np.ndarray]:
        out = {}
        for k in sorted(set(x) | set(y)):
            a = np.zeros(n, dtype=dtype)
            if k in x:
                a[kept_new] = x[k][kept_old]
            if k in y:
                a[fresh_new] = y[k]
            out[k] = a
        return out

    conditions = {k: a for k, a in keyed(old.conditions, fresh.conditions, bool).items() if a.any()}
    mentions = {k: a for k, a in keyed(old_mentions, fresh_mentions, bool).items() if a.any()}
    schedule = {k: a for k, a in keyed(old.schedule, fresh.schedule, np.float64).items() if k in mentions}
    overrides = {}
    for key in sorted(set(old.overrides) | set(fresh.overrides), key=str):
        idx_o, v_o = old.overrides.get(key, (np.zeros(0, np.int64), np.zeros(0)))
        idx_f, v_f = fresh.overrides.get(key, (np.zeros(0, np.int64), np.zeros(0)))
        at = np.r_[new_of_old[idx_o], fresh_new[idx_f]].astype(np.int64)
        vals = np.r_[v_o, v_f].astype(np.float64)
        keep = at >= 0
        order = np.argsort(at[keep], kind="stable")
        if keep.any():
            overrides[key] = (at[keep][order], vals[keep][order])

    def sparse(x: dict[int, Any], y: dict[int, Any]) -> dict[int, Any]:
        both = [(int(new_of_old[i]), v) for i, v in x.items() if new_of_old[i] >= 0]
        both += [(int(fresh_new[i]), v) for i, v in y.items()]
        return dict(sorted(both, key=lambda e: e[0]))

    pseudonyms: list[Any] = [None] * n
    old_names: list[str | None] = list(old.pseudonyms) if old.pseudonyms is not None else [None] * old.n
    fresh_names: list[str | None] = list(fresh.pseudonyms) if fresh.pseudonyms is not None else [None] * fresh.n
    for j, i in zip(kept_new.tolist(), kept_old.tolist(), strict=True):
        pseudonyms[j] = old_names[i]
    for j, name in zip(fresh_new.tolist(), fresh_names, strict=True):
        pseudonyms[j] = name

    def optional(c: Cohort, a: F64 | None) -> F64:
        return a if a is not None else np.full(c.n, np.nan)

    cohort = Cohort(
        patient_ids=list(ids),
        conditions=conditions,
        dry_weight_kg=column(old.dry_weight_kg, fresh.dry_weight_kg, np.nan),
        personal_best_pef=column(old.personal_best_pef, fresh.personal_best_pef, np.nan),
        hypercapnic=column(old.hypercapnic, fresh.hypercapnic, False),
        schedule=schedule,
        overrides=overrides,
        pseudonyms=pseudonyms,
        age_years=column(optional(old, old.age_years), optional(fresh, fresh.age_years), np.nan),
        routing=sparse(old.routing, fresh.routing),
        confirm_rules=sparse(old.confirm_rules, fresh.confirm_rules),
        monitored_since=column(optional(old, old.monitored_since), optional(fresh, fresh.monitored_since), np.nan),
    )
    return cohort, mentions


def _server_clock(conn: psycopg.Connection[Any]) -> float:
    row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0])


def _kind_days(key: str) -> float:
    return KIND_DAYS.get(key.split(".", 1)[0], WINDOW_DAYS)


class RegionCache:
    """A worker's region between sweeps (one per sweep thread; not thread-safe).

    ``load`` returns the region as of ``now``, equal to ``load_region(conn, patient_ids,
    now)``; the returned region is never modified afterwards (a later load builds new
    arrays), so findings built from it stay valid. The cache holds the arrays in a dict of
    its own and lets go of each series as its successor is built, so a sweep that no longer
    holds the previous region needs memory for the region plus one series, not two regions.
    """

    def __init__(
        self,
        *,
        full_reload_s: float = DEFAULT_FULL_RELOAD_S,
        overlap_s: float = DEFAULT_OVERLAP_S,
        block: int = LOAD_BLOCK_PATIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.full_reload_s = full_reload_s
        self.overlap_s = overlap_s
        self.block = block
        self.clock = clock
        self._cohort: Cohort | None = None
        self._data: Dataset = {}
        self.now = math.nan  # the ``now`` the region is as of
        self.watermark = math.nan  # the server's clock (epoch s) just before the region's reads
        self.scope: Hashable = None
        self.last: LoadReport | None = None
        self._full_at = -math.inf
        self._failed = False
        # The cohort's change detection (``_refresh_cohort``).
        self._request: tuple[str, ...] | None = None
        self._stamp = ""
        self._stamps: dict[str, tuple[int, int, int]] = {}
        self._mentions: dict[str, np.ndarray] = {}
        self._ids: tuple[list[str], np.ndarray] = ([], np.zeros(0, dtype="S16"))

    @property
    def region(self) -> Region | None:
        """The region of the last load (None: none, or the last one failed)."""
        return None if self._cohort is None else Region(self._cohort, dict(self._data))

    def invalidate(self) -> None:
        """The next load is a full one."""
        self._cohort, self._data = None, {}

    def _full_reason(self, now: float, scope: Hashable) -> str:
        if self.full_reload_s <= 0:
            return "cache off"
        if self._cohort is None:
            return "first load" if self.last is None else "after a failed load" if self._failed else "invalidated"
        if scope != self.scope:
            return "scope changed"
        if self.clock() - self._full_at >= self.full_reload_s:
            return "periodic"
        if now < self.now:
            return "now went back"
        return ""

    def load(
        self, conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None, now: float, *, scope: Hashable = None
    ) -> Region:
        """The region of ``patient_ids`` (None: every active patient) as of ``now``.

        ``scope``: what ``patient_ids`` were chosen by (a partitioned worker's partitions);
        a change means a full reload.
        """
        started = time.perf_counter()
        reason = self._full_reason(now, scope)
        old = self._cohort
        self._cohort = None  # invalid until this load succeeds
        self._failed = True
        mark = _server_clock(conn)
        if reason or old is None:
            self._data = {}
            region = load_region(conn, patient_ids, now, block=self.block, cohort=self._load_cohort(conn, patient_ids))
            report = LoadReport(True, reason, sum(len(s) for s in region.data.values()))
            self._full_at = self.clock()
        else:
            region, report = self._update(conn, old, patient_ids, now)
        self._failed = False
        report.seconds = time.perf_counter() - started
        if self.full_reload_s > 0:  # kept for the next load; off: freed with the sweep's region
            self._cohort, self._data = region.cohort, dict(region.data)
        self.now, self.watermark, self.scope, self.last = now, mark, scope, report
        log.debug(
            "region %s: %d rows read, %d patients added, %d removed in %.3f s",
            f"full load ({reason})" if report.full else "update",
            report.rows,
            report.added,
            report.removed,
            report.seconds,
        )
        return region

    def _wanted(self, patient_ids: Sequence[str] | None) -> tuple[str, ...] | None:
        return None if patient_ids is None else tuple(patient_ids)

    def _load_cohort(self, conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None) -> Cohort:
        """The whole cohort, as ``load_cohort``, with what tells later whether it changed."""
        stamp = self._read_stamp(conn)
        stamps = self._read_stamps(conn, patient_ids)
        rows = cohort_rows(conn, patient_ids)
        cohort = cohort_from_rows(rows)
        self._remember(cohort, schedule_mentions(rows), stamp, stamps, patient_ids)
        return cohort

    def _refresh_cohort(self, conn: psycopg.Connection[Any], old: Cohort, patient_ids: Sequence[str] | None) -> Cohort:
        """The cohort now: the cached one when no patient or care plan changed; else the
        cached rows of the patients that did not change and the changed ones read anew."""
        stamp = self._read_stamp(conn)
        if stamp == self._stamp and self._wanted(patient_ids) == self._request:
            return old
        if stamp.rsplit(" ", 1)[-1] != self._stamp.rsplit(" ", 1)[-1]:
            return self._load_cohort(conn, patient_ids)  # a new year: every age
        stamps = self._read_stamps(conn, patient_ids)
        index = {pid: i for i, pid in enumerate(old.patient_ids)}
        changed = sorted(p for p, st in stamps.items() if p not in index or self._stamps.get(p) != st)
        gone = set(changed)
        kept = sorted(p for p in stamps if p not in gone)
        rows = conn.execute(NOTIFIED_COHORT_SQL, (changed,)).fetchall() if changed else []
        fresh = cohort_from_rows(rows)
        ids = sorted(kept + fresh.patient_ids)
        text = np.asarray(ids, dtype=str)
        cohort, mentions = splice_cohort(
            ids,
            old,
            fresh,
            kept_old=np.asarray([index[p] for p in kept], dtype=np.int64),
            kept_new=_lookup(text, np.asarray(kept, dtype=str)),
            fresh_new=_lookup(text, np.asarray(fresh.patient_ids, dtype=str)),
            old_mentions=self._mentions,
            fresh_mentions=schedule_mentions(rows),
        )
        self._remember(cohort, mentions, stamp, stamps, patient_ids)
        return cohort

    def _remember(
        self,
        cohort: Cohort,
        mentions: dict[str, np.ndarray],
        stamp: str,
        stamps: dict[str, tuple[int, int, int]],
        patient_ids: Sequence[str] | None,
    ) -> None:
        # Stamps read before the rows: a change in between shows at the next look.
        self._mentions, self._stamp, self._request = mentions, stamp, self._wanted(patient_ids)
        self._stamps = {p: stamps[p] for p in cohort.patient_ids if p in stamps}

    @staticmethod
    def _read_stamp(conn: psycopg.Connection[Any]) -> str:
        row = conn.execute(_COHORT_STAMP_SQL).fetchone()
        assert row is not None
        return str(row[0])

    @staticmethod
    def _read_stamps(
        conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None
    ) -> dict[str, tuple[int, int, int]]:
        wanted = None if patient_ids is None else set(patient_ids)
        return {
            str(r[0]): (int(r[1]), int(r[2]), int(r[3]))
            for r in conn.execute(_PATIENT_STAMPS_SQL)
            if wanted is None or r[0] in wanted
        }

    def _cohort_ids(self, ids: list[str]) -> np.ndarray:
        if ids != self._ids[0]:
            self._ids = (ids, uuid_bytes(ids))
        return self._ids[1]

    def _update(
        self, conn: psycopg.Connection[Any], old: Cohort, patient_ids: Sequence[str] | None, now: float
    ) -> tuple[Region, LoadReport]:
        t0 = time.perf_counter()
        cohort = self._refresh_cohort(conn, old, patient_ids)
        t1 = time.perf_counter()
        ids = cohort.patient_ids
        old_to_new: I64 | None = None
        added: list[str] = []
        removed = 0
        if ids != old.patient_ids:
            new_text = np.asarray(ids, dtype=str)
            old_to_new = _lookup(new_text, np.asarray(old.patient_ids, dtype=str))
            is_added = np.ones(len(ids), dtype=bool)
            is_added[old_to_new[old_to_new >= 0]] = False
            added = [ids[i] for i in np.flatnonzero(is_added)]
            removed = int((old_to_new < 0).sum())
        fresh, rows = self._read_since(conn, ids, now)
        read_s = time.perf_counter() - t1
        if added:
            # Their whole window, as the full load reads it, renumbered into the cohort.
            t2 = time.perf_counter()
            sub = load_region(conn, added, now, block=self.block)
            read_s += time.perf_counter() - t2
            at = _lookup(np.asarray(ids, dtype=str), np.asarray(sub.cohort.patient_ids, dtype=str))
            for key, s in sub.data.items():
                rows += len(s)
                mapped = Series(at[s.pat], s.t, s.v)  # ``at`` ascends: still sorted
                fresh[key] = merge_series(mapped, fresh.get(key), -math.inf)
        t3 = time.perf_counter()
        data: Dataset = {}
        for key in sorted(set(self._data) | set(fresh)):
            cached = self._data.pop(key, None)  # let go of it once its successor is built
            merged = merge_series(cached, fresh.get(key), now - _kind_days(key) * SEC_PER_DAY, old_to_new)
            del cached
            if len(merged):
                data[key] = merged
        report = LoadReport(False, "", rows, len(added), removed, cohort_s=t1 - t0, read_s=read_s)
        report.merge_s = time.perf_counter() - t3
        return Region(cohort, data), report

    def since_queries(self, now: float) -> tuple[str, str, dict[str, Any]]:
        """The incremental read's queries (the rows; the components no rule reads, by name) and
        their parameters, for ``now`` after the cached region's."""
        windows, params = window_sql()
        params.update(
            keys=KNOWN_KEYS,
            since=self.watermark - self.overlap_s,
            prev=self.now,
            lo=now - WINDOW_DAYS * SEC_PER_DAY,
            hi=now,
        )
        for g, (_, days) in enumerate(KIND_GROUPS):
            params[f"lo{g}"] = now - days * SEC_PER_DAY
        return _SINCE_SQL.format(windows=windows), _NAMED_SINCE_SQL.format(windows=windows), params

    def _read_since(self, conn: psycopg.Connection[Any], ids: list[str], now: float) -> tuple[Dataset, int]:
        """The rows since the watermark (and measured since the last ``now``) of the cohort's
        patients, as sorted series on the cohort's index; and how many rows were read."""
        if not ids:
            return {}, 0
        query, named_query, params = self.since_queries(now)
        cohort_ids = self._cohort_ids(ids)
        pats, keys, times, values = [], [], [], []
        rows = 0
        unknown = False
        sql = f"COPY ({query}) TO STDOUT (FORMAT BINARY)"
        for rec in copy_records(conn, sql, params, _SINCE_ROW):
            rows += len(rec)
            pat = _lookup(cohort_ids, rec["id"])
            key = rec["k"].astype(np.int32)
            unknown = unknown or bool((key == 0).any())
            mine = (pat >= 0) & (key > 0)
            pats.append(pat[mine])
            keys.append(key[mine])
            times.append(rec["t"][mine].astype(np.int64))
            values.append(rec["v"][mine].astype(np.float64))
        data: Dataset = {}
        if pats:
            cat = np.concatenate
            data = group_rows(cat(pats), cat(keys), cat(times), cat(values), len(ids))
        if unknown:
            text_ids = np.asarray(ids, dtype=str)
            cur = conn.cursor(binary=True)
            cur.execute(named_query, params)
            for name, pids, t, v in cur:
                pat = _lookup(text_ids, np.asarray(pids, dtype=str))
                mine = pat >= 0
                if mine.any():
                    data[str(name)] = Series.build(
                        pat[mine], np.asarray(t, dtype=np.float64)[mine], np.asarray(v, dtype=np.float64)[mine]
                    )
        return data, rows

"""Hand-built single-patient cohorts and series for rule tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alerting.cohort import Cohort
from alerting.engine import Finding, evaluate
from alerting.series import Series

# Wednesday 25 Nov 2026, 12:00 UTC (13:00 in Stockholm): a fixed "now" for every test.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
LOW_CENSORED = float("-inf")
HIGH_CENSORED = float("inf")


def cohort(*conditions: str, n: int = 1, **kw: Any) -> Cohort:
    def listify(name: str) -> None:
        if name in kw and not isinstance(kw[name], list):
            kw[name] = [kw[name]] * n

    for name in ("dry_weight_kg", "personal_best_pef", "hypercapnic", "thresholds", "schedule", "age_years"):
        listify(name)
    return Cohort.build([f"00000000-0000-0000-0000-{i:012d}" for i in range(n)], [list(conditions)] * n, **kw)


def series(readings: Sequence[tuple[float, float]], patient: int = 0) -> Series:
    """Readings as (seconds before NOW, value)."""
    return Series.build([patient] * len(readings), [NOW - ago for ago, _ in readings], [v for _, v in readings])


def cgm(values: Sequence[float], end_ago: float = 0.0, step: float = 5 * MIN) -> Series:
    """CGM values every ``step`` seconds, the last one ``end_ago`` seconds before NOW."""
    n = len(values)
    return series([(end_ago + (n - 1 - k) * step, v) for k, v in enumerate(values)])


def fire(
    rule: str,
    data: Mapping[str, Series],
    c: Cohort,
    now: float = NOW,
) -> Finding | None:
    found = [f for f in evaluate(dict(data), c, now, rules=[rule]) if f.rule_id == rule]
    assert len(found) <= 1
    return found[0] if found else None


def severity(rule: str, data: Mapping[str, Series], c: Cohort, now: float = NOW) -> str | None:
    f = fire(rule, data, c, now)
    return f.severity if f else None

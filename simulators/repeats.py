"""A simulated patient who measures again when the platform asks ("measure again").

Used by the scorer to play the confirmation flow: the repeat is the patient's real state at
the time of the first reading, measured afresh. Real state = the clean simulator's value
(the physiology, including any labelled episode) plus what persists through a rest on that
day in the hard cohort (a wrong cuff, a stressful day: the day's median of hard − clean);
device noise is drawn anew, and a one-off outlier does not repeat. Not every patient
answers: ``compliance`` is the share who do.
"""

from __future__ import annotations

import numpy as np

from device_profiles.vocabulary import Kind
from simulators.realism import NOISE_SD, ROUNDING
from simulators.series import DAY_S, KindSeries, PatientSeries

DEFAULT_COMPLIANCE = 0.8


def repeat_reading(
    hard: PatientSeries,
    clean: PatientSeries,
    kind: Kind,
    trigger_t: float,
    *,
    at: int,
    rng: np.random.Generator,
) -> KindSeries | None:
    """One new reading of ``kind`` at ``at`` repeating the one taken at ``trigger_t`` (None: no such kind)."""
    c, h = clean.series.get(kind), hard.series.get(kind)
    if c is None or h is None or len(c) == 0 or len(h) == 0:
        return None
    k = int(np.argmin(np.abs(c.t_s - trigger_t)))
    day = int(trigger_t) // DAY_S
    values: dict[str, np.ndarray] = {}
    for name, clean_v in c.values.items():
        base = float(clean_v[k])
        offset = _day_offset(h, c, name, day)
        v = base + offset + (rng.normal(0, NOISE_SD[name]) if name in NOISE_SD else 0.0)
        if name in ROUNDING:
            v = round(v, ROUNDING[name])
        values[name] = np.asarray([v], dtype=np.float64)
    if "spo2" in values:
        values["spo2"] = np.clip(values["spo2"], 70, 100)
    if "diastolic" in values:
        values["diastolic"] = np.minimum(values["diastolic"], values["systolic"] - 10)
    return KindSeries(
        kind,
        np.asarray([at], dtype=np.int64),
        values,
        c.quirk[k : k + 1].copy(),
        np.asarray([""], dtype=c.context.dtype),
    )


def _day_offset(hard: KindSeries, clean: KindSeries, name: str, day: int) -> float:
    """What the hard cohort adds to this component on that day and keeps through a rest."""
    in_day = (hard.t_s // DAY_S) == day
    if not in_day.any() or name not in hard.values:
        return 0.0
    t = hard.t_s[in_day]
    idx = np.clip(np.searchsorted(clean.t_s, t), 0, len(clean) - 1)
    same = clean.t_s[idx] == t  # readings the hard layer kept (duplicates are a minute later)
    if not same.any():
        return 0.0
    return float(np.median(hard.values[name][in_day][same] - clean.values[name][idx[same]]))

"""Columnar containers for simulated measurements and labelled episodes.

Times are integer seconds since the Unix epoch (UTC) in numpy arrays, so a month of CGM
for thousands of patients stays cheap; conversion to aware datetimes happens only at the
edges (wire messages, the database, label files).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from device_profiles.vocabulary import KINDS, Condition, Kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
QuirkArray = npt.NDArray[np.int8]
StrArray = npt.NDArray[np.str_]

DAY_S = 86_400
HOUR_S = 3_600
MINUTE_S = 60


class Quirk(IntEnum):
    """Device behaviour the platform must cope with (DESIGN.md: re-delivery is safe)."""

    NONE = 0
    # The device (or gateway) sends the same stored record again later: same reading id.
    DUPLICATE_RESEND = 1
    # The device clock was never set (battery change): the gateway corrects and flags it.
    CLOCK_UNSET = 2


@dataclass(frozen=True)
class KindSeries:
    """All readings of one kind for one patient, sorted by time."""

    kind: Kind
    t_s: IntArray
    values: dict[str, FloatArray]
    quirk: QuirkArray
    # One device-reported flag per reading ("" for none), e.g. meal context.
    context: StrArray

    def __post_init__(self) -> None:
        n = len(self.t_s)
        spec = KINDS[self.kind]
        for name, arr in self.values.items():
            if name not in spec.components:
                raise ValueError(f"{name} is not a component of {self.kind.value}")
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} values for {n} times")
        missing = [c for c in spec.required if c not in self.values]
        if missing:
            raise ValueError(f"{self.kind.value} needs {missing}")
        if len(self.quirk) != n or len(self.context) != n:
            raise ValueError("quirk/context length mismatch")

    def __len__(self) -> int:
        return len(self.t_s)

    def select(self, mask: npt.NDArray[np.bool_]) -> KindSeries:
        return KindSeries(
            self.kind,
            self.t_s[mask],
            {k: v[mask] for k, v in self.values.items()},
            self.quirk[mask],
            self.context[mask],
        )


# Glycaemic episodes are graded by the international consensus on CGM metrics (Battelino et
# al., Diabetes Care 2019, doi:10.2337/dci19-0028) and the International Hypoglycaemia
# Study Group 2017 (doi:10.2337/dc16-2215), as in CLINICAL_RULES.md "Diabetes", from the
# simulated true glucose:
# * ``level_1``: below 3.9 mmol/L, never below 3.0 for 15 min, not longer than 120 min
#   below 3.9: the "alert value" the patient treats at once (15 g glucose, check again after
#   15 min) -> the patient is told (feedback through the gateway);
# * ``level_2``: below 3.0 for at least 15 consecutive minutes: clinically significant; in type 2
#   diabetes (rare, usually too much insulin or sulfonylurea, in older patients) -> staff;
# * in type 1 diabetes, where level 2 lows are a weekly event the patient is trained to treat at
#   once and staff cannot treat faster, a level 2 low is ``level_2_single`` -> the patient, unless
#   it is the 3rd within 7 days (``level_2_recurrent``: the pattern that calls for a change of
#   treatment, D11) -> staff, or lasts (``prolonged_low``);
# * ``prolonged_low``: more than 120 min below 3.9 -> staff (D3);
# * ``brief_high``: above 13.9 for less than 2 h (a post-meal peak) -> the patient;
# * ``prolonged_high``: above 13.9 for 2 to 6 h (a missed dose, an illness: check ketones, take
#   a correction dose under the sick-day plan) -> the patient;
# * ``sustained_high``: above 13.9 for at least 6 h (the corrections have not worked) -> staff.
# "" (the default): the episode type has one grade, meant for staff (the slow deteriorations).
ROUTE_OF_GRADE: dict[str, str] = {
    "": "staff",
    "level_1": "patient",
    "level_2": "staff",
    "level_2_single": "patient",
    "level_2_recurrent": "staff",
    "prolonged_low": "staff",
    "brief_high": "patient",
    "prolonged_high": "patient",
    "sustained_high": "staff",
}


@dataclass(frozen=True)
class EpisodeSpan:
    """A labelled deterioration injected into one patient's series (times in epoch s)."""

    type: str
    condition: Condition
    start_s: int
    end_s: int
    # How severe the episode is in the clinical definitions (``GRADES``), and so whom the
    # platform is meant to tell (``ROUTE_OF_GRADE``): "" for episodes that have one grade.
    grade: str = ""

    def __post_init__(self) -> None:
        if self.end_s <= self.start_s:
            raise ValueError("episode must end after it starts")
        if self.grade not in ROUTE_OF_GRADE:
            raise ValueError(f"unknown episode grade {self.grade!r}")

    @property
    def route(self) -> str:
        return ROUTE_OF_GRADE[self.grade]


@dataclass(frozen=True)
class PatientSeries:
    """What one simulated patient measured, and the episodes hidden in it."""

    series: dict[Kind, KindSeries]
    episodes: list[EpisodeSpan] = field(default_factory=list)

    def n_readings(self) -> int:
        return sum(len(s) for s in self.series.values())


@dataclass(frozen=True)
class Episode:
    """A labelled episode of a named patient, as written to the labels file and scored."""

    patient: str  # pseudonym
    condition: Condition
    type: str
    start: datetime
    end: datetime
    grade: str = ""  # see ROUTE_OF_GRADE

    def __post_init__(self) -> None:
        if self.grade not in ROUTE_OF_GRADE:
            raise ValueError(f"unknown episode grade {self.grade!r}")

    @property
    def route(self) -> str:
        """Who the platform is meant to tell: "staff", or "patient" for a level 1 low or a brief high."""
        return ROUTE_OF_GRADE[self.grade]

    @property
    def label(self) -> str:
        """The type with its grade and intended route, e.g. "hypoglycaemia level_1 (patient)"."""
        return self.type if not self.grade else f"{self.type} {self.grade} ({self.route})"

    def as_dict(self) -> dict[str, str]:
        return {
            "patient": self.patient,
            "condition": self.condition.value,
            "type": self.type,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "grade": self.grade,
            "route": self.route,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, str]) -> Episode:
        return cls(
            patient=doc["patient"],
            condition=Condition(doc["condition"]),
            type=doc["type"],
            start=datetime.fromisoformat(doc["start"]),
            end=datetime.fromisoformat(doc["end"]),
            grade=doc.get("grade", ""),  # labels written before grades: one grade, for staff
        )


def to_datetime(t_s: int | np.integer) -> datetime:
    return datetime.fromtimestamp(int(t_s), tz=UTC)


def to_epoch_s(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("naive datetime: use timezone-aware UTC")
    return int(t.timestamp())

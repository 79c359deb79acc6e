"""Seeded, reproducible cohorts: patients, care plans, gateways, devices and their series.

Patient ``i`` of a cohort with seed ``s`` draws from ``default_rng([s, i, ...])``, so a
patient's parameters and series do not depend on how many other patients the cohort has:
a fleet of 5,000 gateways contains the same first 50 patients as the demo cohort.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from device_profiles.vocabulary import Condition, Kind
from simulators.errors import SimulatorError
from simulators.physiology import MODELS, Habits, Params
from simulators.realism import make_hard
from simulators.series import Episode, PatientSeries, to_datetime, to_epoch_s

# A mix that resembles a regional remote-monitoring programme.
DEFAULT_MIX: dict[Condition, float] = {
    Condition.DIABETES_T1: 0.15,
    Condition.DIABETES_T2: 0.15,
    Condition.HEART_FAILURE: 0.2,
    Condition.COPD: 0.2,
    Condition.ASTHMA: 0.1,
    Condition.HYPERTENSION: 0.2,
}

# The same codes as the clinic's demo units, so its demo staff see the simulated patients.
CARE_UNITS: tuple[tuple[str, str], ...] = (
    ("MON-NORD", "Monitoreringsfunktionen Nord"),
    ("MON-SYD", "Monitoreringsfunktionen Syd"),
)

_FIRST = ("Tolvan", "Elsa", "Nils", "Karin", "Lars", "Ingrid", "Sven", "Maja", "Olof", "Astrid", "Gustav", "Britta")
_LAST = ("Tolvansson", "Testsson", "Provare", "Simulant", "Exempelsson", "Demostam", "Prövning", "Fiktiv")

# Device models per kind: what a region typically hands out (names are generic on purpose).
DEVICE_MODELS: dict[Kind, str] = {
    Kind.BLOOD_PRESSURE: "SIM-BP-1810",
    Kind.GLUCOSE_CAPILLARY: "SIM-GLU-1808",
    Kind.GLUCOSE_CGM: "SIM-CGM-181F",
    Kind.WEIGHT: "SIM-SCALE-181D",
    Kind.SPO2: "SIM-OXI-1822",
    Kind.SPIROMETRY: "SIM-PEF-VENDOR",
    Kind.SYMPTOMS: "SIM-FORM-APP",
}

# Local times (Europe/Stockholm) at which the care plan expects each kind.
SCHEDULES: dict[Kind, list[str]] = {
    Kind.GLUCOSE_CGM: [],  # continuous
    Kind.GLUCOSE_CAPILLARY: ["07:00"],
    Kind.WEIGHT: ["07:00"],
    Kind.BLOOD_PRESSURE: ["07:00", "21:00"],
    Kind.SPO2: ["09:00"],
    Kind.SPIROMETRY: ["07:30", "20:30"],
    Kind.SYMPTOMS: ["20:00"],
}

_NAMESPACE = uuid.UUID("3f0e9d1c-5a44-4b8f-9d7e-2b1c0a5e6f70")


def luhn_check_digit(digits: str) -> int:
    """Check digit of a Swedish personal identity number (modulus 10, weights 2 and 1)."""
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10


def skatteverket_test_pnr(birth: date, serial: int) -> str:
    """A personal identity number from Skatteverket's test range: birth numbers 980-999.

    Skatteverket's published test numbers use these birth numbers (e.g. 19811218-9876 in
    its documentation), which are not assigned to real people; the check digit is valid.
    """
    if not 980 <= serial <= 999:
        raise SimulatorError(f"birth number {serial} is outside the test range 980-999")
    body = f"{birth:%y%m%d}{serial:03d}"
    return f"{birth:%Y%m%d}-{serial:03d}{luhn_check_digit(body)}"


@dataclass(frozen=True)
class DeviceSpec:
    kind: Kind
    address: str
    model: str
    serial: str
    firmware: str = "1.0.0"


@dataclass(frozen=True)
class PatientSpec:
    index: int
    patient_id: uuid.UUID
    pseudonym: str
    display_name: str
    personnummer: str
    birth_year: int
    unit_code: str
    conditions: tuple[Condition, ...]
    params: Params
    gateway_id: str
    devices: tuple[DeviceSpec, ...]

    @property
    def condition(self) -> Condition:
        return self.conditions[0]

    def care_plan(self) -> dict[str, Any]:
        """The care_plan row's values: thresholds empty, so the default rules apply."""
        model = MODELS[self.condition]
        return {
            "conditions": [c.value for c in self.conditions],
            "thresholds": {},
            "schedule": {k.value: {"times_local": SCHEDULES[k]} for k in model.kinds},
            "dry_weight_kg": self.params.get("dry_weight_kg"),
            "personal_best_pef": self.params.get("personal_best_pef"),
            "spo2_target": "hypercapnic" if self.params.get("hypercapnic", 0.0) > 0.5 else "standard",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "patient_id": str(self.patient_id),
            "pseudonym": self.pseudonym,
            "conditions": [c.value for c in self.conditions],
            "gateway_id": self.gateway_id,
            "unit_code": self.unit_code,
            "care_plan": self.care_plan(),
        }


@dataclass(frozen=True)
class CohortConfig:
    n_patients: int
    seed: int = 1
    start: datetime = field(default_factory=lambda: datetime(2026, 10, 1, tzinfo=UTC))
    days: int = 30
    mix: dict[Condition, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    habits: Habits = field(default_factory=Habits)
    gateway_prefix: str = "gw"
    # "default": the clean simulator; "hard": everyday measurement mess (simulators/realism.py).
    realism: str = "default"

    def __post_init__(self) -> None:
        if self.n_patients < 1 or self.days < 1:
            raise SimulatorError("a cohort needs at least one patient and one day")
        if self.start.tzinfo is None:
            raise SimulatorError("cohort start must be timezone-aware")
        if self.realism not in ("default", "hard"):
            raise SimulatorError(f"unknown realism {self.realism!r}")


def _condition_for(index: int, seed: int, mix: dict[Condition, float]) -> Condition:
    """Deterministic mix: the first patients cover every condition, then weighted draws."""
    conditions = [c for c, w in mix.items() if w > 0]
    if not conditions:
        raise SimulatorError("condition mix is empty")
    if index < len(conditions):
        return conditions[index]
    weights = np.array([mix[c] for c in conditions], dtype=np.float64)
    rng = np.random.default_rng([seed, index, 7])
    return conditions[int(rng.choice(len(conditions), p=weights / weights.sum()))]


def make_patient(config: CohortConfig, index: int) -> PatientSpec:
    condition = _condition_for(index, config.seed, config.mix)
    rng = np.random.default_rng([config.seed, index, 0])
    params = MODELS[condition].draw_params(rng)
    age = {
        Condition.DIABETES_T1: (18, 60),
        Condition.ASTHMA: (18, 70),
        Condition.DIABETES_T2: (45, 85),
    }.get(condition, (55, 90))
    birth_year = config.start.year - int(rng.integers(*age))
    birth = date(birth_year, 1, 1) + timedelta(days=int(rng.integers(0, 365)))
    # Unique within a cohort: birth numbers 980-999 cycle, and the date moves with the index.
    birth = birth + timedelta(days=index // 20)
    serial = 980 + index % 20
    pseudonym = f"sim{config.seed}-{index:05d}"
    gateway_id = f"{config.gateway_prefix}-{index + 1:04d}"
    devices = tuple(
        DeviceSpec(
            kind=k,
            address=_mac(config.seed, index, j),
            model=DEVICE_MODELS[k],
            serial=f"S{config.seed}-{index:05d}-{j}",
        )
        for j, k in enumerate(MODELS[condition].kinds)
    )
    return PatientSpec(
        index=index,
        patient_id=uuid.uuid5(_NAMESPACE, pseudonym),
        pseudonym=pseudonym,
        display_name=f"{_FIRST[index % len(_FIRST)]} {_LAST[(index // len(_FIRST)) % len(_LAST)]}",
        personnummer=skatteverket_test_pnr(birth, serial),
        birth_year=birth.year,
        unit_code=CARE_UNITS[index % len(CARE_UNITS)][0],
        conditions=(condition,),
        params=params,
        gateway_id=gateway_id,
        devices=devices,
    )


def _mac(seed: int, index: int, j: int) -> str:
    # Locally administered unicast addresses (second hex digit 2): never a real vendor's.
    raw = [0x02, seed % 256, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF, j]
    return ":".join(f"{b:02X}" for b in raw)


def simulate_patient(config: CohortConfig, patient: PatientSpec) -> PatientSeries:
    rng = np.random.default_rng([config.seed, patient.index, 1])
    model = MODELS[patient.condition]
    sim = model.simulate(rng, patient.params, to_epoch_s(config.start), config.days, config.habits)
    if config.realism == "hard":
        # A separate stream, so the default cohort's draws are unchanged.
        sim = make_hard(np.random.default_rng([config.seed, patient.index, 7]), patient.condition, patient.params, sim)
    return sim


@dataclass(frozen=True)
class Cohort:
    config: CohortConfig
    patients: list[PatientSpec]

    def series(self, patient: PatientSpec) -> PatientSeries:
        return simulate_patient(self.config, patient)

    def episodes(self) -> list[Episode]:
        out = []
        for p in self.patients:
            for span in self.series(p).episodes:
                out.append(
                    Episode(
                        p.pseudonym,
                        span.condition,
                        span.type,
                        to_datetime(span.start_s),
                        to_datetime(span.end_s),
                        span.grade,
                    )
                )
        return out


def generate_cohort(config: CohortConfig) -> Cohort:
    return Cohort(config, [make_patient(config, i) for i in range(config.n_patients)])


# Episodes whose rules read the last days' measurements, most robustly detected first.
RECENT_EPISODE_PREFERENCE = ("exacerbation", "hypertensive_episode", "decompensation")


def shift_to_recent_episode(
    config: CohortConfig, now: datetime, types: tuple[str, ...] = RECENT_EPISODE_PREFERENCE
) -> tuple[CohortConfig, Episode | None]:
    """Move the cohort's start by whole days so an episode ends within the day before ``now``.

    A platform that evaluates rules at the current time then has an episode to find at
    once (the demo's smoke run). Whole days keep every series identical relative to the
    start, so the episode is the same one; the shift may be earlier or later. Returns the
    shifted config and that episode.
    """
    cohort = generate_cohort(config)
    candidates = [e for e in cohort.episodes() if e.type in types]
    if not candidates:
        return config, None
    rank = {t: i for i, t in enumerate(types)}
    # Prefer the preferred type; among those, the one needing the smallest shift.
    best = min(candidates, key=lambda e: (rank[e.type], abs(now - e.end)))
    shift_days = (now - best.end) // timedelta(days=1)
    shift = timedelta(days=shift_days)
    moved = CohortConfig(
        n_patients=config.n_patients,
        seed=config.seed,
        start=config.start + shift,
        days=config.days,
        mix=config.mix,
        habits=config.habits,
        gateway_prefix=config.gateway_prefix,
    )
    return moved, replace(best, start=best.start + shift, end=best.end + shift)


def write_labels(cohort: Cohort, path: Path) -> int:
    """Write the cohort's patients and labelled episodes as JSON; return the episode count."""
    episodes = cohort.episodes()
    doc = {
        "seed": cohort.config.seed,
        "start": cohort.config.start.isoformat(),
        "days": cohort.config.days,
        "patients": [p.as_dict() for p in cohort.patients],
        "episodes": [e.as_dict() for e in episodes],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))
    return len(episodes)


@dataclass(frozen=True)
class Labels:
    start: datetime
    days: int
    conditions: dict[str, tuple[Condition, ...]]  # pseudonym -> conditions
    episodes: list[Episode]


def read_labels(path: Path) -> Labels:
    try:
        doc = json.loads(path.read_text())
        return Labels(
            start=datetime.fromisoformat(doc["start"]),
            days=int(doc["days"]),
            conditions={p["pseudonym"]: tuple(Condition(c) for c in p["conditions"]) for p in doc["patients"]},
            episodes=[Episode.from_dict(e) for e in doc["episodes"]],
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SimulatorError(f"cannot read labels from {path}: {err}") from err

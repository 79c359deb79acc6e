"""The default rule set of CLINICAL_RULES.md as a declarative, vectorised registry.

``framework`` holds what every rule is made of (``Rule``, ``Occurrences``, ``Context``,
the ``rule`` decorator and ``REGISTRY``); ``common`` the building blocks several
conditions share; one module per condition holds its rules. Importing this package
registers every rule, in the order below (the order findings are produced in).
"""

from __future__ import annotations

from alerting.rules import across, asthma, copd, diabetes, heart_failure, hypertension
from alerting.rules.framework import (
    BP_PULSE,
    CAPILLARY,
    CAT,
    CGM,
    CRITICAL,
    DIASTOLIC,
    FEV1,
    GRID_DAYS,
    HIGH,
    INFO,
    LOW,
    MEDIUM,
    NONE,
    OXIMETER_PULSE,
    PEF,
    REGISTRY,
    RELIEVER,
    SPO2,
    SYMPTOM_COPD,
    SYMPTOM_HF,
    SYMPTOM_HTN,
    SYSTOLIC,
    TEMPERATURE,
    WEIGHT,
    Context,
    Occurrences,
    Params,
    Rule,
    max_severity,
    params_for,
    rule,
    rule_param,
)

# The engine evaluates rules in REGISTRY order: by condition as CLINICAL_RULES.md lists them,
# then in each module's order of definition (a stable sort), whatever order imports run in.
_MODULES = (diabetes, heart_failure, copd, asthma, hypertension, across)
_RANK = {m.__name__: k for k, m in enumerate(_MODULES)}
_ordered = sorted(REGISTRY.items(), key=lambda item: _RANK[item[1].evaluate.__module__])
REGISTRY.clear()
REGISTRY.update(_ordered)

IMPLEMENTED = tuple(REGISTRY)

__all__ = [
    "BP_PULSE",
    "CAPILLARY",
    "CAT",
    "CGM",
    "CRITICAL",
    "DIASTOLIC",
    "FEV1",
    "GRID_DAYS",
    "HIGH",
    "IMPLEMENTED",
    "INFO",
    "LOW",
    "MEDIUM",
    "NONE",
    "OXIMETER_PULSE",
    "PEF",
    "REGISTRY",
    "RELIEVER",
    "SPO2",
    "SYMPTOM_COPD",
    "SYMPTOM_HF",
    "SYMPTOM_HTN",
    "SYSTOLIC",
    "TEMPERATURE",
    "WEIGHT",
    "Context",
    "Occurrences",
    "Params",
    "Rule",
    "max_severity",
    "params_for",
    "rule",
    "rule_param",
]

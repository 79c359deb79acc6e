"""The alert vocabulary is the one spelling: the rules' ranks, the engine's names, the
lifecycle's ranking, the clinic's labels and SQL ordering all follow ``Severity``."""

from __future__ import annotations

from alerting import engine, lifecycle
from alerting.rules import framework
from clinic_api import labels, queries
from device_profiles.vocabulary import AlertStatus, Severity, severity_rank_sql


def test_severity_ranks_follow_declaration_and_every_user_agrees() -> None:
    assert [s.rank for s in Severity] == [0, 1, 2, 3, 4]
    assert tuple(s.rank for s in Severity) == (
        framework.INFO,
        framework.LOW,
        framework.MEDIUM,
        framework.HIGH,
        framework.CRITICAL,
    )
    assert framework.NONE < framework.INFO
    assert engine.SEVERITIES == ("info", "low", "medium", "high", "critical")
    assert all(engine.SEVERITIES[s.rank] == s.value for s in Severity)
    assert lifecycle.RANK == {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


def test_swedish_labels_come_from_the_enums() -> None:
    assert labels.SEVERITY == {"critical": "Kritisk", "high": "Hög", "medium": "Medel", "low": "Låg", "info": "Info"}
    # Most severe first: the order the filters list them in.
    assert list(labels.SEVERITY) == ["critical", "high", "medium", "low", "info"]
    assert {s.value: s.label_sv for s in AlertStatus} == labels.STATUS
    assert labels.STATUS["awaiting_confirmation"] == "Väntar på ommätning"


def test_severity_rank_sql_names_every_severity() -> None:
    sql = severity_rank_sql("a.severity")
    assert sql.startswith("CASE a.severity ")
    for s in Severity:
        assert f"WHEN '{s.value}' THEN {s.rank}" in sql
    assert sql.endswith("ELSE -1 END")
    assert sql == queries.SEVERITY_ORDER

"""The vocabulary's AlertStatus transitions are what the staff actions actually do.

Each status-changing action is run from every status an alert can be in, through the API;
the status it leaves is either the one it came from (a refusal or a no-op) or a transition
the table allows. Undoing a resolution must land on an allowed status too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg
import pytest

from clinic_api import queries
from device_profiles.vocabulary import TRANSITIONS, AlertStatus
from tests.clinic_api.conftest import NURSE, Seed, TestClient

Auth = Callable[[str], dict[str, str]]

BODIES = {
    "acknowledge": None,
    "snooze": {"until": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()},
    "resolve": {"reason": "no_action_needed"},
}


def _set_status(seed: Seed, alert_id: int, status: AlertStatus) -> None:
    with psycopg.connect(seed.url) as conn:
        conn.execute(
            "UPDATE alert SET status = %s, snoozed_until = CASE WHEN %s = 'snoozed' THEN now() + interval '1 hour' END,"
            " resolved_at = CASE WHEN %s = 'resolved' THEN now() END,"
            " resolution_reason = CASE WHEN %s = 'resolved' THEN 'no_action_needed' END,"
            " confirm_by = CASE WHEN %s = 'awaiting_confirmation' THEN now() + interval '30 minutes' END,"
            " shown_to_staff_at = coalesce(shown_to_staff_at, now()) WHERE id = %s",
            (status.value, status.value, status.value, status.value, status.value, alert_id),
        )


def _status(seed: Seed, alert_id: int) -> AlertStatus:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT status FROM alert WHERE id = %s", (alert_id,)).fetchone()
    assert row is not None
    return AlertStatus(row[0])


def test_every_status_has_a_way_out_and_none_loops_to_itself() -> None:
    assert set(TRANSITIONS) == set(AlertStatus)
    for source, targets in TRANSITIONS.items():
        assert targets, source
        assert source not in targets
    # Nothing reaches awaiting_confirmation except undoing the resolution of such an alert.
    assert [s for s, t in TRANSITIONS.items() if AlertStatus.AWAITING_CONFIRMATION in t] == [AlertStatus.RESOLVED]


def test_each_action_moves_only_along_allowed_transitions() -> None:
    # Every non-resolved status may be acknowledged, snoozed and resolved by staff.
    for action, target in queries.ACTION_STATUS.items():
        sources = {s for s in AlertStatus if s is not AlertStatus.RESOLVED and s is not target}
        assert all(target in TRANSITIONS[s] for s in sources), action


@pytest.mark.parametrize("action", sorted(BODIES))
@pytest.mark.parametrize("source", list(AlertStatus))
def test_action_from_each_status(client: TestClient, auth: Auth, seed: Seed, action: str, source: AlertStatus) -> None:
    aid = seed.alert_id("P-DEMO0001")
    _set_status(seed, aid, source)
    r = client.post(f"/api/v1/alerts/{aid}/{action}", headers=auth(NURSE), json=BODIES[action])
    after = _status(seed, aid)
    if r.status_code == 200:
        assert after is queries.ACTION_STATUS[action]
        assert after is source or after in TRANSITIONS[source], (source, action, after)
    else:
        assert r.status_code == 409, r.text
        assert after is source
        # Refused only where the table has no such move (or it would be a no-op).
        assert source is AlertStatus.RESOLVED or after is queries.ACTION_STATUS[action]


@pytest.mark.parametrize("source", [s for s in AlertStatus if s is not AlertStatus.RESOLVED])
def test_undo_resolve_restores_an_allowed_status(
    client: TestClient, auth: Auth, seed: Seed, source: AlertStatus
) -> None:
    aid = seed.alert_id("P-DEMO0001")
    _set_status(seed, aid, source)
    r = client.post(f"/api/v1/alerts/{aid}/resolve", headers=auth(NURSE), json={"reason": "no_action_needed"})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/alerts/{aid}/undo-resolve", headers=auth(NURSE))
    assert r.status_code == 200, r.text
    after = _status(seed, aid)
    assert after is source
    assert after in TRANSITIONS[AlertStatus.RESOLVED]


def test_the_lifecycles_own_moves_are_transitions() -> None:
    # The data- and time-driven moves of alerting/lifecycle.py (its README's lifecycle).
    a = AlertStatus
    moves = [
        (a.AWAITING_CONFIRMATION, a.OPEN),  # the repeat confirms, or the deadline passes
        (a.AWAITING_CONFIRMATION, a.RESOLVED),  # the repeat is normal: not_confirmed
        (a.SNOOZED, a.OPEN),  # the snooze ends
        (a.ACKNOWLEDGED, a.OPEN),  # a higher severity reopens it
        (a.OPEN, a.RESOLVED),  # a new episode closes the old alert: condition_cleared
        (a.ACKNOWLEDGED, a.RESOLVED),
        (a.SNOOZED, a.RESOLVED),
    ]
    assert all(target in TRANSITIONS[source] for source, target in moves)

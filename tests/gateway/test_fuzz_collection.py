"""Random GATT payloads through the gateway's collection path (gateway/fuzz.py): the
collectors' notification callbacks and read paths into a real outbox. No crash; every
malformed value kept as undecodable. ``benchmarks/fuzz_gateway.py`` runs 100,000."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles.registry import default_registry
from gateway.fuzz import CollectionTarget, run
from tests.device_profiles.test_fuzz import SEEDS

PROFILES = [p.id for p in default_registry().profiles]


@pytest.fixture(scope="module")
def target() -> CollectionTarget:
    tmp = tempfile.mkdtemp(prefix="fuzz-collection-")
    return CollectionTarget(Path(tmp))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_payloads_never_crash_the_collection_path(target: CollectionTarget, data: st.DataObject) -> None:
    pid = data.draw(st.sampled_from(PROFILES))
    uuid = data.draw(st.sampled_from(target.collectors[pid][1]))
    payload = data.draw(st.one_of(st.binary(max_size=48), st.sampled_from(SEEDS)))
    before = target.outbox.rejected_count() + target.outbox.depth
    target.feed(pid, uuid, payload)
    collector = target.collectors[pid][0]
    collector.result.duplicates  # noqa: B018 - the session's bookkeeping is still usable
    # Every payload ends up somewhere: a reading, a duplicate, undecodable, or session state
    # (a read characteristic, an RACP response, a glucose measurement awaiting its context).
    assert target.outbox.rejected_count() + target.outbox.depth >= before


def test_a_seeded_mutation_run_has_no_crashes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    result = run(3_000, seed=7, seeds=list(SEEDS))
    assert result.payloads == 3_000
    assert result.crashes == []
    assert result.readings > 0  # valid values went all the way into the outbox
    assert result.decode_errors > 1_000  # and malformed ones were kept, not dropped

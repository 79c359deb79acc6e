"""The broker's message_size_limit is the wire limit, in deploy's config and the local stack's."""

from __future__ import annotations

import re
from pathlib import Path

from deploy.localstack import LocalMosquitto
from device_profiles.wire import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parents[2]


def _limits(conf: str) -> list[int]:
    return [int(v) for v in re.findall(r"^message_size_limit (\d+)$", conf, flags=re.M)]


def test_deploy_config_limits_messages_to_the_wire_limit() -> None:
    assert _limits((ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()) == [MAX_MESSAGE_BYTES]


def test_the_local_stack_broker_has_the_same_limit(tmp_path: Path) -> None:
    broker = LocalMosquitto(tmp_path)
    broker.write_config()
    assert _limits(broker.config_path.read_text()) == [MAX_MESSAGE_BYTES]

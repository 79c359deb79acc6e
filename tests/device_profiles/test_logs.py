"""The one JSON log formatter every entry point uses."""

from __future__ import annotations

import io
import json
import logging

from device_profiles.logs import JsonFormatter, configure


def test_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("ingest.service", logging.WARNING, __file__, 1, "stored %d", (3,), None)
    record.reason = "bad_json"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "stored 3"
    assert line["level"] == "warning"
    assert line["logger"] == "ingest.service"
    assert line["reason"] == "bad_json"
    assert line["ts"].endswith("+00:00")


def test_quotes_newlines_and_tracebacks_stay_valid_json() -> None:
    stream = io.StringIO()
    configure("DEBUG", stream)
    log = logging.getLogger("egenmon.test")
    try:
        raise ValueError('a "quoted"\nvalue')
    except ValueError:
        log.exception('failed on "%s" for patient=%s', 'x"y', "P-1234abcd", extra={"stage": "evaluate"})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # the traceback's newlines are escaped inside one line
    line = json.loads(lines[0])
    assert line["msg"] == 'failed on "x"y" for patient=P-1234abcd'
    assert line["stage"] == "evaluate"
    assert 'ValueError: a "quoted"' in line["exc"]


def test_configure_replaces_handlers_and_sets_level() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure("INFO", first)
    configure("WARNING", second)
    log = logging.getLogger("egenmon.test.level")
    log.info("not shown")
    log.warning("schön")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["msg"] == "schön"

"""Log lines carry the fields passed as `extra`, in JSON or as key=value pairs."""

import json
import logging
import sys

from project.logs import JsonFormatter, PlainFormatter


def record(**extra) -> logging.LogRecord:
    entry = logging.LogRecord("postbacks.delivery", logging.INFO, __file__, 1, "postback %s", ("attempt",), None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_hold_the_message_and_every_extra_field():
    line = json.loads(JsonFormatter().format(record(delivery_id="d-1", status=200, duration_ms=12)))
    assert line["message"] == "postback attempt" and line["level"] == "INFO"
    assert line["logger"] == "postbacks.delivery" and line["time"].endswith("+00:00")
    assert (line["delivery_id"], line["status"], line["duration_ms"]) == ("d-1", 200, 12)


def test_json_lines_carry_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        entry = record()
        entry.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(entry))["exception"]


def test_plain_lines_append_key_value_pairs():
    text = PlainFormatter("%(levelname)s %(message)s").format(record(partner="facebook", status=None))
    assert text == 'INFO postback attempt partner="facebook" status=null'

"""Log formatters that carry the fields passed as `extra` (delivery id, partner, status…):
`json` writes one JSON object a line for log collectors, `plain` appends key=value pairs."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict:
    """What the caller passed as `extra`."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        pairs = " ".join(f"{key}={json.dumps(value, default=str, ensure_ascii=False)}" for key, value in fields.items())
        head, newline, rest = text.partition("\n")  # keep a traceback below the line
        return f"{head} {pairs}{newline}{rest}"

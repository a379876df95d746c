"""Log formatters that carry the fields passed as `extra` (delivery id, partner, status…):
`json` writes one JSON object a line for log collectors, `plain` appends key=value pairs."""

from __future__ import annotations

import json
import logging
import re
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


class RoutineTaskLines(logging.Filter):
    """Leaves out django-q2's INFO lines about each task (enqueued, processing, processed), one
    of each for every batch of deliveries while the delivery log and its line per attempt already
    say what was sent, and those of each of the cluster's processes (ready for work, monitoring…).
    Its lines about the cluster as a whole (starting, running, stopping) and every warning stay."""

    ROUTINE = re.compile(r"^(Enqueued \[|Processed '|Process-[0-9a-f]+ )")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not self.ROUTINE.match(record.getMessage())


class StaticFileLines(logging.Filter):
    """Leaves out the development server's line for each static file it serves (a dozen per
    admin page); its lines for other requests, and any failed request, stay."""

    def __init__(self, static_url: str):
        super().__init__()
        self.static_path = "/" + static_url.lstrip("/")

    def filter(self, record: logging.LogRecord) -> bool:
        request_line = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        target = str(request_line).split(" ")[1:2]
        failed = getattr(record, "status_code", 0) >= 400
        return failed or not (target and target[0].startswith(self.static_path))

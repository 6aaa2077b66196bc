"""Logs as JSON lines: one object per line, the same fields from gunicorn and the apps.

Every line names its time, level, service and instance, and, within a request, the
request's id and its W3C trace id, so that one request can be followed across the
gateway's, the logger's and the predictor's logs (docs/observability.md).
"""

import json
import logging
import os
from datetime import UTC, datetime

from flask import g, has_request_context


def utc_time(timestamp=None):
    """An ISO 8601 UTC time to the millisecond: 2026-12-03T07:01:02.123Z."""
    moment = datetime.now(UTC) if timestamp is None else datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request_fields():
    """The request id and trace id of the request being handled, if any."""
    if not has_request_context():
        return {}
    return {"request_id": g.get("request_id"), "trace_id": g.get("trace_id")}


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON, with its service and instance."""

    def __init__(self, service, instance):
        super().__init__()
        self.identity = {"service": service, "instance": instance}

    def format(self, record):
        entry = {
            "time": utc_time(record.created),
            "level": record.levelname.lower(),
            **self.identity,
            "pid": os.getpid(),
            "logger": record.name,
            "message": record.getMessage(),
            **request_fields(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def access_line(identity, fields):
    """One access log line: the identity's fields, then the request's."""
    return json.dumps({"time": utc_time(), "level": "info", **identity, "pid": os.getpid(),
                       "logger": "gunicorn.access", **fields}, ensure_ascii=False)

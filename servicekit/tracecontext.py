"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent header that
names the trace a request belongs to, taken from the caller and passed on.

The gateway accepts a valid traceparent or starts a trace; each hop below it passes the
trace id on with a parent id of its own. No spans are recorded here: the trace id ties
one request's log lines and its stored record together.
"""

import os
import re

TRACEPARENT_HEADER = "traceparent"
# Version 00: 32 hex digits of trace id and 16 of parent id, neither all zeros, then flags.
TRACEPARENT = re.compile(
    r"00-(?!0{32})(?P<trace_id>[0-9a-f]{32})-(?!0{16})(?P<parent_id>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})"
)


def parse(header):
    """The (trace id, flags) of a valid traceparent header, else None."""
    match = TRACEPARENT.fullmatch(header or "")
    return (match["trace_id"], match["flags"]) if match else None


def child(trace_id, flags):
    """A traceparent for a call made on the trace's behalf, with a new parent id."""
    return f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"

"""Request hooks: an id for every request, the client's id when the gateway names it,
and request bodies that are plain JSON or refused."""

import re
import uuid

from flask import current_app, g, request
from flask_smorest import abort

from . import tracecontext
from .headers import CLIENT_ID_HEADER, REQUEST_ID_HEADER

# Accept a caller's id only when it is short and harmless to log and to pass on.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The same for the client id the gateway sets; anything else is stored as no client.
SANE_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def takes_json_of_any_content_type(view):
    """Mark a view whose clients may send JSON without Content-Type: application/json (the
    Open Inference Protocol's clients, Triton's among them, send none). The body must
    still be JSON; the view reads it."""
    view.takes_json_of_any_content_type = True
    return view


def install_request_hooks(app):
    """Give every request an id, its client's and its trace's (or None), and reject
    request bodies that are not JSON or come encoded."""

    # Each hook reads the request and g through their proxies once: a proxy lookup is a
    # context-variable lookup, and these hooks run for every request.
    @app.before_request
    def assign_ids():
        headers, context = request.headers, g._get_current_object()
        incoming = headers.get(REQUEST_ID_HEADER, "")
        context.request_id = (incoming if SANE_REQUEST_ID.fullmatch(incoming)
                              else uuid.uuid4().hex)
        client_id = headers.get(CLIENT_ID_HEADER, "")
        context.client_id = client_id if SANE_CLIENT_ID.fullmatch(client_id) else None
        # (trace id, flags) of a valid traceparent, which the gateway always sends.
        trace = tracecontext.parse(headers.get(tracecontext.TRACEPARENT_HEADER))
        context.trace, context.trace_id = trace, trace[0] if trace else None

    @app.before_request
    def require_json_body():
        incoming = request._get_current_object()
        # url_rule is None when routing failed: let that 404 or 405 through instead.
        if incoming.method != "POST" or incoming.url_rule is None:
            return
        # No service decodes a body: one marked gzip (or anything but identity) would be
        # read as if it were plain. RFC 7694: say which coding is accepted.
        encoding = incoming.headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            abort(415, message="Content-Encoding is not supported: send the body unencoded.",
                  headers={"Accept-Encoding": "identity"})
        if not incoming.is_json:
            view = current_app.view_functions.get(incoming.url_rule.endpoint)
            if not getattr(view, "takes_json_of_any_content_type", False):
                abort(415, message="Content-Type must be application/json.")
        body = incoming.get_data(cache=True)
        if not body:
            abort(400, message="Request body is empty: send a JSON object.")
        # Werkzeug cuts a body without Content-Length (chunked) at MAX_CONTENT_LENGTH,
        # silently: refuse one that goes on past it rather than read its first MiB.
        limit = incoming.max_content_length
        if (incoming.content_length is None and limit is not None and len(body) >= limit
                and incoming.environ["wsgi.input"].read(1)):
            abort(413, message=f"The request body is larger than {in_words(limit)}.")

    @app.after_request
    def return_request_id(response):
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response


def in_words(size):
    """A number of bytes as a person writes it: 1 MiB, 64 KiB, 1000 bytes."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"

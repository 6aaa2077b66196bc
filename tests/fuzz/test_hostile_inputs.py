"""A table of hostile requests, sent to each service directly and through the gateway.

Every row must get the one JSON error shape (`{"code", "status", "message", ...}`) with a
4xx status (the documented one where the README names it), never a 5xx, an HTML page or
a dropped connection; and afterwards the service must still answer /health and an
ordinary request with 200.

A few rows are valid requests, accepted on purpose and pinned as such:
- a NUL character escaped inside a JSON string (`"a\\u0000b"`): valid JSON and valid
  text, classified, and recorded exactly as sent;
- duplicate keys: Python's JSON parser keeps the last one, silently.

A lone surrogate escaped in a JSON string (`"\\ud800"`) is refused by both services
alike (422): UTF-8 cannot hold it.

The services run as the whole stack (tests/fuzz/conftest.py): "direct" rows go to the
logger's and one predictor replica's own gunicorn port, "gateway" rows to Nginx.
"""

import json
import re
import select
import socket
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests

TIMEOUT = 30
MiB = 1024 * 1024
DEPTH = 100_000
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Target:
    """Where a hostile request goes, and how to tell that it still works afterwards."""

    name: str
    base_url: str
    path: str
    field: str  # the text field of the route: "data" (/process) or "input" (/predict)
    health_urls: tuple

    @property
    def url(self):
        return self.base_url + self.path

    def body(self, text):
        return {self.field: text}


POST_TARGETS = ["logger-direct", "predictor-direct", "gateway-process", "gateway-predict"]
LOGS_TARGETS = ["logger-direct", "gateway-process"]


@pytest.fixture(scope="module")
def targets(stack):
    logger = f"http://127.0.0.1:{stack.logger_port}"
    predictors = [f"http://127.0.0.1:{port}" for port in stack.predictor_ports]
    gateway = stack.url
    return {
        "logger-direct": Target(
            "logger-direct", logger, "/process", "data", (f"{logger}/health",)
        ),
        "predictor-direct": Target(
            "predictor-direct", predictors[0], "/predict", "input", (f"{predictors[0]}/health",)
        ),
        "gateway-process": Target(
            "gateway-process", gateway, "/process", "data",
            (f"{gateway}/health", f"{logger}/health"),
        ),
        "gateway-predict": Target(
            "gateway-predict", gateway, "/predict", "input",
            (f"{gateway}/health", *(f"{url}/health" for url in predictors)),
        ),
    }


# --- Raw HTTP, for what `requests` cannot send: a chunked body the server may refuse
# part-way, bytes that are not ASCII in a request line.


@dataclass
class RawResponse:
    status_code: int
    headers: requests.structures.CaseInsensitiveDict
    content: bytes

    @property
    def text(self):
        return self.content.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.content)


def read_response(sock, deadline):
    """Read one HTTP/1.1 response: a body of Content-Length bytes, or up to the close."""
    data = b""
    while True:
        head, separator, body = data.partition(b"\r\n\r\n")
        if separator:
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
            if match and len(body) >= int(match.group(1)):
                break
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            received = sock.recv(65536)
        except ConnectionResetError:
            received = b""
        if not received:
            break
        data += received
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no complete HTTP response, got {data[:300]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = requests.structures.CaseInsensitiveDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


def exchange(url, pieces):
    """Send pieces of one raw request to url's server, then read the answer.

    Stops sending as soon as the server answers (it may refuse a body part-way) or
    stops reading; never blocks past the timeout.
    """
    parts = urlsplit(url)
    pieces = list(pieces)
    deadline = time.monotonic() + TIMEOUT
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        pending = b""
        while pieces or pending:
            if not pending:
                pending = pieces.pop(0)
            readable, writable, _ = select.select(
                [sock], [sock], [], max(0.0, deadline - time.monotonic())
            )
            if readable or time.monotonic() > deadline:
                break  # an answer (or a close) before the whole request: read it
            if writable:
                try:
                    pending = pending[sock.send(pending):]
                except (BrokenPipeError, ConnectionResetError):
                    break
        return read_response(sock, deadline)


def send_chunked(url, body, chunk_size=1000):
    """POST body with Transfer-Encoding: chunked and no Content-Length.

    Small chunks, as a slow client would send them: the framing alone fills a 1 MiB
    buffer before 1 MiB of data has arrived.
    """
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    pieces = [head]
    for start in range(0, len(body), chunk_size):
        piece = body[start:start + chunk_size]
        pieces.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    pieces.append(b"0\r\n\r\n")
    return exchange(url, pieces)


# --- The table of request bodies, for POST /process and POST /predict.


@dataclass(frozen=True)
class Hostile:
    """One hostile request, built for a target, and what must come back."""

    id: str
    build: object  # Target -> {"data": bytes, "headers": dict} or {"chunked": bytes}
    status: int | None = None  # the documented status, or None for any 4xx
    # The fields ("data", "input") of the routes that accept it, and how to check it then.
    accepted_by: tuple = ()
    check_accepted: object = None


def raw(body, content_type="application/json"):
    return lambda _target: {"data": body, "headers": {"Content-Type": content_type}}


def with_text(template):
    """A body made from template, where {field} is the route's text field."""
    def build(target):
        return {"data": template.replace(b"{field}", target.field.encode()), "headers": JSON}
    return build


def deep_array(_target):
    return {"data": b"[" * DEPTH + b"]" * DEPTH, "headers": JSON}


def deep_object(_target):
    return {"data": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, "headers": JSON}


def many_fields(target):
    body = {f"field{n}": n for n in range(10_000)}
    body[target.field] = "a cat on the mat"
    return {"data": json.dumps(body).encode(), "headers": JSON}


def content_type(value):
    def build(target):
        headers = {} if value is None else {"Content-Type": value}
        return {"data": json.dumps(target.body("a cat")).encode(), "headers": headers}
    return build


def multipart(target):
    body = (
        b"--hostile\r\n"
        b'Content-Disposition: form-data; name="%s"\r\n\r\n'
        b"a cat\r\n--hostile--\r\n" % target.field.encode()
    )
    return {"data": body, "headers": {"Content-Type": "multipart/form-data; boundary=hostile"}}


def chunked_5mib(target):
    # Valid JSON all the way: only its size is wrong.
    return {"chunked": b'{"%s": "%s"}' % (target.field.encode(), b"a" * (5 * MiB))}


def chunked_valid_first_mib(target):
    # A complete, valid object in the first MiB, then 4 MiB more: the whole body is over
    # the limit (and is not JSON), so it must be refused, not read as its first MiB.
    obj = b'{"%s": "a cat that must not be recorded"}' % target.field.encode()
    return {"chunked": obj + b" " * (MiB - len(obj)) + b"x" * (4 * MiB)}


def gzip_marked(target):
    # A plain body that says it is gzip: no service decodes one, so none may read it.
    return {"data": json.dumps(target.body("a cat")).encode(),
            "headers": {**JSON, "Content-Encoding": "gzip"}}


def duplicate_keys(first, last):
    def build(target):
        key = json.dumps(target.field)
        body = f"{{{key}: {json.dumps(first)}, {key}: {json.dumps(last)}}}".encode()
        return {"data": body, "headers": JSON}
    return build


def long_header(target):
    return {
        "data": json.dumps(target.body("a cat")).encode(),
        "headers": {**JSON, "X-Request-ID": "a" * (64 * 1024)},
    }


def long_uri(target):
    return {
        "data": json.dumps(target.body("a cat")).encode(),
        "headers": JSON,
        "query": "q=" + "a" * (64 * 1024),
    }


def find_record(target, request_id, http):
    page = http.get(f"{target.base_url}/logs", params={"limit": 50}, timeout=TIMEOUT).json()
    [record] = [r for r in page["records"] if r["request_id"] == request_id]
    return record


def kept_as(text):
    """The accepted text is the one classified (by length), or recorded as is."""
    def check(target, response, http):
        body = response.json()
        if target.field == "input":
            assert body["prediction"]["input_length"] == len(text), body
        else:
            assert find_record(target, body["request_id"], http)["data"] == text
    return check


HOSTILE = [
    # Valid JSON that Python's parser cannot hold: it recurses once per level.
    Hostile("nested-array-100k", deep_array),
    Hostile("nested-object-100k", deep_object),
    Hostile("object-10k-fields", many_fields, status=422),
    Hostile("invalid-utf8", with_text(b'{"{field}": "cat \xff\xfe\xc3\x28 dog"}'), status=400),
    # A prediction's input may hold NUL; an input to record may not: PostgreSQL's text
    # cannot, and both stores take the same inputs.
    Hostile("nul-escaped-in-string", with_text(b'{"{field}": "a\\u0000b"}'), status=422,
            accepted_by=("input",), check_accepted=kept_as("a\x00b")),
    Hostile("nul-raw-in-string", with_text(b'{"{field}": "a\x00b"}'), status=400),
    Hostile("nul-raw-between-tokens", with_text(b'{"{field}":\x00"ab"}'), status=400),
    Hostile("content-type-text-plain", content_type("text/plain"), status=415),
    Hostile("content-type-multipart", multipart, status=415),
    Hostile("content-type-none", content_type(None), status=415),
    Hostile("content-encoding-gzip-on-a-plain-body", gzip_marked, status=415),
    Hostile("empty-body", raw(b""), status=400),
    Hostile("chunked-5mib", chunked_5mib, status=413),
    Hostile("chunked-valid-first-mib-then-4mib", chunked_valid_first_mib, status=413),
    Hostile("bare-number", raw(b"42"), status=422),
    Hostile("bare-array", raw(b'["a cat"]'), status=422),
    Hostile("bare-string", raw(b'"a cat"'), status=422),
    Hostile("bare-null", raw(b"null"), status=422),
    Hostile("bare-true", raw(b"true"), status=422),
    Hostile("duplicate-keys-last-invalid", duplicate_keys("kept", ""), status=422),
    Hostile("duplicate-keys-last-valid", duplicate_keys("", "kept"),
            accepted_by=("data", "input"), check_accepted=kept_as("kept")),
    Hostile("header-value-64kib", long_header),
    Hostile("request-uri-64kib", long_uri, status=414),
    # Valid JSON, valid for the schema, but not text that UTF-8 (or SQLite) can hold.
    Hostile("lone-surrogate-escaped", with_text(b'{"{field}": "a\\ud800b"}'), status=422),
    # Named in the 422's errors: the answer, UTF-8 elsewhere, escapes it.
    Hostile("lone-surrogate-in-a-field-name",
            with_text(b'{"{field}": "a cat", "\\ud800": 1}'), status=422),
    # Python refuses to turn more than 4300 digits into an int (CVE-2020-10735).
    Hostile("integer-5000-digits", with_text(b'{"{field}": ' + b"9" * 5000 + b"}")),
]


def send(target, request):
    if "chunked" in request:
        return send_chunked(target.url, request["chunked"])
    url = target.url + ("?" + request["query"] if "query" in request else "")
    with requests.Session() as session:
        return session.post(url, data=request["data"], headers=request["headers"],
                            timeout=TIMEOUT)


def describe(response):
    return (
        f"{response.status_code} {response.headers.get('Content-Type')!r}: "
        f"{response.text[:400]!r}"
    )


def assert_json_error(response, status=None):
    """The one error shape of the services and the gateway, on a 4xx."""
    assert 400 <= response.status_code < 500, f"expected a 4xx, got {describe(response)}"
    if status is not None:
        assert response.status_code == status, f"expected {status}, got {describe(response)}"
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    assert media_type == "application/json", f"not JSON: {describe(response)}"
    body = response.json()
    assert isinstance(body, dict), describe(response)
    assert {"code", "status", "message"} <= body.keys() <= {"code", "status", "message", "errors"}
    assert body["code"] == response.status_code, describe(response)
    assert isinstance(body["status"], str) and body["status"], describe(response)
    assert isinstance(body["message"], str) and body["message"], describe(response)
    assert "Traceback" not in response.text
    return body


def assert_still_serves(target, http):
    for url in target.health_urls:
        response = http.get(url, timeout=TIMEOUT)
        assert response.status_code == 200, f"{url}: {describe(response)}"
    text = f"a fluffy cat after a hostile request {uuid.uuid4().hex}"
    response = http.post(target.url, json=target.body(text), timeout=TIMEOUT)
    assert response.status_code == 200, f"{target.url}: {describe(response)}"
    assert response.headers["Content-Type"] == "application/json"


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.mark.parametrize("target_name", POST_TARGETS)
@pytest.mark.parametrize("hostile", HOSTILE, ids=[row.id for row in HOSTILE])
def test_hostile_body(hostile, target_name, targets, http):
    target = targets[target_name]
    response = send(target, hostile.build(target))

    if target.field in hostile.accepted_by:
        assert response.status_code == 200, describe(response)
        assert response.headers["Content-Type"] == "application/json", describe(response)
        hostile.check_accepted(target, response, http)
    else:
        assert_json_error(response, hostile.status)

    assert_still_serves(target, http)


# --- GET /logs: hostile query strings, to the logger directly and through the gateway.

HOSTILE_QUERIES = {
    # Valid for the documented schema (integer, minimum 1, no maximum), beyond SQLite's.
    "before-id-2-pow-63": "before_id=9223372036854775808",
    "before-id-30-digits": "before_id=" + "9" * 30,
    "limit-30-digits": "limit=" + "9" * 30,
    # Under gunicorn's 4094-byte request line, and Python's 4300-digit int limit.
    "limit-4000-digits": "limit=" + "9" * 4000,
    "limit-negative": "limit=-1",
    "limit-not-a-number": "limit=ten",
    "limit-nul": "limit=5%00",
    "limit-float": "limit=1e3",
    # int() reads all of these as numbers; a query integer is ASCII digits only.
    "limit-full-width-digit": "limit=%EF%BC%91",
    "limit-underscore": "limit=1_0",
    "limit-plus": "limit=%2B5",
    "limit-leading-space": "limit=%205",
    # A parameter given twice is refused, not read as its first value.
    "limit-repeated": "limit=1&limit=2",
    "before-id-repeated": "before_id=5&before_id=6",
}


@pytest.mark.parametrize("target_name", LOGS_TARGETS)
@pytest.mark.parametrize("query", HOSTILE_QUERIES.values(), ids=HOSTILE_QUERIES.keys())
def test_hostile_logs_query(query, target_name, targets, http):
    target = targets[target_name]
    response = http.get(f"{target.base_url}/logs?{query}", timeout=TIMEOUT)
    assert_json_error(response, 422)
    assert_still_serves(target, http)


@pytest.mark.parametrize("target_name", LOGS_TARGETS)
def test_raw_non_ascii_bytes_in_request_line(target_name, targets, http):
    """Bytes that are not ASCII in the query: refused with the JSON error shape."""
    target = targets[target_name]
    host = urlsplit(target.base_url).netloc
    request = f"GET /logs?limit=٥ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    response = exchange(target.base_url, [request])
    assert_json_error(response)
    assert_still_serves(target, http)

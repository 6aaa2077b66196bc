"""servicekit.gunicorn on its own: an answer's head leaves in the same write as its body."""

import runpy

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from servicekit.gunicorn import OneWriteResponse
from tests.support import ROOT


class RecordingSocket:
    """A socket that keeps each sendall call's bytes apart."""

    def __init__(self):
        self.writes = []

    def sendall(self, data):
        self.writes.append(bytes(data))


def respond(request_head, status, headers, body_chunks):
    [request] = RequestParser(Config(), [request_head], ("127.0.0.1", 40000))
    sock = RecordingSocket()
    response = OneWriteResponse(request, sock, Config())
    response.start_response(status, headers)
    for chunk in body_chunks:
        response.write(chunk)
    response.close()
    return sock.writes


def test_the_head_and_the_body_go_out_in_one_write():
    body = b'{"prediction": {"class": "dog"}}'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    request = b"POST /predict HTTP/1.1\r\nHost: x\r\n\r\n"

    [write] = respond(request, "200 OK", headers, [body])

    head, sent_body = write.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: 32" in head.split(b"\r\n")
    assert sent_body == body


def test_an_answer_without_a_body_still_sends_its_head():
    headers = [("Content-Type", "application/json"), ("Content-Length", "2")]
    request = b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"

    [write] = respond(request, "200 OK", headers, [b"{}"])

    assert write.startswith(b"HTTP/1.1 200 OK\r\n")
    assert write.endswith(b"\r\n\r\n")


def test_a_streamed_answer_sends_its_head_then_each_chunk_in_order():
    headers = [("Content-Type", "text/plain")]
    request = b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"

    writes = respond(request, "200 OK", headers, [b"one", b"two"])

    assert b"Transfer-Encoding: chunked" in writes[0]
    assert writes[0].endswith(b"\r\n\r\n")
    assert b"".join(writes[1:]) == b"3\r\none\r\n3\r\ntwo\r\n0\r\n\r\n"


@pytest.mark.parametrize("service", ["logger_service", "predictor_service"])
def test_no_answer_goes_out_through_sendfile(service):
    # sendfile would send a file's head alone, outside OneWriteResponse. No route of
    # either service answers with a file, so no request can show it: read the setting.
    settings = runpy.run_path(str(ROOT / service / "gunicorn.conf.py"))

    assert settings["sendfile"] is False

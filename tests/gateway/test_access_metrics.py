"""gateway.access_metrics on its own: Nginx's gateway_metrics lines, counted."""

import json
import signal
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from gateway.access_metrics import AccessMetrics
from tests.support import ROOT, answers_ok, free_port, wait_until


def counted(lines):
    registry = CollectorRegistry()
    metrics = AccessMetrics(registry)
    for line in lines:
        metrics.count(line)
    return lambda name, **labels: registry.get_sample_value(name, labels) or 0.0


def datagram(line):
    """A line as Nginx sends it to syslog with nohostname and tag=gateway."""
    return f"<190>Dec  3 06:36:01 gateway: {line}".encode()


def test_answers_are_counted_by_listener_route_and_status():
    value = counted([
        datagram("public /predict 200 0.004 200"),
        datagram("public /predict 200 0.003 200"),
        datagram("public /predict 429 0.000 -"),
        datagram("internal /predict 200 0.002 200"),
    ])

    assert value("gateway_responses_total", listener="public", route="/predict",
                 status="200") == 2
    assert value("gateway_responses_total", listener="public", route="/predict",
                 status="429") == 1
    assert value("gateway_responses_total", listener="internal", route="/predict",
                 status="200") == 1
    assert value("gateway_request_duration_seconds_count", listener="public",
                 route="/predict") == 3
    assert value("gateway_request_duration_seconds_sum", listener="public",
                 route="/predict") == pytest.approx(0.007)


def test_each_extra_upstream_tried_is_a_retry():
    value = counted([
        datagram("public /predict 200 0.010 502, 200"),
        datagram("public /predict 503 0.020 502, 504, 502"),
        datagram("public /process 200 0.010 200"),
    ])

    assert value("gateway_upstream_retries_total", listener="public", route="/predict") == 3
    assert value("gateway_upstream_retries_total", listener="public", route="/process") == 0


def test_a_datagram_that_is_not_a_line_of_ours_is_counted_apart():
    value = counted([b"garbage", datagram("public /predict"), datagram("a b c notanumber -"),
                     b"\xff\xfe: \xff"])

    assert value("gateway_access_metrics_malformed_lines_total") == 4
    assert value("gateway_responses_total", listener="public", route="/predict",
                 status="200") == 0


def test_an_nginx_error_line_is_written_as_json(capsys):
    counted([b"<187>Dec  3 07:14:33 nginx: 2026/12/03 07:14:33 [error] 27441#27441: *4 "
             b'connect() failed (111: Connection refused), request: "GET /u HTTP/1.1"',
             b"<188>Dec  3 07:14:34 nginx: 2026/12/03 07:14:34 [warn] 27441#27441: *5 "
             b"limiting requests, excess: 2.0 by zone \"per_client\""])

    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (first["level"], first["pid"], first["logger"], first["service"]) == (
        "error", 27441, "nginx.error", "gateway")
    assert first["message"] == ('*4 connect() failed (111: Connection refused), '
                                'request: "GET /u HTTP/1.1"')
    assert second["level"] == "warning" and second["message"].startswith("*5 limiting")


def test_stopped_as_supervisord_stops_it_it_removes_its_socket(tmp_path):
    path = tmp_path / "metrics.sock"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.access_metrics", "--socket", str(path),
         "--listen", f"127.0.0.1:{port}"], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: answers_ok(f"http://127.0.0.1:{port}/metrics"), what="its /metrics")
        assert path.is_socket()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
    assert not path.exists()

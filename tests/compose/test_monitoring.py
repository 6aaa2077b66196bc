"""`docker-compose --profile monitoring up --scale predictor=5`: Prometheus finds every
replica in Docker's DNS, its counts match what was sent, and its replica-down alert
fires while a replica hangs and clears after."""

import pytest

from tests.compose.conftest import Compose, ensure_docker_engine
from tests.integration.test_monitoring import check_the_counts, send_known_traffic
from tests.support import Prometheus, wait_until

pytestmark = pytest.mark.compose
REPLICAS = 5


@pytest.fixture(scope="module")
def monitored():
    ensure_docker_engine()
    stack = Compose(monitoring=True)
    try:
        stack("build")
        stack("up", "-d", "--scale", "predictor=3")
        stack.wait_healthy()
        # Scaled after the start: discovery follows, with nothing edited.
        stack("up", "-d", "--scale", f"predictor={REPLICAS}")
        stack.wait_healthy()
        yield stack
    finally:
        stack("down", "--remove-orphans", "-v", timeout=300)


@pytest.fixture(scope="module")
def prometheus(monitored):
    return Prometheus(monitored.prometheus_url)


def test_prometheus_finds_every_replica_and_part(monitored, prometheus):
    for job, targets in {"gateway": 1, "nginx": 1, "logger": 1, "predictor": REPLICAS,
                         "prometheus": 1}.items():
        prometheus.settles_at(f'sum(up{{job="{job}"}})', targets, timeout=90)


def test_the_counts_match_what_was_sent(monitored, prometheus):
    send_known_traffic(monitored.url)

    check_the_counts(prometheus)


def test_a_hung_replica_fires_its_alert_and_it_clears(monitored, prometheus):
    # Paused, a replica keeps its name in Docker's DNS (a stopped one leaves it), and
    # answers nothing: Prometheus' scrape of it fails, as the gateway's requests do.
    container = monitored.running_predictors()[0]
    [address] = monitored.predictor_addresses_of(container)
    monitored.docker("pause", container)
    try:
        wait_until(lambda: prometheus.alerts("PredictorReplicaDown").get(f"{address}:9100")
                   == "firing", timeout=120, what="PredictorReplicaDown firing")
    finally:
        monitored.docker("unpause", container)
    wait_until(lambda: not prometheus.alerts("PredictorReplicaDown"), timeout=120,
               what="PredictorReplicaDown cleared")

"""The logger's HTTP client for the predictor pool (through the gateway by default)."""

import requests
from requests.adapters import HTTPAdapter

from .api import REQUEST_ID_HEADER


class PredictorUnavailable(Exception):
    """No predictor answered: connection refused or reset, timeout, or a 5xx."""


class PredictorBadResponse(Exception):
    """A predictor answered, but not with a prediction (a 4xx, or a body that is not JSON)."""


class PredictorClient:
    """One pooled keep-alive session per worker, with explicit timeouts and no retries.

    Retrying on another replica is the gateway's job (proxy_next_upstream), so a failure
    here means the whole pool could not answer.
    """

    def __init__(self, url, connect_timeout, read_timeout, pool_size):
        self.url = url
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # Proxy variables from the environment must not divert a call to our own pool.
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def predict(self, text, request_id):
        """Return the predictor's JSON answer for one text."""
        try:
            response = self.session.post(
                self.url,
                json={"input": text},
                headers={REQUEST_ID_HEADER: request_id},
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            raise PredictorUnavailable(f"no answer within the timeout ({exc.__class__.__name__})")
        except requests.ConnectionError:
            raise PredictorUnavailable("could not connect")
        if response.status_code >= 500:
            raise PredictorUnavailable(f"it answered {response.status_code}")
        if response.status_code != 200:
            raise PredictorBadResponse(f"it answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise PredictorBadResponse("it answered with a body that is not JSON")

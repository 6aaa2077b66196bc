"""Why a forward to the predictor pool gave no prediction: each error its own status."""

from servicekit.errors import ServiceError


class ForwardError(ServiceError):
    """The predictor pool gave no prediction for an input.

    The input is recorded all the same, with this outcome; then the client gets this
    status and "<summary>: <reason>." as the message. Subclasses set all three.
    """

    outcome: str
    summary: str

    def __init__(self, reason):
        super().__init__(f"{self.summary}: {reason}.")


class PredictorUnavailable(ForwardError):
    """No predictor answered: connection refused or reset, timeout, or a 5xx."""

    status = 503
    outcome = "predictor_unavailable"
    summary = "Predictor is unavailable"


class PredictorBadResponse(ForwardError):
    """A predictor answered, but not with a prediction (a 4xx, or a body that is not JSON)."""

    status = 502
    outcome = "predictor_error"
    summary = "Predictor gave a bad response"


class UnknownModelVersion(PredictorBadResponse):
    """The client pinned a model version (X-Model-Version) that no predictor serves."""

    status = 404
    outcome = "unknown_model_version"
    summary = "No predictor serves the model version asked for"

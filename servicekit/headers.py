"""The HTTP headers that the gateway and the services pass each other."""

# Names one request in the gateway's, the logger's and the predictor's log lines: taken
# from the caller when sane (servicekit.hooks), passed on by the logger's client.
REQUEST_ID_HEADER = "X-Request-ID"
# Names the predictor replica that answered.
SERVED_BY_HEADER = "X-Served-By"
# Names the client (the API key's owner) that sent a request: set by the gateway, which
# drops any that the client sent; the logger stores it with each record.
CLIENT_ID_HEADER = "X-Client-Id"
# Asks the predictor for one model version (or alias): set by the gateway's canary from its
# split, or by a client pinning a version to test it; without it, production answers.
MODEL_VERSION_HEADER = "X-Model-Version"
# The key the gateway's canary splits clients on (their API key's client, X-Client-ID or
# address): the logger passes it on with its forward, with any X-Model-Version pin, so
# that the internal listener splits a /process as the public one would a /predict.
CANARY_KEY_HEADER = "X-Canary-Key"
# The request ids of a batch of forwards, in the order of its "inputs", space-separated:
# the logger sends a batch under its first request's id (logger_service/batching.py) and
# names them all here, so that the gateway's shadow mirror of the batch records each
# text's shadow under its own request's id. The gateway passes it on from its internal
# listener only.
BATCH_REQUEST_IDS_HEADER = "X-Batch-Request-IDs"
# What the logger passes on from the request it forwards: the canary's inputs.
ROUTING_HEADERS = (MODEL_VERSION_HEADER, CANARY_KEY_HEADER)

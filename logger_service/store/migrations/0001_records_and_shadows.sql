-- Every input the logger acknowledged, with the prediction it was given when it was
-- forwarded (outcome 'predicted') or why it was not.
CREATE TABLE records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL,
    client_id TEXT,
    trace_id TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    data TEXT NOT NULL,
    forward_to_model BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    prediction JSONB,
    latency_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX records_request_id ON records (request_id);
-- The comparison (GET /experiments/current) reads the latest predictions served.
CREATE INDEX records_predicted ON records (id) WHERE outcome = 'predicted';

-- The candidate's answers to mirrored predictions (shadow.py), beside the records'
-- under the same request id.
CREATE TABLE shadows (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    outcome TEXT NOT NULL,
    prediction JSONB,
    latency_ms DOUBLE PRECISION NOT NULL
);
CREATE INDEX shadows_request_id ON shadows (request_id);

-- /ready writes its one row: a write that commits is the only proof the database takes writes.
CREATE TABLE readiness_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at TIMESTAMPTZ NOT NULL
);

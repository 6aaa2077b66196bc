"""The teaching lab's predictor on FastAPI + uvicorn, serving the project's own artifact.

    uvicorn bench.peers.fastapi_predictor:app --host 127.0.0.1 --port 8011 \
        --workers 2

The benchmark's peer: the stack a user of the lab would pick, written the way the lab
writes it (async handlers calling the model directly, no threadpool, no batching).
Its /predict answers exactly what predictor_service answers for one "input".
PEER_MODEL_PATH chooses the artifact (default: the shipped one).
"""

import json
import os
from contextlib import asynccontextmanager
from pathlib import Path

import skops.io
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from predictor_service.config import DEFAULT_REPOSITORY
from predictor_service.model import TRUSTED_TYPES
from predictor_service.repository import PRODUCTION, Repository


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=10_000)


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Once per worker: the pipeline, and its name and version from the metadata beside it.
    path = Path(os.environ.get("PEER_MODEL_PATH")
                or Repository(DEFAULT_REPOSITORY).artifact(PRODUCTION))
    app.state.pipeline = skops.io.load(path, trusted=TRUSTED_TYPES)
    metadata = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    app.state.identity = {"name": metadata["name"], "version": metadata["version"]}
    yield


app = FastAPI(title="predictor (FastAPI peer)", lifespan=lifespan)


@app.post("/predict")
async def predict(payload: PredictRequest, request: Request):
    pipeline = request.app.state.pipeline
    probabilities = pipeline.predict_proba([payload.input])[0]
    best = int(probabilities.argmax())
    label = str(pipeline.classes_[best])
    confidence = round(float(probabilities[best]), 4)
    length = len(payload.input)
    return {
        "prediction": {"class": label, "confidence": confidence, "input_length": length},
        "message": f"Predicted class: {label} with {confidence:.1%} confidence",
        "model": request.app.state.identity,
    }


@app.get("/health")
async def health():
    return {"status": "ok"}

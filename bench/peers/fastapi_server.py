"""A typical FastAPI prediction server, written the way such projects usually write one.

A pydantic model of the request, a one-row pandas DataFrame, `pipeline.predict`; the fitted
pipeline is `joblib.load`-ed at import from `$MODEL_DIR/<dataset>.joblib`. One record per
request (no lists), as in the typical project. Run with uvicorn, one worker:

    MODEL_DIR=models uvicorn bench.peers.fastapi_server:app --workers 1
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_DIR = Path(os.environ.get("MODEL_DIR", "models"))

# API field name -> the column name the pipeline was trained with
ABALONE_COLUMNS = {
    "Whole_weight": "Whole weight",
    "Shucked_weight": "Shucked weight",
    "Viscera_weight": "Viscera weight",
    "Shell_weight": "Shell weight",
}


class AbaloneRequest(BaseModel):
    Sex: Literal["M", "F", "I"]
    Length: float
    Diameter: float
    Height: float
    Whole_weight: float
    Shucked_weight: float
    Viscera_weight: float
    Shell_weight: float


class IrisRequest(BaseModel):
    sepal_length: float
    sepal_width: float
    petal_length: float
    petal_width: float


def load_model(name: str):
    path = MODEL_DIR / f"{name}.joblib"
    return joblib.load(path) if path.exists() else None


abalone_model = load_model("abalone")
iris_model = load_model("iris")

app = FastAPI(title="Abalone prediction API")


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


@app.post("/predict")
def predict(request: AbaloneRequest) -> dict:
    frame = pd.DataFrame([request.model_dump()]).rename(columns=ABALONE_COLUMNS)
    prediction = abalone_model.predict(frame)
    return {"prediction": float(prediction[0])}


@app.post("/iris/predict")
def predict_iris(request: IrisRequest) -> dict:
    frame = pd.DataFrame([request.model_dump()])
    prediction = iris_model.predict(frame)
    return {"prediction": str(prediction[0])}

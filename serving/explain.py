"""POST /models/{name}/predict?explain=true: each input field's contribution to a prediction.

Method: baseline substitution. The baseline record is the contract's examples (typical training
values). A field's contribution is the model output on the record minus the output on the record
with that one field set to its baseline value; `baseline` is the output on the baseline record.
For an additive model (linear, or any sum of per-field terms) the contributions plus the baseline
equal the output exactly; otherwise `unexplained` is what interactions leave over. It is
model-agnostic and cheap: one model call of 1 + records x (fields + 1) rows, no sampling, no
extra dependency (SHAP's KernelExplainer would cost hundreds of model rows per record).
Classifiers explain the probability of the predicted label.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from serving.errors import ApiError
from serving.model import LoadedModel

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def explain_requested(query: bytes) -> bool:
    """Whether the query string asks for explanations (other parameters are ignored)."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    values = [value for key, value in pairs if key == "explain"]
    if not values:
        return False
    if len(values) > 1 or values[0].lower() not in TRUE + FALSE:
        raise ApiError(422, f"query parameter explain must be true or false, got {values}")
    return values[0].lower() in TRUE


def _substituted(rows: list[list], baseline: list, width: int) -> list[list]:
    """The baseline, then each row and the row with each of its `width` fields in turn set to
    the baseline's (a series model's computed features stay the row's own)."""
    batch = [baseline]
    for row in rows:
        batch.append(row)
        batch.extend(row[:i] + [baseline[i]] + row[i + 1 :] for i in range(width))
    return batch


def explain_rows(model: LoadedModel, rows: list[list]) -> list[dict[str, Any]]:
    """One explanation per validated row (in the model's field order)."""
    prediction = model.predict(_substituted(rows, model.baseline_row(), len(model.fields)))
    width = len(model.fields) + 1
    explanations = []
    for j in range(len(rows)):
        start = 1 + j * width
        if prediction.probabilities is None:
            outputs, explains = prediction.values, "prediction"
        else:
            label = str(prediction.values[start])
            outputs = [p[label] for p in prediction.probabilities]
            explains = f"probability of {label}"
        own, base = float(outputs[start]), float(outputs[0])
        contributions = {
            field.name: own - float(outputs[start + 1 + i]) for i, field in enumerate(model.fields)
        }
        explanations.append(
            {
                "explains": explains,
                "baseline": base,
                "contributions": contributions,
                "unexplained": own - base - sum(contributions.values()),
            }
        )
    return explanations

"""GET /models/{name}/card and /lineage: the served bundle's model card, read from its files.

The card is read from the bundle of the model being served and checked against the sha256 its
(verified) manifest lists, so the card always describes the model that answers predictions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mlops_contract.bundle import CARD_JSON_FILE, CARD_MARKDOWN_FILE
from serving.errors import ApiError
from serving.model import LoadedModel
from serving.store import champion_asset

MARKDOWN = "text/markdown; charset=utf-8"


def bundle_file(models_dir: Path, model: LoadedModel, name: str) -> bytes:
    """One file of the served bundle, verified; 404 when the bundle has none, 503 when damaged."""
    expected = model.manifest.get("files", {}).get(name)
    if expected is None:
        raise ApiError(
            404,
            f"model {model.name!r} version {model.version} (bundle {model.bundle_id}) has no "
            f"model card: it was published before cards existed; materialize the Dagster asset "
            f"`{champion_asset(model.dataset)}` to publish one",
        )
    path = models_dir / model.dataset / "bundles" / model.bundle_id / name
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ApiError(503, f"{path}: cannot read the served bundle's card: {exc}") from None
    if hashlib.sha256(content).hexdigest() != expected:
        raise ApiError(503, f"{path}: sha256 mismatch with the served bundle's manifest")
    return content


def wants_json(accept: str | None) -> bool:
    return bool(accept) and "application/json" in accept


def card_body(models_dir: Path, model: LoadedModel, as_json: bool, live: dict | None) -> bytes:
    """The bundle's card, with the served version's latest live performance (live.json) when
    the pipeline has published one: the card is written at promotion, the live part after."""
    body = bundle_file(models_dir, model, CARD_JSON_FILE if as_json else CARD_MARKDOWN_FILE)
    if live is None:
        return body
    if as_json:
        return json.dumps({**json.loads(body), "live_performance": live}).encode()
    return body.rstrip(b"\n") + b"\n\n" + live_markdown(live).encode()


def live_markdown(live: dict) -> str:
    realized, estimated = live["metrics"], live.get("estimated", {})
    metrics = sorted(set(realized) | set(estimated))
    coverage = "" if live.get("coverage") is None else f"{live['coverage']:.0%}"
    head = ["served", "labelled", "coverage"]
    values = [str(live.get("served", "")), str(live["labelled"]), coverage]
    for metric in metrics:
        head += [metric, f"estimated {metric}"]
        values += [
            _number(live["metrics"].get(metric)),
            _number(live.get("estimated", {}).get(metric)),
        ]
    return "\n".join(
        [
            f"## Live performance ({live['day']}, UTC)",
            "",
            "The day's served requests of this version: realized on those with a label, "
            "estimated from calibrated probabilities on all (classifiers).",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
            "| " + " | ".join(values) + " |",
            "",
        ]
    )


def _number(value) -> str:
    return "" if value is None else f"{value:.4f}"


def lineage(models_dir: Path, model: LoadedModel) -> dict[str, Any]:
    """The card's lineage, led by the served bundle: its id and the sha256 of its files."""
    card = json.loads(bundle_file(models_dir, model, CARD_JSON_FILE))
    return {
        "model": model.name,
        "version": model.version,
        "bundle_id": model.bundle_id,
        "bundle_files": model.manifest.get("files", {}),
        **card["lineage"],
    }

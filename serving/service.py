"""The prediction service behind the HTTP routes: model lookup, parsing, validation, scoring."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import msgspec

from mlops_contract.bundle import CARD_JSON_FILE, DRIFT_FILE, LIVE_FILE, read_regular
from mlops_contract.location import open_location
from mlops_contract.record import inputs_from_fields
from mlops_contract.validation import FieldError, record_from_query, validate_body
from serving.batcher import MicroBatcher
from serving.config import ServingConfig
from serving.errors import MAX_LISTED_ERRORS, ApiError
from serving.explain import explain_rows
from serving.feedback import Labels, validate_feedback
from serving.history import SeriesHistory
from serving.integrity import remove_stale_staging
from serving.logs import AccessLog
from serving.metrics import Metrics, multiprocess
from serving.mirror import RemoteMirror
from serving.model import LoadedModel, Prediction
from serving.prediction_log import JsonLinesLog, Served
from serving.scoring import ScoringFormatError, records_from, rename_columns
from serving.shadow import Challengers, ShadowScorer, shadows
from serving.shadow_process import ShadowProcess
from serving.store import ModelStore, Slot, champion_asset

log = logging.getLogger("serving.service")
MAX_JSON_DEPTH = 32  # valid bodies nest at most 4 deep
GIL_SWITCH_INTERVAL_S = 0.0005
UNSCORABLE = (
    "the model's arithmetic overflows on this value (far outside the data it was trained on)"
)


def _limit_native_threads() -> None:
    # one BLAS/OpenMP thread per model call: parallelism comes from batching, not from
    # oversubscribing two cores with a thread team per request
    import sklearn
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    # per-call parameter checks repeat what fitting already checked; they do not touch values
    sklearn.set_config(skip_parameter_validation=True)


def parse_json(raw: bytes) -> Any:
    """Strict JSON; NaN/Infinity literals and overflowing numbers parse (as non-finite floats)
    only so that validation can name the field that holds them."""
    if not raw.strip():
        raise ApiError(400, "empty body: send a JSON object or a list of objects")
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise _too_deep() from None
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"malformed JSON: the body is not UTF-8 ({exc.reason})") from None
    except msgspec.DecodeError as strict_error:
        try:
            return json.loads(raw)
        except RecursionError:
            raise _too_deep() from None
        except ValueError:
            raise ApiError(400, f"malformed JSON: {strict_error}") from None


def _too_deep() -> ApiError:
    return ApiError(400, f"malformed JSON: nested deeper than {MAX_JSON_DEPTH} levels")


def check_depth(body: Any) -> None:
    """400 when `body` nests deeper than MAX_JSON_DEPTH; O(size), stops at the first too-deep
    value. Only needed on the error path: a body that validates is at most 4 deep."""
    level = [body]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for value in level
            if isinstance(value, list | dict)
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, list | dict)
        ]
        if not level:
            return
    raise _too_deep()


def _unprocessable(body: Any, errors: list[FieldError]) -> ApiError:
    check_depth(body)
    fields = sorted({error.field for error in errors})
    names = ", ".join(fields[:MAX_LISTED_ERRORS])
    if len(fields) > MAX_LISTED_ERRORS:
        names += f" and {len(fields) - MAX_LISTED_ERRORS} more"
    detail = f"invalid input in {len(fields)} field(s): {names}"
    if len(errors) > MAX_LISTED_ERRORS:
        detail += f"; {len(errors) - MAX_LISTED_ERRORS} of {len(errors)} errors not listed"
    return ApiError(422, detail, errors)


def _observation(series, fields, row: list) -> dict:
    values = {field.column: value for field, value in zip(fields, row, strict=True)}
    entity = values.pop(series.entity) if series.entity else None
    return {
        "entity": None if entity is None else str(entity),
        "day": values.pop(series.time),
        "values": values,
    }


class PredictionService:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.access_log = AccessLog()
        # the model gauges are read from the store after every refresh; only failures are counted
        self.store = ModelStore(
            config.models_dir, on_failed=self._failed, verify_interval=config.verify_interval
        )
        self.prediction_log = JsonLinesLog(
            config.predictions_dir,
            config.log_queue_size,
            config.log_flush_interval,
            on_drop=self.metrics.prediction_log_dropped.inc,
        )
        self._histories: dict[tuple[str, str], SeriesHistory] = {}
        self._histories_lock = threading.Lock()
        self.feedback_log = JsonLinesLog(
            config.feedback_dir,
            config.log_queue_size,
            config.log_flush_interval,
            on_drop=self.metrics.feedback_dropped.inc,
        )
        self.challengers = Challengers(config.models_dir, config.verify_interval)
        self.shadow = ShadowScorer(
            config.models_dir,
            ShadowProcess(config.shadow_dir, config.log_queue_size),
            config.shadow_share,
            config.log_queue_size,
            on_dropped=self.metrics.shadow_dropped.inc,
            on_scored=lambda name, version, rows: self.metrics.shadow_predictions.labels(
                name, version
            ).inc(rows),
        )
        self._model_pool = ThreadPoolExecutor(
            max_workers=max(1, min(4, os.cpu_count() or 1)),
            thread_name_prefix="predict",
            initializer=_limit_native_threads,
        )
        self._load_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reload")
        self.mirror = (
            RemoteMirror(open_location(config.models_url), config.models_dir)
            if config.models_url
            else None
        )
        self._batchers: dict[str, MicroBatcher] = {}
        self._reloader: asyncio.Task | None = None

    # lifecycle

    async def start(self) -> None:
        self.access_log.start()
        self.prediction_log.start()
        self.feedback_log.start()
        self.shadow.start()
        # the model threads and the log threads hold the GIL for up to the switch interval
        # each time the event loop wants it back; the default 5 ms made the p99 latency
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        remove_stale_staging(self.config.models_dir)
        self.refresh()
        # the libraries and models loaded so far live as long as the process; leaving them to
        # the cyclic GC made every full collection an ~80 ms pause in the middle of requests
        gc.freeze()
        self._reloader = asyncio.create_task(self._reload_forever())

    async def stop(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
        self.prediction_log.close()
        self.feedback_log.close()
        self.shadow.close()  # the shadow process scores and logs what is queued, then stops
        self.access_log.close()
        self._model_pool.shutdown(wait=True)
        self._load_pool.shutdown(wait=False)
        if multiprocess():
            from prometheus_client import multiprocess as shared

            shared.mark_process_dead(os.getpid())  # drop this worker's live gauges

    def refresh(self) -> None:
        if self.mirror is not None:
            self.mirror.sync()
        self.store.refresh()
        slots = self.store.slots()
        if self.config.shadow_share > 0:
            self.challengers.refresh([slot.dataset for slot in slots])
        self.metrics.show_models(
            {m.name: (m.version, m.manifest.get("promoted_at")) for m in self.store.loaded()}
        )
        self.metrics.show_load_errors({s.dataset: s.error is not None for s in slots})
        self.metrics.show_damage(
            {s.dataset: s.damage is not None for s in slots},
            {s.dataset: s.pointer_error is not None for s in slots},
        )
        models_dir = self.config.models_dir
        self.metrics.show_drift(read_published(models_dir, slots, DRIFT_FILE, "features"))
        self.metrics.show_live(read_published(models_dir, slots, LIVE_FILE, "metrics"))
        self.metrics.prediction_log_held.set(self.prediction_log.held)

    async def _reload_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.reload_interval)
            try:
                await loop.run_in_executor(self._load_pool, self.refresh)
            except Exception:
                log.exception("model reload failed")

    def _failed(self, dataset: str, error: str) -> None:
        self.metrics.model_failed(dataset)

    # lookups

    def sole_model(self) -> str:
        """The name `/predict` and `/invocations` mean: the one model served, else a 404 that
        names the routes of each."""
        names = [slot.dataset for slot in self.store.slots() if slot.has_pointer]
        if len(names) == 1:
            return names[0]
        routes = [f"/models/{name}/predict" for name in names]
        raise ApiError(
            404,
            f"/predict names no model and {len(names)} are served: use one of {routes}"
            if names
            else f"no model is served yet; {_materialize_hint(['<ds>'])}",
        )

    def resolve(self, name: str) -> LoadedModel:
        slot = self.store.slot(name)
        if slot is not None and slot.model is not None:
            return slot.model
        if slot is not None:
            reason = slot.error or "it has no champion bundle yet"
            raise ApiError(
                503, f"model {name!r} is not loaded ({reason}); {_materialize_hint([name])}"
            )
        served = [model.name for model in self.store.loaded()]
        if served:
            raise ApiError(404, f"unknown model {name!r}; served models: {served}")
        raise ApiError(503, f"no model is loaded; {_materialize_hint([name])}")

    def describe(self, name: str) -> dict:
        slot = self.store.slot(name)
        if slot is None:
            served = [s.dataset for s in self.store.slots()]
            raise ApiError(404, f"unknown model {name!r}; known models: {served}")
        return self._described(slot)

    def models(self) -> list[dict]:
        return [self._described(slot) for slot in self.store.slots() if slot.has_pointer]

    def _described(self, slot: Slot) -> dict:
        """The slot with its live performance: the live.json the pipeline published, when it
        is about the version being served."""
        info = describe_slot(slot)
        info["live"] = self.live_for(slot.dataset, info["version"])
        return info

    def live_for(self, dataset: str, version: str | None) -> dict | None:
        """The live.json the pipeline published for `dataset`, when it is about `version`."""
        live = self.metrics.state.live.get(dataset)
        return live if live and live.get("version") == version else None

    def readiness(self) -> tuple[bool, dict]:
        ready, body = readiness(self.store.slots())
        logs = {"prediction log": self.prediction_log, "feedback log": self.feedback_log}
        for name, writer in logs.items():
            if ready and writer.write_error:
                held, error = writer.held, writer.write_error
                detail = f"the {name} cannot be written ({held} request(s) held): {error}"
                return False, body | {"status": "not ready", "detail": detail}
        return ready, body

    def feedback(self, name: str, raw: bytes) -> dict:
        """Accept labels for served requests; every one is kept (see serving.feedback)."""
        model = self.resolve(name)
        body = parse_json(raw)
        labels, errors = validate_feedback(body, model.manifest["task"], model.manifest["classes"])
        if errors:
            raise _unprocessable(body, errors)
        self.feedback_log.append(
            Labels(model.dataset, model.name, datetime.now(UTC).isoformat(), labels)
        )
        self.metrics.feedback_labels.labels(model.name).inc(len(labels))
        return {"model": model.name, "accepted": len(labels)}

    # scoring

    async def predict(self, name: str, raw: bytes, context: dict, explain: bool = False) -> dict:
        model = self.resolve(name)
        body = parse_json(raw)
        rows, is_batch, errors = validate_body(body, model.fields)
        if errors:
            raise _unprocessable(body, errors)
        rows = self._with_history(model, rows, body, is_batch)
        records = body if is_batch else [body]
        prediction = await self._score(model, rows, records, context, is_batch)
        answer = _answer(model, prediction, is_batch, context)
        if explain:
            explained = await self._explain(model, rows)
            key = "explanations" if is_batch else "explanation"
            answer[key] = explained if is_batch else explained[0]
        return answer

    async def _explain(self, model: LoadedModel, rows: list[list]) -> list[dict]:

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._model_pool, explain_rows, model, rows)

    async def predict_query(self, name: str, query: bytes, context: dict) -> dict:
        """GET predict: one record as query parameters, validated and answered like JSON."""
        model = self.resolve(name)
        record, errors = record_from_query(query, model.fields)
        rows, _, invalid = validate_body(record, model.fields)
        errors += invalid
        if errors:
            raise _unprocessable(record, errors)
        rows = self._with_history(model, rows, record, is_batch=False)
        prediction = await self._score(model, rows, [record], context, is_batch=False)
        return _answer(model, prediction, False, context)

    async def invocations(self, name: str, raw: bytes, context: dict) -> dict:
        model = self.resolve(name)
        body = parse_json(raw)
        try:
            records = records_from(body)
        except ScoringFormatError as exc:
            check_depth(body)
            raise ApiError(422, str(exc), [FieldError("(body)", str(exc))]) from None
        columns = {field.column: field.name for field in model.fields if field.column != field.name}
        records = rename_columns(records, columns) if columns else records
        rows, _, errors = validate_body(records, model.fields)
        if errors:
            raise _unprocessable(body, errors)
        rows = self._with_history(model, rows, body, is_batch=True)
        prediction = await self._score(model, rows, records, context)
        return {"predictions": prediction.values}

    def _history(self, model: LoadedModel) -> SeriesHistory:
        key = (model.name, model.bundle_id)
        with self._histories_lock:
            if key not in self._histories:
                # a new bundle starts from its own window (and the observations since)
                for older in [k for k in self._histories if k[0] == model.name]:
                    del self._histories[older]
                log_dir = self.config.observations_dir / model.dataset
                self._histories[key] = SeriesHistory(model.series, model.series_window, log_dir)
            return self._histories[key]

    def _with_history(self, model: LoadedModel, rows: list[list], body, is_batch: bool):
        """A series model's rows with the features computed from history; a row without the
        history they need is a 422 naming the time field."""
        if model.series is None:
            return rows
        history, series = self._history(model), model.series
        at = {field.column: index for index, field in enumerate(model.fields)}
        time_field = model.fields[at[series.time]].name
        extended, errors = [], []
        for index, row in enumerate(rows):
            entity = None if series.entity is None else str(row[at[series.entity]])
            values, why = history.features(entity, row[at[series.time]])
            if why:
                where = f"[{index}].{time_field}" if is_batch else time_field
                errors.append(FieldError(where, why.replace("{name}", model.name)))
            else:
                extended.append(row + values)
        if errors:
            raise _unprocessable(body, errors)
        return extended

    def observations(self, name: str, raw: bytes) -> dict:
        """Keep a series' observations (durably, before answering) for its features."""
        model = self.resolve(name)
        if model.series is None:
            raise ApiError(404, f"model {name!r} is not a series model: it keeps no observations")
        series = model.series
        kept = {series.time, series.entity, *series.observed}
        fields = tuple(field for field in model.fields if field.column in kept)
        body = parse_json(raw)
        rows, _, errors = validate_body(body, fields)
        if errors:
            raise _unprocessable(body, errors)
        observed = [_observation(series, fields, row) for row in rows]
        self._history(model).record(observed)
        return {"model": model.name, "accepted": len(observed)}

    async def _score(
        self,
        model: LoadedModel,
        rows: list[list],
        records: list[dict],
        context: dict,
        is_batch: bool = True,
    ) -> Prediction:
        context.update(model=model.name, version=model.version, rows=len(rows))
        started = time.perf_counter()
        try:
            prediction = await self._batcher(model.name).predict(model, rows)
        except Exception as exc:
            log.exception("model %s version %s failed to predict", model.name, model.version)
            raise ApiError(500, f"model {model.name!r} failed to predict: {exc}") from None
        if prediction.unscorable:
            raise await self._unscorable(model, rows, prediction.unscorable, is_batch)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        self.metrics.predictions.labels(model.name, model.version).inc(len(rows))
        served = Served(
            model.dataset,
            model.name,
            model.version,
            context["request_id"],
            datetime.now(UTC).isoformat(),
            records,
            prediction.values,
            prediction.probabilities,
            latency_ms,
        )
        self.prediction_log.append(served)
        challenger = self.challengers.get(model.dataset)
        if challenger is not None and shadows(model, challenger):
            self.shadow.submit(challenger, rows, served)
        return prediction

    async def _unscorable(
        self, model: LoadedModel, rows: list[list], indexes: frozenset[int], is_batch: bool
    ) -> ApiError:
        loop = asyncio.get_running_loop()
        errors = []
        for index in sorted(indexes)[:MAX_LISTED_ERRORS]:
            prefix = f"[{index}]." if is_batch else ""
            names = await loop.run_in_executor(self._model_pool, model.culprits, rows[index])
            for name in names or ["(record)"]:
                errors.append(FieldError(prefix + name, UNSCORABLE))
        detail = f"the model cannot score {len(indexes)} record(s): {UNSCORABLE}"
        return ApiError(422, detail, errors)

    def _batcher(self, name: str) -> MicroBatcher:
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = MicroBatcher(
                self._model_pool,
                self.config.batch_wait_ms / 1000,
                self.config.batch_max_rows,
                on_batch=self._observe_batch,
            )
            self._batchers[name] = batcher
        return batcher

    def _observe_batch(self, model: LoadedModel, rows: int, seconds: float) -> None:
        self.metrics.inference_latency.labels(model.name, model.version).observe(seconds)
        self.metrics.batch_rows.labels(model.name).observe(rows)


def _answer(model: LoadedModel, prediction: Prediction, is_batch: bool, context: dict) -> dict:
    response: dict[str, Any] = {
        "model": model.name,
        "version": model.version,
        "request_id": context["request_id"],
    }
    if is_batch:
        response["predictions"] = prediction.values
        if prediction.probabilities is not None:
            response["probabilities"] = prediction.probabilities
    else:
        response["prediction"] = prediction.values[0]
        if prediction.probabilities is not None:
            response["probabilities"] = prediction.probabilities[0]
    return response


def read_published(models_dir, slots: list[Slot], name: str, key: str) -> dict[str, dict]:
    """Per data set that has one, the document the pipeline published as `<dataset>/<name>`
    (drift.json, live.json: mlops_contract.drift), when its `key` holds a mapping."""
    documents = {}
    for slot in slots:
        try:
            document = json.loads(read_regular(models_dir / slot.dataset / name))
            if isinstance(document, dict) and isinstance(document.get(key), dict):
                documents[slot.dataset] = document
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable %s: %s", slot.dataset, name, exc)
    return documents


def _materialize_hint(datasets: list[str]) -> str:
    assets = ", ".join(f"`{champion_asset(dataset)}`" for dataset in datasets)
    return f"materialize the Dagster asset {assets} to publish a champion"


MANIFEST_FIELDS = (
    "version", "task", "target", "classes", "metrics", "selection_metric", "trained_at",
    "promoted_at", "mlflow_run_id", "model_uri", "data_version", "dagster_run_id", "bundle_id",
    "metric_intervals",
)  # fmt: skip
INPUT_KEYS = ("field", "type", "nullable", "min", "max", "allowed", "description")


def describe_slot(slot: Slot) -> dict:
    info: dict[str, Any] = {"name": slot.dataset, "loaded": slot.model is not None}
    manifest = slot.model.manifest if slot.model else {}
    info["registered_model"] = manifest.get("name")
    info.update({key: manifest.get(key) for key in MANIFEST_FIELDS})
    if info["version"] is not None:
        info["version"] = str(info["version"])
    fields = slot.model.record_fields if slot.model else ()
    info["inputs"] = [{key: rule[key] for key in INPUT_KEYS} for rule in inputs_from_fields(fields)]
    # the record contract as JSON Schema: what the web page builds its form from
    info["input_schema"] = slot.model.input_schema if slot.model else None
    info["loaded_at"] = slot.model.loaded_at if slot.model else None
    info["load_error"] = slot.error
    info["damage"] = slot.damage
    info["fallback_from"] = slot.fallback_from
    info["pointer_error"] = slot.pointer_error
    has_card = CARD_JSON_FILE in manifest.get("files", {})
    info["card"] = f"/models/{slot.dataset}/card" if has_card else None
    return info


def _ready_state(slot: Slot) -> dict:
    state = {
        "loaded": slot.model is not None,
        "version": slot.model.version if slot.model else None,
        "load_error": slot.error,
    }
    # only when set, so the usual answer stays as small as it was
    extra = {
        "damage": slot.damage,
        "pointer_error": slot.pointer_error,
        "fallback_from": slot.fallback_from,
    }
    state.update({key: value for key, value in extra.items() if value is not None})
    return state


def readiness(slots: list[Slot]) -> tuple[bool, dict]:
    """Ready when every data set with a champion pointer has a model loaded (and one exists)
    whose bundle on disk is intact."""
    models = {slot.dataset: _ready_state(slot) for slot in slots if slot.has_pointer or slot.model}
    missing = [name for name, state in models.items() if not state["loaded"]]
    damaged = [
        name for name, state in models.items() if state.get("damage") or state.get("pointer_error")
    ]
    if damaged and not missing:
        reasons = "; ".join(
            f"{name}: {models[name].get('damage') or models[name]['pointer_error']}"
            for name in damaged
        )
        detail = (
            f"bundle damaged on disk (still serving the model in memory): {reasons}; "
            f"{_materialize_hint(damaged)} again"
        )
        return False, {"status": "not ready", "detail": detail, "models": models}
    if missing:
        reasons = "; ".join(
            f"{name}: {models[name]['load_error'] or 'not loaded'}" for name in missing
        )
        detail = f"not loaded: {reasons}; {_materialize_hint(missing)}"
        return False, {"status": "not ready", "detail": detail, "models": models}
    if not models:
        waiting = [slot.dataset for slot in slots] or ["<dataset>"]
        detail = f"no model is loaded; {_materialize_hint(waiting)}"
        return False, {"status": "not ready", "detail": detail, "models": models}
    return True, {"status": "ready", "detail": None, "models": models}

"""The model server's ASGI app: Open Inference Protocol v2, KServe v1, feedback, metrics;
and, next to it on the same loop, the gRPC endpoint (:mod:`.grpc_api`).

One :class:`ModelServer` per worker process. Liveness answers from the first moment; the
model loads in the background (retrying until it verifies) and readiness follows it.
Requests are validated by the pure functions of :mod:`.protocol`, batched by
:mod:`.batching`, and every prediction gets an id that feedback can refer to later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import math
import os
import signal
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from mlops_operator.runtime.server.batching import MicroBatcher, Predictions
from mlops_operator.runtime.server.cli import MULTIPROC_ENV, configure_logging
from mlops_operator.runtime.server.config import ServeConfig
from mlops_operator.runtime.server.drift import DEFAULT_EVERY_SECONDS as DRIFT_REFRESH_SECONDS
from mlops_operator.runtime.server.drift import DriftWindow
from mlops_operator.runtime.server.feedback import (
    PredictionBuffer,
    PredictionIds,
    RollingScore,
    worker_of,
)
from mlops_operator.runtime.server.metrics import ServerMetrics, render
from mlops_operator.runtime.server.model import LoadError, ServedModel, load_model
from mlops_operator.runtime.server.openapi import openapi_document
from mlops_operator.runtime.server.peers import PeerServer, claim_from, socket_path
from mlops_operator.runtime.server.protocol import (
    OUTPUT_PREDICT,
    OUTPUT_PROBA,
    InferRequest,
    Inputs,
    LabelledRows,
    ProtocolError,
    Rows,
    check_range,
    decode_json,
    parse_feedback,
    parse_v1_predict,
    parse_v2_infer,
)
from mlops_operator.runtime.server.table import CATEGORICAL, category_shares, unseen_categories
from mlops_operator.runtime.server.table import check_range as check_table_range
from mlops_operator.runtime.server.tensors import encode, split_body

logger = logging.getLogger(__name__)

SERVER_NAME: Final = "mlops-operator"
EXTENSIONS: Final = ("binary_tensor_data",)
"""Protocol extensions the server implements (see :mod:`.tensors`)."""
HEADER_LENGTH: Final = "Inference-Header-Content-Length"
"""The binary data extension's header: the length of the JSON part of a body."""
MAX_ID_HEADER_ROWS: Final = 100
"""Prediction ids go into the ``X-Prediction-Ids`` header only up to this many rows."""

Handler = Callable[[Request, str], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Inference:
    """The answer to one validated inference request, for either protocol to encode."""

    outputs: tuple[tuple[str, str, list[int], Any], ...]
    """``(name, datatype, shape, values)`` per requested output, in request order; values
    are a flat list or array."""
    ids: list[str]
    """One prediction id per row, for feedback."""


def _server_version() -> str:
    try:
        return package_version(SERVER_NAME)
    except PackageNotFoundError:
        return "unknown"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (numpy arrays included)."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """``{"error": message}``, the error body of both protocols."""
    return json_response({"error": message}, status, headers)


async def read_body(request: Request, limit: int, timeout: float = math.inf) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes,
    and with 408 when it takes longer than ``timeout`` seconds to arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError as exc:
            raise ProtocolError(400, f"invalid Content-Length {declared!r}") from exc
        if length > limit:
            raise ProtocolError(413, f"the request body is {length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(None if math.isinf(timeout) else timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(413, f"the request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError as exc:
        raise ProtocolError(
            408, f"the request body did not arrive within {timeout:g} seconds"
        ) from exc
    return decompress(b"".join(chunks), request.headers.get("content-encoding"), limit)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` decoded from its ``Content-Encoding`` (gzip or deflate, as tritonclient can
    send), refused with 413 once it would exceed ``limit`` bytes and 415 for other codings."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "deflate"):
        raise ProtocolError(
            415, f"unsupported Content-Encoding {encoding!r}; send gzip, deflate or identity"
        )
    # gzip: a gzip header; deflate: the zlib format, as HTTP defines it.
    inflater = zlib.decompressobj(wbits=31 if coding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ProtocolError(400, f"the body is not valid {coding} data: {exc}") from exc
    if len(data) > limit:
        raise ProtocolError(
            413, f"the decompressed request body exceeds the limit of {limit} bytes"
        )
    if not inflater.eof:
        raise ProtocolError(400, f"the body is not valid {coding} data: it ends early")
    return data


class ModelServer:
    """The state of one worker: the model, its batcher, feedback and drift windows, metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.model: ServedModel | None = None
        self.reason = "the model is loading"
        self.ids = PredictionIds(os.getpid())
        self.request_ids = PredictionIds(os.getpid())
        """Request ids when the client sends none: unique like prediction ids, and cheaper
        than a random UUID per request."""
        self.buffer = PredictionBuffer()
        self.registry = CollectorRegistry()
        self.metrics = ServerMetrics(config.name, config.version_label, self.registry)
        self.version = _server_version()
        self._batcher: MicroBatcher | None = None
        self._score: RollingScore | None = None
        self._drift: DriftWindow | None = None
        self._peers: PeerServer | None = None
        self._socket_dir = Path(config.socket_dir)
        self._ready_dir = Path(config.run_dir) / "ready"
        self.draining = False
        """Set on SIGTERM: readiness answers 503 while requests are still served."""
        self._openapi: bytes | None = None

    # ------------------------------------------------------------------ lifecycle

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start loading the model and listening for peers; clean up on shutdown."""
        self._drain_on_sigterm()
        loader = asyncio.create_task(self._load_until_ready(), name="model-loader")
        refresher = asyncio.create_task(self._refresh_drift(), name="drift-refresher")
        if self.config.workers > 1:
            self._peers = PeerServer(
                socket_path(self._socket_dir, self.ids.worker), self.buffer.claim
            )
            await self._peers.start()
        grpc_server = None
        try:
            if self.config.grpc_port:
                # Imported here: the generated protobuf module registers the `inference`
                # package in the process-wide descriptor pool, which only the server needs.
                from mlops_operator.runtime.server.grpc_api import start_grpc_server

                grpc_server = await start_grpc_server(self)
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
            for task in (loader, refresher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self._batcher is not None:
                await self._batcher.close()
            if self._peers is not None:
                await self._peers.close()
            (self._ready_dir / str(os.getpid())).unlink(missing_ok=True)
            if os.environ.get(MULTIPROC_ENV):
                from prometheus_client import multiprocess

                # Drops this worker's live gauges from the sums of the others.
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def _drain_on_sigterm(self) -> None:
        """Make SIGTERM start a drain: readiness answers 503 at once (so the Service's
        endpoints drop this pod) while requests are still served for ``drain_seconds``;
        only then is uvicorn's own handler called, which stops listening and shuts down.
        A second SIGTERM shuts down at once."""
        delay = self.config.drain_seconds
        if delay <= 0 or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        shutdown = signal.getsignal(signal.SIGTERM)
        if not callable(shutdown):
            return

        def stop() -> None:
            logger.info("drained for %g s; shutting down", delay)
            shutdown(signal.SIGTERM, None)

        def begin() -> None:
            logger.info("SIGTERM: not ready from now on, serving for %g s more", delay)
            loop.call_later(delay, stop)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:
                shutdown(signum, frame)
                return
            self.draining = True
            loop.call_soon_threadsafe(begin)

        signal.signal(signal.SIGTERM, on_sigterm)

    async def _refresh_drift(self) -> None:
        """Recompute drift every few seconds when rows arrived since the last computation."""
        while True:
            await asyncio.sleep(DRIFT_REFRESH_SECONDS)
            drift, batcher = self._drift, self._batcher
            if drift is None or batcher is None:
                continue
            psi = await batcher.on_predict_thread(drift.refresh)
            if psi is not None:
                self.metrics.drift(psi, drift.rows)

    async def _load_until_ready(self) -> None:
        config = self.config
        last = None
        while True:
            try:
                model = await asyncio.to_thread(
                    load_model, config.model_uri, config.cache_path, config.digest
                )
            except LoadError as exc:
                reason = exc.message
            except Exception as exc:
                logger.exception("loading the model failed unexpectedly")
                reason = f"unexpected {type(exc).__name__}: {exc}"
            else:
                self._activate(model)
                return
            self.reason = f"model {config.name} is not loaded: {reason}"
            if reason != last:
                logger.error("%s; retrying every %g s", self.reason, config.load_retry_seconds)
                last = reason
            await asyncio.sleep(config.load_retry_seconds)

    def _activate(self, model: ServedModel) -> None:
        info = model.info
        regression = not info.is_classifier
        self._score = RollingScore(regression=regression, classes=info.classes or ())
        categories = {
            c.name: shares
            for c in model.columns or ()
            if c.kind == CATEGORICAL
            and c.used
            and (shares := category_shares(model.schema, c.name)) is not None
        }
        if model.reference is not None or categories:
            self._drift = DriftWindow(model.reference or {}, info.features, categories=categories)
        inline_rows = model.inline_rows(self.config.max_batch_size)
        self._batcher = MicroBatcher(
            model.predict,
            max_batch_size=self.config.max_batch_size,
            max_delay=self.config.max_batch_delay,
            on_batch=self._on_batch,
            inline_rows=inline_rows,
        )
        self._batcher.start()
        self.metrics.model_loaded(regression=regression, drift=info.drift_unavailable is None)
        # Everything loaded so far (scikit-learn, NumPy, the model) lives as long as the
        # process: out of the collector's sight, a full collection no longer walks it and
        # stalls every request in flight (~80 ms, once a second or so under load).
        gc.collect()
        gc.freeze()
        self.model = model
        self.reason = ""
        self._ready_dir.mkdir(exist_ok=True)
        (self._ready_dir / str(os.getpid())).touch()
        logger.info(
            "model %s ready: %s %s, %d features (%s), predict path %s%s",
            self.config.name,
            type(model.estimator).__name__,
            info.task,
            len(info.features),
            info.digest,
            model.predict_path,
            f" (batches up to {inline_rows} rows on the event loop)" * bool(inline_rows),
        )

    def _on_batch(self, rows: Inputs, predictions: Predictions) -> None:
        """Bookkeeping after each predict call; runs where the batch was predicted (the
        prediction thread, or the event loop for a small batch while that thread is idle)."""
        if self.model is not None and self.model.columns is not None:
            self.metrics.unseen(unseen_categories(rows, self.model.columns))
        if self.model is not None and self.model.info.is_classifier:
            classes, counts = np.unique(predictions, return_counts=True)
            by_class: Iterable[tuple[str, int]] = zip(
                (str(c) for c in classes.tolist()), counts.tolist(), strict=True
            )
        else:
            by_class = [("", len(predictions))]
        self.metrics.batch(len(rows), by_class)
        if self._drift is not None:
            psi = self._drift.add(rows)
            if psi is not None:
                self.metrics.drift(psi, self._drift.rows)

    # ------------------------------------------------------------------ helpers

    def _check_model(self, request: Request) -> None:
        self.check_model(request.path_params["name"], request.path_params.get("version"))

    def check_model(self, name: str, version: str | None) -> None:
        """Refuse (404) a model name or version this server does not serve."""
        if name != self.config.name:
            raise ProtocolError(
                404, f"model {name!r} is not served here; this server serves {self.config.name!r}"
            )
        if version is not None and version != self.config.model_version:
            served = (
                f"version {self.config.model_version}"
                if self.config.model_version
                else "an unversioned model"
            )
            raise ProtocolError(
                404, f"model {name!r} has no version {version!r}; it serves {served}"
            )

    def not_ready(self) -> str | None:
        """Why the server is not ready, or ``None`` when it is.

        With several workers a probe reaches any one of them: the server is ready only when
        every worker has loaded the model, or traffic would reach one that answers 503.
        Each loaded worker leaves a marker named after its pid in the run directory.
        """
        if self.draining:
            return "the server is shutting down"
        if self.model is None:
            return self.reason
        if self.config.workers == 1:
            return None
        loaded = sum(1 for marker in self._ready_dir.iterdir() if _alive(marker.name))
        if loaded < self.config.workers:
            return f"{loaded} of {self.config.workers} workers have loaded the model"
        return None

    def ready_model(self) -> tuple[ServedModel, MicroBatcher]:
        """The loaded model and its batcher; 503 while the model is not loaded."""
        if self.model is None or self._batcher is None:
            raise ProtocolError(503, self.reason)
        return self.model, self._batcher

    def _remember(self, values: list[Any]) -> list[str]:
        ids = self.ids.next(len(values))
        self.buffer.add(ids, values)
        return ids

    def _headers(self, request_id: str, ids: list[str]) -> dict[str, str]:
        headers = {"X-Request-Id": request_id}
        if len(ids) <= MAX_ID_HEADER_ROWS:
            headers["X-Prediction-Ids"] = ",".join(ids)
        return headers

    async def _claim(self, ids: Iterable[str]) -> dict[str, Any]:
        """Claim predictions by id from this worker's buffer and the other workers'."""
        by_worker: dict[str, list[str]] = {}
        for pid in ids:
            worker = worker_of(pid)
            if worker is not None:
                by_worker.setdefault(worker, []).append(pid)
        found = self.buffer.claim(by_worker.pop(self.ids.worker, []))
        if by_worker and self.config.workers > 1:
            replies = await asyncio.gather(
                *(
                    claim_from(socket_path(self._socket_dir, worker), worker_ids)
                    for worker, worker_ids in by_worker.items()
                )
            )
            for reply in replies:
                found.update(reply)
        return found

    async def predict_rows(
        self, rows: Inputs, with_proba: bool, *, batched: bool = True
    ) -> tuple[npt.NDArray[Any], Rows | None]:
        """Predictions (and probabilities if asked) for validated rows (or a table of raw
        rows): in some batch, or alone for feedback rows. Values beyond what the model takes
        (see :func:`.model.check_inputs`) are a 400, and outputs that are not finite numbers
        a 422 (no client gets ``null`` as a prediction)."""
        model, batcher = self.ready_model()
        if model.input_limit < math.inf:
            if model.columns is not None:
                check_table_range(rows, model.columns, model.input_limit)
            else:
                check_range(rows, model.info.features, model.input_limit)
        if batched:
            predictions, proba = await batcher.submit(rows, with_proba)
        else:
            predictions, proba = await batcher.predict_unbatched(rows), None
        check_outputs(predictions, proba)
        return predictions, proba

    async def predict(self, parsed: InferRequest) -> Inference:
        """Predict a validated request's rows (in some batch) and remember the predictions
        for feedback; the outputs it asked for."""
        model, _ = self.ready_model()
        predictions, proba = await self.predict_rows(parsed.rows, OUTPUT_PROBA in parsed.outputs)
        values = predictions.tolist()
        ids = self._remember(values)
        datatype = model.info.predict_datatype
        outputs: list[tuple[str, str, list[int], Any]] = []
        for name in parsed.outputs:
            if name == OUTPUT_PREDICT:
                data = [str(v) for v in values] if datatype == "BYTES" else values
                outputs.append((name, datatype, [len(values)], data))
            elif proba is not None:
                outputs.append((name, "FP64", list(proba.shape), proba.reshape(-1)))
        return Inference(tuple(outputs), ids)

    def server_metadata_doc(self) -> dict[str, Any]:
        """The server's metadata (``GET /v2``, ServerMetadata)."""
        return {"name": SERVER_NAME, "version": self.version, "extensions": list(EXTENSIONS)}

    def model_metadata_doc(self) -> dict[str, Any]:
        """The model's metadata (``GET /v2/models/{name}``, ModelMetadata); 503 until the
        model is loaded."""
        model, _ = self.ready_model()
        info = model.info
        outputs: list[dict[str, Any]] = [
            {"name": OUTPUT_PREDICT, "datatype": info.predict_datatype, "shape": [-1]}
        ]
        if model.has_proba:
            outputs.append(
                {
                    "name": OUTPUT_PROBA,
                    "datatype": "FP64",
                    "shape": [-1, len(model.classes)],
                    # Column k of predict_proba is the probability of classes[k].
                    "parameters": {"classes": list(model.classes)},
                }
            )
        inputs: list[dict[str, Any]]
        if model.columns is None:
            inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, len(info.features)]}]
        else:
            inputs = [
                {
                    "name": c.name,
                    "datatype": c.datatype,
                    "shape": [-1],
                    "parameters": {"kind": c.kind, "nullable": c.nullable, "used": c.used},
                }
                for c in model.columns
            ]
        return {
            "name": self.config.name,
            "versions": [self.config.model_version] if self.config.model_version else [],
            "platform": "sklearn",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {
                "task": info.task,
                "features": ",".join(info.features),
                "manifest": info.from_manifest,
                "drift_available": info.drift_unavailable is None,
                "drift_unavailable_reason": info.drift_unavailable or "",
                # An exact compiled path (runtime/server/fastpath.py), or sklearn and why.
                "predict_path": model.predict_path,
                "predict_path_reason": model.predict_path_reason,
            },
        }

    async def _inference(self, request: Request, protocol: str, handler: Handler) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or self.request_ids.next(1)[0]
        try:
            response = await handler(request, request_id)
        except ProtocolError as exc:
            response = error_response(exc.status, exc.message, {"X-Request-Id": request_id})
        except Exception as exc:
            logger.exception("prediction failed (request %s)", request_id)
            response = error_response(
                500, f"prediction failed: {type(exc).__name__}: {exc}", {"X-Request-Id": request_id}
            )
        self.metrics.request(protocol, response.status_code, time.perf_counter() - started)
        return response

    # ------------------------------------------------------------------ v2

    async def server_metadata(self, request: Request) -> Response:
        """``GET /v2``."""
        return json_response(self.server_metadata_doc())

    async def live(self, request: Request) -> Response:
        """``GET /v2/health/live``: the process answers."""
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        """``GET /v2/health/ready``: 200 once the model is loaded and verified (by every
        worker), else 503 with the reason."""
        reason = self.not_ready()
        if reason is not None:
            return json_response({"ready": False, "error": reason}, 503)
        return json_response({"ready": True})

    async def model_ready(self, request: Request) -> Response:
        """``GET /v2/models/{name}[/versions/{v}]/ready``."""
        try:
            self._check_model(request)
        except ProtocolError as exc:
            return error_response(exc.status, exc.message)
        return await self.ready(request)

    async def model_metadata(self, request: Request) -> Response:
        """``GET /v2/models/{name}[/versions/{v}]``."""
        try:
            self._check_model(request)
            return json_response(self.model_metadata_doc())
        except ProtocolError as exc:
            return error_response(exc.status, exc.message)

    async def infer(self, request: Request) -> Response:
        """``POST /v2/models/{name}[/versions/{v}]/infer``."""
        return await self._inference(request, "v2", self._infer)

    async def _infer(self, request: Request, request_id: str) -> Response:
        self._check_model(request)
        model, _ = self.ready_model()
        body = await read_body(request, self.config.max_body_bytes, self.config.body_timeout)
        header, binary = split_body(body, request.headers.get(HEADER_LENGTH))
        parsed = parse_v2_infer(
            decode_json(header),
            model.info.features,
            model.output_names,
            allow_nan=model.nullable,
            binary=binary,
            columns=model.columns,
        )
        result = await self.predict(parsed)
        outputs: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for name, datatype, shape, values in result.outputs:
            output: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
            if name in parsed.binary_outputs:
                chunk = encode(datatype, values)
                output["parameters"] = {"binary_data_size": len(chunk)}
                chunks.append(chunk)
            else:
                output["data"] = values
            outputs.append(output)
        doc: dict[str, Any] = {"model_name": self.config.name}
        if self.config.model_version:
            doc["model_version"] = self.config.model_version
        doc["id"] = parsed.id or request_id
        doc["parameters"] = {"prediction_ids": result.ids}
        doc["outputs"] = outputs
        headers = self._headers(request_id, result.ids)
        if not chunks:
            return json_response(doc, headers=headers)
        json_part = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        headers[HEADER_LENGTH] = str(len(json_part))
        return Response(
            b"".join([json_part, *chunks]), media_type="application/octet-stream", headers=headers
        )

    # ------------------------------------------------------------------ v1

    async def v1_models(self, request: Request) -> Response:
        """``GET /v1/models``."""
        return json_response({"models": [self.config.name]})

    async def v1_model(self, request: Request) -> Response:
        """``GET /v1/models/{name}``: 200 when ready, 503 while not."""
        try:
            self._check_model(request)
        except ProtocolError as exc:
            return error_response(exc.status, exc.message)
        reason = self.not_ready()
        body: dict[str, Any] = {"name": self.config.name, "ready": reason is None}
        if reason is not None:
            body["error"] = reason
        return json_response(body, 200 if reason is None else 503)

    async def v1_predict(self, request: Request) -> Response:
        """``POST /v1/models/{name}:predict``."""
        return await self._inference(request, "v1", self._v1_predict)

    async def _v1_predict(self, request: Request, request_id: str) -> Response:
        self._check_model(request)
        model, _ = self.ready_model()
        doc = decode_json(
            await read_body(request, self.config.max_body_bytes, self.config.body_timeout)
        )
        rows = parse_v1_predict(
            doc, model.info.features, allow_nan=model.nullable, columns=model.columns
        )
        predictions, _ = await self.predict_rows(rows, False)
        values = predictions.tolist()
        ids = self._remember(values)
        return json_response(
            {"predictions": values, "prediction_ids": ids},
            headers=self._headers(request_id, ids),
        )

    # ------------------------------------------------------------------ feedback

    async def feedback(self, request: Request) -> Response:
        """``POST /v1/models/{name}/feedback``: ground truth for earlier predictions (by id)
        or for rows sent along; updates the rolling window and answers this worker's online
        accuracy and macro precision/recall/F1 (or MAE, RMSE and R²)."""
        self._check_model(request)
        model, _ = self.ready_model()
        score = self._score
        if score is None:
            raise ProtocolError(503, self.reason)
        doc = decode_json(
            await read_body(request, self.config.max_body_bytes, self.config.body_timeout)
        )
        parsed = parse_feedback(
            doc,
            model.info.features,
            regression=not model.info.is_classifier,
            allow_nan=model.nullable,
            columns=model.columns,
        )
        unknown: list[str] = []
        if isinstance(parsed, LabelledRows):
            predictions, _ = await self.predict_rows(parsed.rows, False, batched=False)
            predicted: list[Any] = predictions.tolist()
            labels: list[Any] = list(parsed.labels)
        else:
            found = await self._claim(parsed.ids)
            predicted, labels = [], []
            missing = object()
            for pid, label in zip(parsed.ids, parsed.labels, strict=True):
                value = found.pop(pid, missing)
                if value is missing:
                    unknown.append(pid)
                else:
                    predicted.append(value)
                    labels.append(label)
        scores = score.add(predicted, labels)
        self.metrics.feedback(scores, score)
        body: dict[str, Any] = {"accepted": len(scores), "unknown_ids": unknown}
        body.update(score.summary())
        body["samples"] = score.samples
        return json_response(body)

    # ------------------------------------------------------------------ metrics

    async def prometheus(self, request: Request) -> Response:
        """``GET /metrics``: every worker's metrics (read from the multiprocess files)."""
        text = await asyncio.to_thread(render, self.registry)
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the OpenAPI document of the HTTP endpoints, for this
        server's model name."""
        if self._openapi is None:
            self._openapi = orjson.dumps(
                openapi_document(self.config.name, self.config.model_version, self.version)
            )
        return Response(self._openapi, media_type="application/json")

    def guarded(self, endpoint: Endpoint) -> Endpoint:
        """``endpoint``, answering every error with a JSON body: a refused request
        (:class:`ProtocolError`) with its status, anything else with a logged 500. Nothing
        escapes to uvicorn, which would close the connection (and reset the client's next
        request on it). While draining, each answer asks the client to reconnect, so
        keep-alive clients move to a pod that is not shutting down."""

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            try:
                response = await endpoint(request)
            except ProtocolError as exc:
                response = error_response(exc.status, exc.message)
            except ClientDisconnect:
                response = error_response(400, "the client went away")
            except Exception as exc:
                logger.exception("%s %s failed", request.method, request.url.path)
                response = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            if self.draining:
                response.headers["Connection"] = "close"
            return response

        return guarded


def check_outputs(predictions: npt.NDArray[Any], proba: Rows | None) -> None:
    """Refuse (422) predictions or probabilities that are not finite numbers: the model
    overflowed on an input far outside what it was trained on."""
    for what, values in (("prediction", predictions), ("class probabilities", proba)):
        if values is None or values.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ProtocolError(
                422,
                f"the model's {what} for row {row} is not a finite number: the input is "
                "outside the range in which this model computes one",
            )


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        message = (
            f"no route for {request.method} {request.url.path}"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return error_response(exc.status_code, message, dict(exc.headers or {}))
    raise exc


class ServingApp(Starlette):
    """Starlette, with the hot paths dispatched before its middleware and router: a request
    to exactly one of :attr:`hot` (method, path) pairs — the served model's inference and
    feedback URLs — goes straight to its (guarded) endpoint with its path parameters. That
    skips two middleware layers and up to a dozen route regexes per request, the largest
    per-request cost left beside a bare ASGI app. Every other request, and every request
    under a root path, takes Starlette's way, which answers them the same."""

    def __init__(self, hot: dict[tuple[str, str], tuple[Endpoint, dict[str, str]]], **kw: Any):
        super().__init__(**kw)
        self.hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            hit = self.hot.get((scope["method"], scope["path"]))
            if hit is not None:
                endpoint, params = hit
                scope["app"] = self
                scope["path_params"] = params
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _hot_paths(
    config: ServeConfig, endpoints: dict[str, Endpoint]
) -> dict[tuple[str, str], tuple[Endpoint, dict[str, str]]]:
    """The (method, path) of each route in ``endpoints`` for the served model's name (and
    version, when it has one), with the path parameters the route would have matched."""
    name, version = config.name, config.model_version
    hot: dict[tuple[str, str], tuple[Endpoint, dict[str, str]]] = {}
    for template, endpoint in endpoints.items():
        params = {"name": name}
        if "{version}" in template:
            if not version:
                continue
            params["version"] = version
        path = template.replace("{name}", name).replace("{version}", version or "")
        hot[("POST", path)] = (endpoint, params)
    return hot


def build_app(config: ServeConfig) -> Starlette:
    """The ASGI app serving ``config``'s model."""
    server = ModelServer(config)
    get, post = ["GET"], ["POST"]
    endpoints = [
        ("/v2", server.server_metadata, get),
        ("/v2/health/live", server.live, get),
        ("/v2/health/ready", server.ready, get),
        ("/v2/models/{name}", server.model_metadata, get),
        ("/v2/models/{name}/versions/{version}", server.model_metadata, get),
        ("/v2/models/{name}/ready", server.model_ready, get),
        ("/v2/models/{name}/versions/{version}/ready", server.model_ready, get),
        ("/v2/models/{name}/infer", server.infer, post),
        ("/v2/models/{name}/versions/{version}/infer", server.infer, post),
        ("/v1/models", server.v1_models, get),
        ("/v1/models/{name}:predict", server.v1_predict, post),
        ("/v1/models/{name}/feedback", server.feedback, post),
        ("/v1/models/{name}", server.v1_model, get),
        ("/metrics", server.prometheus, get),
        ("/openapi.json", server.openapi, get),
    ]
    guarded = {path: server.guarded(endpoint) for path, endpoint, _ in endpoints}
    routes = [Route(path, guarded[path], methods=methods) for path, _, methods in endpoints]
    hot = [
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}:predict",
        "/v1/models/{name}/feedback",
    ]
    app = ServingApp(
        _hot_paths(config, {path: guarded[path] for path in hot}),
        routes=routes,
        lifespan=server.lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.server = server
    return app


def create_app() -> Starlette:
    """The app factory uvicorn calls in each worker; the configuration comes from ``serve``."""
    configure_logging()
    return build_app(ServeConfig.from_env())

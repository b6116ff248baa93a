"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

Runs in every worker process next to the HTTP app, on the same event loop and with the same
:class:`~.app.ModelServer`: one model, one batcher, one buffer of prediction ids (an id from a
gRPC prediction takes feedback over HTTP), one set of metrics (``protocol="grpc"``, ``code``
the HTTP status a failed call would have had, so error-rate monitors see both endpoints).
Workers share the port through SO_REUSEPORT, as they share the HTTP socket.

Inputs come as ``raw_input_contents`` (what tritonclient sends) or in the typed ``contents``
fields; the response answers in kind: raw outputs to a raw request, typed contents to a typed
one. A client's mistake is INVALID_ARGUMENT or NOT_FOUND with the same message HTTP gives.

Only the server imports this module: the generated protobuf module registers the
``inference`` package in the process-wide descriptor pool, where a client library's own copy
(tritonclient's) would collide with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import grpc
from grpc import aio

from mlops_operator.runtime.server.errors import ProtocolError
from mlops_operator.runtime.server.proto import open_inference_pb2 as pb
from mlops_operator.runtime.server.proto import open_inference_pb2_grpc as pb_grpc
from mlops_operator.runtime.server.protocol import (
    OUTPUT_PREDICT,
    InferRequest,
    NanMask,
    Tensor,
    check_datatype,
    check_shape,
    inputs_from_tensors,
    requested_outputs,
    tensor_from_binary,
    tensor_from_data,
)
from mlops_operator.runtime.server.table import Column
from mlops_operator.runtime.server.tensors import BYTES, encode

if TYPE_CHECKING:
    from mlops_operator.runtime.server.app import Inference, ModelServer

logger = logging.getLogger(__name__)

PROTOCOL: Final = "grpc"

CONTENTS_FIELD: Final = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP16": "fp32_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The ``InferTensorContents`` field holding each datatype's elements."""

_STATUS_CODES: Final = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The model's output for this input is no finite number: the input is out of its range.
    422: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code(http_status: int) -> grpc.StatusCode:
    """The gRPC code of a refusal with the HTTP status ``http_status``."""
    return _STATUS_CODES.get(http_status, grpc.StatusCode.INTERNAL)


def parameter_value(parameter: pb.InferParameter) -> Any:
    """An ``InferParameter``'s value (``None`` when unset)."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _parameters(raw: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    return {key: parameter_value(value) for key, value in raw.items()}


def _shape(raw: Sequence[int], where: str) -> tuple[int, ...]:
    if any(d < 0 for d in raw):
        raise ProtocolError(400, f"{where}: 'shape' must hold non-negative integers, got {raw}")
    return check_shape(raw, where)


def _input_tensor(
    tensor: pb.ModelInferRequest.InferInputTensor, index: int, raw: bytes | None, keep: bool
) -> Tensor:
    if not tensor.name:
        raise ProtocolError(400, f"inputs[{index}] needs a 'name' (a non-empty string)")
    where = f"input {tensor.name!r}"
    datatype = check_datatype(tensor.datatype, where)
    shape = _shape(tensor.shape, where)
    filled = [field.name for field, _ in tensor.contents.ListFields()]
    if raw is not None:
        if filled:
            raise ProtocolError(
                400,
                f"{where} has both typed contents ({', '.join(filled)}) and raw_input_contents; "
                "send one",
            )
        return tensor_from_binary(tensor.name, datatype, shape, raw, where, keep=keep)
    field = CONTENTS_FIELD[datatype]
    others = [name for name in filled if name != field]
    if others:
        raise ProtocolError(
            400, f"{where} is {datatype}: its values go in contents.{field}, not {others[0]}"
        )
    values: Sequence[Any] = getattr(tensor.contents, field)
    return tensor_from_data(tensor.name, datatype, shape, list(values), where, raw=keep)


def parse_infer(
    request: pb.ModelInferRequest,
    features: Sequence[str],
    output_names: Sequence[str],
    *,
    allow_nan: NanMask,
    columns: Sequence[Column] | None = None,
) -> InferRequest:
    """Validate a ModelInfer request, as :func:`~.protocol.parse_v2_infer` does over HTTP
    (a table with ``columns``, for a model of raw rows: BYTES contents hold categories)."""
    if not request.inputs:
        raise ProtocolError(400, "'inputs' must hold at least one input tensor")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise ProtocolError(
            400,
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "send one entry per input, in the inputs' order",
        )
    keep = columns is not None
    tensors = [
        _input_tensor(tensor, i, raw[i] if raw else None, keep)
        for i, tensor in enumerate(request.inputs)
    ]
    outputs: tuple[str, ...] = (OUTPUT_PREDICT,)
    if request.outputs:
        outputs, _ = requested_outputs(
            [(o.name, _parameters(o.parameters)) for o in request.outputs],
            output_names,
            binary_default=False,
        )
    rows = inputs_from_tensors(tensors, features, allow_nan=allow_nan, columns=columns)
    return InferRequest(rows=rows, outputs=outputs, id=request.id or None)


def _contents(datatype: str, values: Any) -> pb.InferTensorContents:
    contents = pb.InferTensorContents()
    field = getattr(contents, CONTENTS_FIELD[datatype])
    if datatype == BYTES:
        field.extend(str(v).encode() for v in values)
    else:
        field.extend(values.tolist() if hasattr(values, "tolist") else values)
    return contents


def infer_response(
    server: ModelServer, request_id: str, result: Inference, *, raw: bool
) -> pb.ModelInferResponse:
    """The ModelInfer response: raw output contents when ``raw``, else typed contents."""
    response = pb.ModelInferResponse(
        model_name=server.config.name,
        model_version=server.config.model_version or "",
        id=request_id,
    )
    # One parameter value per key: the ids joined as in the X-Prediction-Ids header.
    response.parameters["prediction_ids"].string_param = ",".join(result.ids)
    for name, datatype, shape, values in result.outputs:
        output = response.outputs.add(name=name, datatype=datatype, shape=shape)
        if raw:
            response.raw_output_contents.append(encode(datatype, values))
        else:
            output.contents.CopyFrom(_contents(datatype, values))
    return response


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The service's methods, answered from one worker's :class:`~.app.ModelServer`."""

    def __init__(self, server: ModelServer) -> None:
        self._server = server

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ServerLiveResponse:
        """The process answers."""
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ServerReadyResponse:
        """Ready once every worker has loaded and verified the model."""
        return pb.ServerReadyResponse(ready=self._server.not_ready() is None)

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ModelReadyResponse:
        """Ready as the server is, for the model (and version) it serves; else NOT_FOUND."""
        await self._check_model(request.name, request.version, context)
        return pb.ModelReadyResponse(ready=self._server.not_ready() is None)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ServerMetadataResponse:
        """The server's name, version and extensions."""
        return pb.ServerMetadataResponse(**self._server.server_metadata_doc())

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ModelMetadataResponse:
        """The model's tensors, as ``GET /v2/models/{name}`` gives them."""
        await self._check_model(request.name, request.version, context)
        try:
            doc = self._server.model_metadata_doc()
        except ProtocolError as exc:
            await context.abort(status_code(exc.status), exc.message)
        return pb.ModelMetadataResponse(
            name=doc["name"],
            versions=doc["versions"],
            platform=doc["platform"],
            inputs=[_tensor_metadata(t) for t in doc["inputs"]],
            outputs=[_tensor_metadata(t) for t in doc["outputs"]],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ModelInferResponse:
        """One inference, batched with the HTTP requests."""
        server = self._server
        started = time.perf_counter()
        request_id = (
            request.id or _metadata(context, "x-request-id") or server.request_ids.next(1)[0]
        )
        status, error = 200, ""
        response = None
        try:
            server.check_model(request.model_name, request.model_version or None)
            model, _ = server.ready_model()
            parsed = parse_infer(
                request,
                model.info.features,
                model.output_names,
                allow_nan=model.nullable,
                columns=model.columns,
            )
            result = await server.predict(parsed)
            response = infer_response(
                server, request_id, result, raw=bool(request.raw_input_contents)
            )
        except ProtocolError as exc:
            status, error = exc.status, exc.message
        except Exception as exc:
            logger.exception("prediction failed (gRPC request %s)", request_id)
            status, error = 500, f"prediction failed: {type(exc).__name__}: {exc}"
        server.metrics.request(PROTOCOL, status, time.perf_counter() - started)
        if response is None:
            await context.abort(status_code(status), error)
        return response

    async def _check_model(
        self, name: str, version: str, context: aio.ServicerContext[Any, Any]
    ) -> None:
        try:
            self._server.check_model(name, version or None)
        except ProtocolError as exc:
            await context.abort(status_code(exc.status), exc.message)


def _tensor_metadata(doc: Mapping[str, Any]) -> pb.ModelMetadataResponse.TensorMetadata:
    """A tensor of the HTTP metadata as gRPC has it (no parameters there)."""
    return pb.ModelMetadataResponse.TensorMetadata(
        name=doc["name"], datatype=doc["datatype"], shape=doc["shape"]
    )


def _metadata(context: aio.ServicerContext[Any, Any], key: str) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None


def listen_address(host: str, port: int) -> str:
    """``host:port`` as gRPC spells it (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc_server(server: ModelServer) -> aio.Server:
    """Serve ``server``'s model over gRPC on its configured port; returns the started server."""
    config = server.config
    if config.grpc_port is None:
        raise ValueError("no gRPC port configured")
    limit = config.max_body_bytes
    grpc_server = aio.server(
        options=[
            # The same body limit as HTTP; gRPC answers RESOURCE_EXHAUSTED beyond it.
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ]
    )
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(server), grpc_server)
    address = listen_address(config.host, config.grpc_port)
    grpc_server.add_insecure_port(address)
    await grpc_server.start()
    logger.info("gRPC endpoint listening on %s", address)
    return grpc_server

"""Tensors as bytes: the binary tensor data of the Open Inference Protocol. Pure.

Both protocols carry tensor elements as raw bytes: HTTP with the binary data extension (a JSON
header of ``Inference-Header-Content-Length`` bytes, then each binary tensor's bytes in
order), gRPC in ``raw_input_contents`` / ``raw_output_contents``. The layout is the same:
elements in row-major order, little-endian, BOOL as one byte each (0 or 1), BYTES as one
4-byte little-endian length followed by that many bytes per element.

Every function raises :class:`~.protocol.ProtocolError` (a 400) naming the tensor and what
did not add up, so a client can fix its request from the message alone.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.server.errors import ProtocolError

NUMERIC_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
"""Each fixed-size datatype and its little-endian numpy dtype."""

BYTES: Final = "BYTES"
_LENGTH: Final = struct.Struct("<I")


def element_count(shape: Sequence[int]) -> int:
    """How many elements a tensor of ``shape`` holds."""
    return math.prod(shape)


def decode(datatype: str, shape: Sequence[int], raw: bytes, where: str) -> npt.NDArray[Any]:
    """The elements of a tensor sent as bytes, shaped as declared.

    Numeric datatypes give a numeric array (a view of ``raw``, not a copy); BYTES gives an
    object array of :class:`bytes`. ``where`` names the tensor in messages
    (e.g. ``"input 'x'"``).
    """
    expected = element_count(shape)
    if datatype == BYTES:
        elements = decode_bytes(raw, where)
        if len(elements) != expected:
            raise ProtocolError(
                400,
                f"{where} has shape {list(shape)} ({expected} values) but its binary data "
                f"holds {len(elements)} BYTES elements",
            )
        array = np.empty(expected, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = NUMERIC_DTYPES.get(datatype)
    if dtype is None:
        raise ProtocolError(400, f"{where} has unsupported datatype {datatype!r}")
    size = expected * dtype.itemsize
    if len(raw) != size:
        raise ProtocolError(
            400,
            f"{where} is {datatype} of shape {list(shape)}: {expected} values of "
            f"{dtype.itemsize} bytes need {size} bytes of binary data, got {len(raw)}",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def decode_bytes(raw: bytes, where: str) -> list[bytes]:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes."""
    elements: list[bytes] = []
    offset, end = 0, len(raw)
    view = memoryview(raw)
    while offset < end:
        if end - offset < _LENGTH.size:
            raise ProtocolError(
                400,
                f"{where}: BYTES element {len(elements)} at byte {offset} is cut short: "
                f"a 4-byte length is needed, {end - offset} bytes remain",
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > end - offset:
            raise ProtocolError(
                400,
                f"{where}: BYTES element {len(elements)} declares {length} bytes but only "
                f"{end - offset} remain",
            )
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    return elements


def encode(datatype: str, values: npt.NDArray[Any] | Sequence[Any]) -> bytes:
    """A tensor's elements as bytes, in row-major order.

    BYTES elements may be :class:`bytes` or anything else, written as its UTF-8 ``str``.
    """
    if datatype == BYTES:
        return encode_bytes(np.asarray(values, dtype=object).ravel().tolist())
    dtype = NUMERIC_DTYPES.get(datatype)
    if dtype is None:
        raise ValueError(f"no binary encoding for datatype {datatype!r}")
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def encode_bytes(elements: Sequence[Any]) -> bytes:
    """BYTES elements, each prefixed by its length (4 bytes, little-endian)."""
    parts: list[bytes] = []
    for element in elements:
        data = element if isinstance(element, bytes) else str(element).encode()
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data of an HTTP request body.

    ``header_length`` is the ``Inference-Header-Content-Length`` header's value; without it
    the whole body is JSON.
    """
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if length < 0:
        raise ProtocolError(
            400,
            f"Inference-Header-Content-Length must be a non-negative integer, "
            f"got {header_length!r}",
        )
    if length > len(body):
        raise ProtocolError(
            400,
            f"Inference-Header-Content-Length is {length} but the request body has only "
            f"{len(body)} bytes",
        )
    return body[:length], body[length:]


class BinaryReader:
    """Hands out consecutive slices of a request's binary data, one per binary input."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._view = memoryview(data)
        self._offset = 0

    def take(self, size: int, where: str) -> bytes:
        """The next ``size`` bytes, for the tensor ``where``."""
        remaining = len(self._data) - self._offset
        if size > remaining:
            raise ProtocolError(
                400,
                f"{where} has binary_data_size {size} but only {remaining} bytes of binary "
                f"data remain after the JSON header and the inputs before it",
            )
        chunk = self._view[self._offset : self._offset + size]
        self._offset += size
        return bytes(chunk)

    def finish(self) -> None:
        """Refuse binary data that no input claimed: the sizes do not add up."""
        extra = len(self._data) - self._offset
        if extra:
            raise ProtocolError(
                400,
                f"the request has {extra} bytes of binary data that no input claims: the "
                "inputs' binary_data_size values add up to less than the data after the "
                "JSON header",
            )

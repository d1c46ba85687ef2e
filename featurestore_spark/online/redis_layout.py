"""Feast's Redis byte layout (docs/semantics.md section 2), as pure, vectorised functions.

Keys, Timestamps and values are built for whole Arrow columns at once and returned as Arrow
binary arrays: fixed-width values and varints through a (rows x width) byte matrix of which each
row keeps its first ``length`` bytes, strings by Arrow's element-wise join. No Python object is
made per value, except for list values. Golden tests compare every function with Feast's own
serializers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# ValueProto field numbers (feast/protos/feast/types/Value.proto)
_SCALAR_FIELD = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4, "DOUBLE": 5, "FLOAT": 6, "BOOL": 7,
                 "UNIX_TIMESTAMP": 8}
_LIST_FIELD = {"BYTES_LIST": 11, "STRING_LIST": 12, "INT32_LIST": 13, "INT64_LIST": 14, "DOUBLE_LIST": 15,
               "FLOAT_LIST": 16, "BOOL_LIST": 17, "UNIX_TIMESTAMP_LIST": 18}
# Entity-key value type numbers (feast ValueType enum)
_KEY_TYPE = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4}

#: A byte matrix (rows x width) and, per row, how many of its leading bytes count.
Bytes = tuple[np.ndarray, np.ndarray]


def field_hash(view: str, feature: str) -> bytes:
    """The hash field of a feature: MurmurHash3 x86_32 of 'view:feature', 4 bytes little-endian."""
    return mmh3.hash(f"{view}:{feature}", signed=False).to_bytes(4, "little")


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def _binary(*pieces: Bytes) -> pa.BinaryArray:
    """Row i of the result: the counted bytes of row i of every piece, in order."""
    matrix = np.hstack([m for m, _ in pieces])
    keep = np.hstack([np.arange(m.shape[1]) < n[:, None] for m, n in pieces])
    lengths = np.sum([n for _, n in pieces], axis=0)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.BinaryArray.from_buffers(pa.binary(), len(lengths),
                                       [None, pa.py_buffer(offsets), pa.py_buffer(matrix[keep])])


def _varint(values: np.ndarray, tag: int, present: np.ndarray) -> Bytes:
    """``tag`` then the protobuf varint of int64 ``values`` (negatives as 10-byte two's complement),
    where ``present``; nothing elsewhere."""
    u = values.astype(np.int64).view(np.uint64)
    lengths = 1 + sum(u >> np.uint64(7 * k) != 0 for k in range(1, 10))  # 7-bit groups, at least one
    width = int(lengths.max(initial=1))  # columns for the longest varint only
    groups = u[:, None] >> (np.arange(width, dtype=np.uint64) * np.uint64(7))
    more = np.arange(width) < (lengths[:, None] - 1)  # continuation bit on every group but the last
    matrix = np.empty((len(u), 1 + width), dtype=np.uint8)
    matrix[:, 0] = tag
    matrix[:, 1:] = (groups & np.uint64(0x7F)).astype(np.uint8) | (more.astype(np.uint8) << 7)
    return matrix, np.where(present, 1 + lengths, 0)


def _fixed(fields: list[tuple[str, object, str]], present: np.ndarray) -> Bytes:
    """Packed little-endian records of ``(name, values, numpy dtype)`` fields, where ``present``."""
    rec = np.empty(len(present), dtype=[(name, dtype) for name, _, dtype in fields])
    for name, values, _ in fields:
        rec[name] = values
    return rec.view(np.uint8).reshape(len(present), rec.dtype.itemsize), np.where(present, rec.dtype.itemsize, 0)


def _numbers(column: pa.Array, dtype) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.uint8())
    return column.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype)


def _valid(column: pa.Array) -> np.ndarray:
    if column.null_count == 0:
        return np.ones(len(column), dtype=bool)
    return column.is_valid().to_numpy(zero_copy_only=False)


def encode_values(column: pa.Array, dtype: str) -> pa.BinaryArray:
    """Serialized ``ValueProto`` of every value of ``column`` (Feast value type ``dtype``); null -> b"".

    Example:
        >>> encode_values(pa.array([1.5, None]), "DOUBLE").to_pylist()
        [b')\\x00\\x00\\x00\\x00\\x00\\x00\\xf8?', b'']
    """
    valid = _valid(column)
    if dtype == "DOUBLE":
        return _binary(_fixed([("t", 0x29, "u1"), ("v", _numbers(column, np.float64), "<f8")], valid))
    if dtype == "FLOAT":
        return _binary(_fixed([("t", 0x35, "u1"), ("v", _numbers(column, np.float32), "<f4")], valid))
    if dtype == "BOOL":
        return _binary(_fixed([("t", 0x38, "u1"), ("v", _numbers(column, np.uint8), "u1")], valid))
    if dtype in ("INT64", "INT32"):
        return _binary(_varint(_numbers(column, np.int64), _SCALAR_FIELD[dtype] << 3, valid))
    if dtype == "UNIX_TIMESTAMP":
        seconds = pc.floor(pc.divide(column.cast(pa.int64()).cast(pa.float64()), 1e6))
        return _binary(_varint(_numbers(seconds, np.int64), 0x40, valid))
    if dtype in ("STRING", "BYTES"):
        tag = (_SCALAR_FIELD[dtype] << 3) | 2
        tag_and_length = _binary(_varint(_numbers(pc.binary_length(column), np.int64), tag, valid))
        return pc.binary_join_element_wise(tag_and_length, column.cast(pa.binary()), b"",
                                           null_handling="replace", null_replacement=b"")
    if dtype in _LIST_FIELD:
        return pa.array([b"" if v is None else _encode_list(dtype, v) for v in column.to_pylist()], pa.binary())
    raise ValueError(f"value type {dtype} cannot be written to Redis")


def _encode_list(dtype: str, items: Sequence) -> bytes:
    inner_type = dtype[: -len("_LIST")]
    if inner_type in ("STRING", "BYTES"):
        body = b"".join(
            b"\x0a" + _varint_bytes(len(d)) + d
            for d in ((x.encode() if isinstance(x, str) else bytes(x)) for x in items)
        )
    else:
        if inner_type == "DOUBLE":
            packed = struct.pack(f"<{len(items)}d", *items)
        elif inner_type == "FLOAT":
            packed = struct.pack(f"<{len(items)}f", *items)
        elif inner_type == "BOOL":
            packed = bytes(1 if x else 0 for x in items)
        elif inner_type == "UNIX_TIMESTAMP":
            packed = b"".join(_varint_bytes(int(x.timestamp()) if hasattr(x, "timestamp") else int(x)) for x in items)
        else:
            packed = b"".join(_varint_bytes(int(x)) for x in items)
        body = b"\x0a" + _varint_bytes(len(packed)) + packed if packed else b""
    return _varint_bytes((_LIST_FIELD[dtype] << 3) | 2) + _varint_bytes(len(body)) + body


def _varint_bytes(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_timestamps(micros: np.ndarray) -> pa.BinaryArray:
    """Serialized ``google.protobuf.Timestamp`` of microsecond epoch times (zero fields omitted)."""
    seconds, rest = np.divmod(micros.astype(np.int64), 1_000_000)
    nanos = rest * 1000
    return _binary(_varint(seconds, 0x08, seconds != 0), _varint(nanos, 0x10, nanos != 0))


def encode_entity_keys(columns: dict[str, pa.Array], dtypes: dict[str, str], project: str) -> pa.BinaryArray:
    """Redis keys: Feast's entity-key serialization v3 of the join keys, then the project name."""
    names = sorted(columns)
    header = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", 2, len(n.encode())) + n.encode() for n in names
    )
    parts: list = [header]
    for name in names:
        dtype, col = dtypes[name], columns[name]
        every = np.ones(len(col), dtype=bool)
        if dtype == "INT64":
            parts.append(_binary(_fixed([("t", 4, "<u4"), ("l", 8, "<u4"), ("v", _numbers(col, np.int64), "<i8")],
                                        every)))
        elif dtype == "INT32":
            parts.append(_binary(_fixed([("t", 3, "<u4"), ("l", 4, "<u4"), ("v", _numbers(col, np.int32), "<i4")],
                                        every)))
        else:
            data = col.cast(pa.binary())
            parts.append(_binary(_fixed([("t", _KEY_TYPE[dtype], "<u4"),
                                         ("l", _numbers(pc.binary_length(data), np.uint32), "<u4")], every)))
            parts.append(data)
    return pc.binary_join_element_wise(*parts, project.encode(), b"")

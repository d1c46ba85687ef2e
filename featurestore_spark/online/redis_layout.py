"""Feast's Redis byte layout (SEMANTICS.md section 2), as pure, vectorised functions.

Keys, field names and values are built for whole Arrow columns at once: fixed-width values
through numpy records, varints through a (rows x 10) byte matrix. No protobuf object is made
per value. Golden tests compare every function with Feast's own serializers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import mmh3
import numpy as np
import pyarrow as pa

# ValueProto field numbers (feast/protos/feast/types/Value.proto)
_SCALAR_FIELD = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4, "DOUBLE": 5, "FLOAT": 6, "BOOL": 7,
                 "UNIX_TIMESTAMP": 8}
_LIST_FIELD = {"BYTES_LIST": 11, "STRING_LIST": 12, "INT32_LIST": 13, "INT64_LIST": 14, "DOUBLE_LIST": 15,
               "FLOAT_LIST": 16, "BOOL_LIST": 17, "UNIX_TIMESTAMP_LIST": 18}
# Entity-key value type numbers (feast ValueType enum)
_KEY_TYPE = {"BYTES": 1, "STRING": 2, "INT32": 3, "INT64": 4}


def field_hash(view: str, feature: str) -> bytes:
    """The hash field of a feature: MurmurHash3 x86_32 of 'view:feature', 4 bytes little-endian."""
    return mmh3.hash(f"{view}:{feature}", signed=False).to_bytes(4, "little")


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def varints(values: np.ndarray) -> list[bytes]:
    """Protobuf varints of int64 values (negatives as 10-byte two's complement)."""
    u = values.astype(np.int64).view(np.uint64)
    shifts = np.arange(10, dtype=np.uint64) * np.uint64(7)
    groups = ((u[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    nonzero = (u[:, None] >> shifts) != 0
    lengths = np.maximum(1, 10 - np.argmax(nonzero[:, ::-1], axis=1)) * nonzero.any(axis=1) + (~nonzero.any(axis=1))
    cont = np.arange(10)[None, :] < (lengths[:, None] - 1)
    groups |= (cont.astype(np.uint8) << 7)
    flat = groups.tobytes()
    return [flat[i * 10 : i * 10 + n] for i, n in enumerate(lengths.tolist())]


def _varint(n: int) -> bytes:
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


def _fixed(tag: int, values: np.ndarray, dtype: str) -> list[bytes]:
    rec = np.empty(len(values), dtype=[("t", "u1"), ("v", dtype)])
    rec["t"], rec["v"] = tag, values
    size = rec.dtype.itemsize
    buf = rec.tobytes()
    return [buf[i : i + size] for i in range(0, len(buf), size)]


def _with_nulls(column: pa.Array, encoded: list[bytes]) -> list[bytes]:
    if column.null_count == 0:
        return encoded
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return [e if ok else b"" for e, ok in zip(encoded, valid)]


def _numbers(column: pa.Array, dtype) -> np.ndarray:
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.uint8())
    return column.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype)


def encode_values(column: pa.Array, dtype: str) -> list[bytes]:
    """Serialized ``ValueProto`` of every value of ``column`` (Feast value type ``dtype``); null -> b""."""
    if dtype == "DOUBLE":
        return _with_nulls(column, _fixed(0x29, _numbers(column, np.float64), "<f8"))
    if dtype == "FLOAT":
        return _with_nulls(column, _fixed(0x35, _numbers(column, np.float32), "<f4"))
    if dtype == "BOOL":
        return _with_nulls(column, _fixed(0x38, _numbers(column, np.uint8), "u1"))
    if dtype in ("INT64", "INT32"):
        tag = bytes([_SCALAR_FIELD[dtype] << 3])
        return _with_nulls(column, [tag + v for v in varints(_numbers(column, np.int64))])
    if dtype == "UNIX_TIMESTAMP":
        seconds = pa.compute.floor(pa.compute.divide(column.cast(pa.int64()).cast(pa.float64()), 1e6))
        return _with_nulls(column, [b"\x40" + v for v in varints(_numbers(seconds, np.int64))])
    if dtype in ("STRING", "BYTES"):
        tag = bytes([(_SCALAR_FIELD[dtype] << 3) | 2])
        data = column.cast(pa.binary()).to_pylist()
        lengths = varints(_numbers(pa.compute.binary_length(column), np.int64))
        return _with_nulls(column, [b"" if d is None else tag + n + d for n, d in zip(lengths, data)])
    if dtype in _LIST_FIELD:
        return [b"" if v is None else _encode_list(dtype, v) for v in column.to_pylist()]
    raise ValueError(f"value type {dtype} cannot be written to Redis")


def _encode_list(dtype: str, items: Sequence) -> bytes:
    inner_type = dtype[: -len("_LIST")]
    if inner_type in ("STRING", "BYTES"):
        body = b"".join(
            b"\x0a" + _varint(len(d)) + d for d in ((x.encode() if isinstance(x, str) else bytes(x)) for x in items)
        )
    else:
        if inner_type == "DOUBLE":
            packed = struct.pack(f"<{len(items)}d", *items)
        elif inner_type == "FLOAT":
            packed = struct.pack(f"<{len(items)}f", *items)
        elif inner_type == "BOOL":
            packed = bytes(1 if x else 0 for x in items)
        elif inner_type == "UNIX_TIMESTAMP":
            packed = b"".join(_varint(int(x.timestamp()) if hasattr(x, "timestamp") else int(x)) for x in items)
        else:
            packed = b"".join(_varint(int(x)) for x in items)
        body = b"\x0a" + _varint(len(packed)) + packed if packed else b""
    return _varint((_LIST_FIELD[dtype] << 3) | 2) + _varint(len(body)) + body


def encode_timestamps(micros: np.ndarray) -> list[bytes]:
    """Serialized ``google.protobuf.Timestamp`` of microsecond epoch times (zero fields omitted)."""
    seconds, rest = np.divmod(micros.astype(np.int64), 1_000_000)
    nanos = rest * 1000
    secs, ns = varints(seconds), varints(nanos)
    return [
        (b"\x08" + s if sec else b"") + (b"\x10" + n if nano else b"")
        for s, n, sec, nano in zip(secs, ns, seconds.tolist(), nanos.tolist())
    ]


def encode_entity_keys(columns: dict[str, pa.Array], dtypes: dict[str, str], project: str) -> list[bytes]:
    """Redis keys: Feast's entity-key serialization v3 of the join keys, then the project name."""
    names = sorted(columns)
    header = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", 2, len(n.encode())) + n.encode() for n in names
    )
    parts = [[header] * len(columns[names[0]])]
    for name in names:
        dtype, col = dtypes[name], columns[name]
        if dtype == "INT64":
            parts.append(_fixed_key(4, _numbers(col, np.int64), "<i8"))
        elif dtype == "INT32":
            parts.append(_fixed_key(3, _numbers(col, np.int32), "<i4"))
        else:
            kind = _KEY_TYPE[dtype]
            parts.append([
                struct.pack("<II", kind, len(d)) + d
                for d in ((v.encode() if isinstance(v, str) else bytes(v)) for v in col.to_pylist())
            ])
    suffix = project.encode()
    return [b"".join(row) + suffix for row in zip(*parts)]


def _fixed_key(kind: int, values: np.ndarray, dtype: str) -> list[bytes]:
    rec = np.empty(len(values), dtype=[("t", "<u4"), ("l", "<u4"), ("v", dtype)])
    rec["t"], rec["l"], rec["v"] = kind, np.dtype(dtype).itemsize, values
    size = rec.dtype.itemsize
    buf = rec.tobytes()
    return [buf[i : i + size] for i in range(0, len(buf), size)]

"""Feast hashes as Redis DUMP payloads, so that a key that does not exist yet is created whole by RESTORE.

A payload is one RDB object: the type byte 16 (a hash kept as a listpack), the listpack as an RDB
string, the RDB version (10: read by Redis 7.0 and later) and the CRC-64 (Jones, as Redis computes it)
of everything before it. The listpack holds the field-value pairs that the newer-wins script's HSET
would write, in the same order, so the key reads back the same through HGET, HMGET and HGETALL.

Redis keeps a RESTORE'd hash as a listpack however long its values, and converts only one that has
more fields than ``hash-max-listpack-entries``. So that a key ends up as HSET would have left it under
Redis's default ``hash-max-listpack-value``, only batches whose fields and values are all at most
``LISTPACK_VALUE_MAX`` bytes are encoded here (``fits``); the others go through HSET. Inside the
listpack a digit string stays a string, where HSET would keep it as an integer: reads are the same.

Built for whole Arrow columns like ``redis_layout``; only the checksum is computed row by row
(``anycrc``'s C code, about 0.3 us a row).
"""

from __future__ import annotations

from collections.abc import Sequence

import anycrc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurestore_spark.online.redis_layout import Bytes, _binary

RDB_TYPE_HASH_LISTPACK = 16
RDB_VERSION = 10
#: Redis's default ``hash-max-listpack-value``.
LISTPACK_VALUE_MAX = 64
#: A listpack counts its entries (two per field) in 16 bits; more, and the count must be found by a scan.
LISTPACK_COUNT_MAX = 65534

_CRC64 = anycrc.Model("CRC64-REDIS").calc
_END = b"\xff" + RDB_VERSION.to_bytes(2, "little")


def fits(fields: Sequence[bytes], columns: Sequence[pa.BinaryArray]) -> bool:
    """Whether every row is encoded here: no field or value longer than HSET keeps in a listpack."""
    longest = max((pc.max(pc.binary_length(c)).as_py() or 0 for c in columns), default=0)
    return (2 * len(fields) <= LISTPACK_COUNT_MAX and max(map(len, fields)) <= LISTPACK_VALUE_MAX
            and longest <= LISTPACK_VALUE_MAX)


def _small(widths: np.ndarray, codes: list[np.ndarray]) -> Bytes:
    """Per row, its first ``widths[i]`` bytes of ``codes`` (integers, one array per byte position)."""
    return np.stack([c & 0xFF for c in codes], axis=1).astype(np.uint8), widths


def _string_header(lengths: np.ndarray) -> Bytes:
    """A listpack string entry's header: 6-bit length below 64 bytes, 12-bit length up to 4095."""
    if len(lengths) and lengths.max() >= 4096:
        raise ValueError("listpack strings of 4096 bytes or more are not encoded here (see fits)")
    short = lengths < 64
    return _small(np.where(short, 1, 2),
                  [np.where(short, 0x80 | lengths, 0xE0 | (lengths >> 8)), lengths & 0xFF])


def _backlen(lengths: np.ndarray) -> Bytes:
    """A listpack entry's back length (its header and data length): one byte to 127, two to 16382."""
    short = lengths <= 127
    return _small(np.where(short, 1, 2), [np.where(short, lengths, lengths >> 7), (lengths & 127) | 128])


def _rdb_length(lengths: np.ndarray) -> Bytes:
    """An RDB length: 6 bits, 14 bits (big-endian) or a 0x80 byte and 32 bits (big-endian)."""
    width = np.where(lengths < 64, 1, np.where(lengths < 16384, 2, 5))
    first = np.where(width == 1, lengths, np.where(width == 2, 0x40 | (lengths >> 8), 0x80))
    second = np.where(width == 2, lengths & 0xFF, lengths >> 24)
    return _small(width, [first, second, lengths >> 16, lengths >> 8, lengths])


def _entry(data: bytes) -> bytes:
    """A constant string (a field name) as a listpack entry."""
    n = np.array([len(data)])
    head, hw = _string_header(n)
    back, bw = _backlen(n + hw)
    return bytes(head[0, : hw[0]]) + data + bytes(back[0, : bw[0]])


def _piece(bytes_: Bytes) -> bytes | pa.BinaryArray:
    """Per-row bytes as one scalar when every row has the same bytes, else as a binary array."""
    matrix, widths = bytes_
    if len(widths) and (widths == widths[0]).all() and (matrix[:, : widths[0]] == matrix[0, : widths[0]]).all():
        return bytes(matrix[0, : widths[0]])
    if len(widths) and (widths == 1).all():
        offsets = np.arange(len(widths) + 1, dtype=np.int32)
        return pa.BinaryArray.from_buffers(pa.binary(), len(widths), [None, pa.py_buffer(offsets),
                                                                      pa.py_buffer(np.ascontiguousarray(matrix[:, 0]))])
    return _binary(bytes_)


def _joined(parts: list) -> list:
    """``parts`` with each run of scalars made one scalar: fewer inputs for Arrow's join."""
    out: list = []
    for part in parts:
        if isinstance(part, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += part
        else:
            out.append(part)
    return out


def payloads(fields: Sequence[bytes], columns: Sequence[pa.BinaryArray]) -> pa.BinaryArray:
    """Per row, the DUMP payload of a hash of ``fields[j]`` -> row's value of ``columns[j]``.

    The caller checks ``fits`` first. Example: ``RESTORE key 0 payload`` then makes the key.
    """
    n = len(columns[0])
    size = np.full(n, 7, dtype=np.int64)  # listpack header (total bytes, entries) and end byte
    parts: list = [(2 * len(fields)).to_bytes(2, "little")]
    for field, column in zip(fields, columns):
        lengths = pc.binary_length(column).to_numpy(zero_copy_only=False).astype(np.int64)
        head = _string_header(lengths)
        back = _backlen(lengths + head[1])
        named = _entry(field)
        parts += [named, _piece(head), column, _piece(back)]
        size += len(named) + head[1] + lengths + back[1]
    words = size.astype("<u4").view(np.uint8).reshape(n, 4)
    prefix = _binary(_rdb_length(size), (words, np.full(n, 4)))
    body = pc.binary_join_element_wise(bytes([RDB_TYPE_HASH_LISTPACK]), prefix, *_joined(parts + [_END]), b"")
    checks = np.fromiter(map(_CRC64, body.to_pylist()), dtype="<u8", count=n)
    return pc.binary_join_element_wise(body, _piece((checks.view(np.uint8).reshape(n, 8), np.full(n, 8))), b"")

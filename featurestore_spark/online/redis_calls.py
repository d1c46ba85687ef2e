"""Script calls in RESP, built in bulk from Arrow: the encoding part of the push (``redis_push``).

Every key and argument becomes a RESP bulk string by Arrow's element-wise join, and a call's bytes
are a header, a slice of the keys' data buffer, the view's shared arguments and a slice of the
arguments' data buffer: no Python object is made per row. A call holds the keys of one hash slot
(on a cluster a multi-key script call must), up to ``KEYS_PER_CALL`` of them.

Two scripts (``redis_scripts``): the create call makes its keys whole with RESTORE of DUMP payloads
(``redis_dump``) when none of them exists, and can become the newer-wins call of the same keys, which
compares the stored event time with the incoming one on the server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from redis.crc import key_slot

from featurestore_spark.online import redis_dump as D
from featurestore_spark.online import redis_layout as L
from featurestore_spark.online.redis_scripts import CREATE, Script, newer_wins

#: Keys per script call.
KEYS_PER_CALL = 200


class Strings(NamedTuple):
    """RESP bulk strings of some rows: the data buffer, and each row's offset in it (rows + 1)."""

    data: memoryview
    at: np.ndarray


@dataclass
class Call:
    """One EVALSHA of a script over some keys of one hash slot."""

    slot: int
    keys: int  # how many
    script: Script
    command: bytes  # the whole EVALSHA command in RESP: header, keys, the view's arguments, the keys' arguments
    key_at: np.ndarray  # its rows' offsets in the data its keys were cut from (keys + 1), to cut it per key
    arg_at: np.ndarray  # the same for its arguments
    checked: Callable[[], Call] | None = None  # a create call: the same keys as a newer-wins call
    resent: bool = False  # an earlier attempt may have run (its answer was lost): "same event time" means written

    def as_checked(self) -> Call:
        """The newer-wins call of the same keys (itself if it is one)."""
        if self.checked is None:
            return self
        call = self.checked()
        call.resent = self.resent
        return call


def bulk(*columns: pa.Array) -> pa.BinaryArray:
    r"""Per row, the row's value of every binary column as a RESP bulk string, ``$<length>\r\n<bytes>\r\n``."""
    parts: list = []
    glue = b""  # the previous column's closing CRLF, put into the next scalar: fewer inputs to join
    for column in columns:
        lengths = pc.binary_length(column)
        n = lengths.to_numpy()
        if len(n) and n.min() == n.max():  # one width (doubles, int keys): one scalar, no text per row
            parts.append(glue + b"$%d\r\n" % n[0])
        else:
            parts += [glue + b"$", lengths.cast(pa.string()).cast(pa.binary()), b"\r\n"]
        parts.append(column)
        glue = b"\r\n"
    return pc.binary_join_element_wise(*parts, glue, b"")


def rows(array: pa.BinaryArray) -> Strings:
    """The data buffer of a binary array and the offsets of its n rows in it (n + 1 of them)."""
    _, offsets, data = array.buffers()
    return Strings(memoryview(data), np.frombuffer(offsets, np.int32, len(array) + 1, array.offset * 4))


class CallMaker:
    """Builds a view's calls: create calls (RESTORE of new keys) or newer-wins calls."""

    def __init__(self, view: str, features: Sequence[tuple[str, str]], key_ttl_seconds: int, cluster: bool,
                 resend: bool):
        self.cluster = cluster
        self.resend = resend  # a repair pass: every call counts as sent again
        self.fields = [L.ts_field(view), *(L.field_hash(view, f) for f, _ in features)]
        self.check = Script(newer_wins(len(features)),
                            [self.fields[0], str(key_ttl_seconds).encode(), str(len(features)).encode(), *self.fields[1:]],
                            per_key=2 + len(features))
        self.make = Script(CREATE, [str(key_ttl_seconds * 1000).encode()], per_key=2)

    @property
    def scripts(self) -> tuple[Script, Script]:
        return self.check, self.make

    def calls(self, keys: pa.BinaryArray, columns: Sequence[pa.BinaryArray], create: bool) -> list[Call]:
        """Calls of up to KEYS_PER_CALL rows each (of one hash slot each, on a cluster): each call's
        keys and arguments are one slice of the bulk strings' data. Create calls when ``create`` and
        every row fits a listpack; each can become a newer-wins call."""
        n = len(keys)
        if self.cluster:
            slots = np.fromiter(map(key_slot, keys.to_pylist()), dtype=np.int32, count=n)
            order = np.argsort(slots, kind="stable")
            keys, columns, slots = keys.take(order), [c.take(order) for c in columns], slots[order]
            cuts = [0, *(np.flatnonzero(np.diff(slots)) + 1).tolist(), n]
        else:
            slots, cuts = np.zeros(n, dtype=np.int32), [0, n]
        spans = [(int(slots[start]), start, min(b, start + KEYS_PER_CALL))
                 for a, b in zip(cuts, cuts[1:]) for start in range(a, b, KEYS_PER_CALL)]
        key_rows = rows(bulk(keys))
        if not (create and D.fits(self.fields, columns)):
            args = rows(bulk(*columns))
            return [self._call(self.check, key_rows, args, *span) for span in spans]
        made = rows(bulk(D.payloads(self.fields, columns)))

        @functools.cache
        def check_args() -> Strings:  # the newer-wins arguments, built when a first call needs them
            return rows(bulk(*columns))

        def checked(span: tuple[int, int, int]) -> Callable[[], Call]:
            return lambda: self._call(self.check, key_rows, check_args(), *span)

        return [self._call(self.make, key_rows, made, *span, checked=checked(span)) for span in spans]

    def _call(self, script: Script, keys: Strings, args: Strings, slot: int, start: int, stop: int,
              checked: Callable[[], Call] | None = None) -> Call:
        """The call of ``script`` for rows ``start`` to ``stop``: slices of their data, no copy per row."""
        size = stop - start
        command = (f"*{script.argc + size * script.per_key}\r\n$7\r\nEVALSHA\r\n$40\r\n{script.sha}\r\n"
                   f"${len(str(size))}\r\n{size}\r\n").encode()
        return Call(slot, size, script, b"".join((command, keys.data[keys.at[start]:keys.at[stop]], script.head,
                                                  args.data[args.at[start]:args.at[stop]])),
                    keys.at[start:stop + 1], args.at[start:stop + 1], checked, self.resend)

    def one_by_one(self, call: Call) -> list[Call]:
        """``call`` cut into one newer-wins call per key, out of its own command's bytes."""
        call = call.as_checked()
        key_at, arg_at = call.key_at - call.key_at[0], call.arg_at - call.arg_at[0]
        head = call.script.head
        start = len(call.command) - int(key_at[-1]) - len(head) - int(arg_at[-1])  # after the header
        data = memoryview(call.command)
        keys, args = Strings(data[start:], key_at), Strings(data[start + int(key_at[-1]) + len(head):], arg_at)
        parts = [self._call(call.script, keys, args, call.slot, i, i + 1) for i in range(call.keys)]
        for part in parts:
            part.resent = call.resent
        return parts

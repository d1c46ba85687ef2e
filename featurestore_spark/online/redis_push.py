"""Write encoded rows to Redis from the executors: pipelined batches of atomic Lua script calls.

One connection per partition (per cluster primary, for Redis Cluster). Each script call takes
many keys; a pipeline sends several calls in one round trip. The newer-wins script compares the
stored ``_ts:{view}`` (a protobuf Timestamp) with the incoming time on the server, so a concurrent
writer is never overwritten by older data (``redis_scripts``). On a cluster every call holds keys of
one hash slot only, as a multi-key script call must.

The commands are built in bulk from Arrow: every key and argument becomes a RESP bulk string by
Arrow's element-wise join, and a call's bytes are a header, slices of those strings' data buffers
and the view's shared arguments; no Python object is made per row. They go out on redis-py's own
connections (its AUTH, TLS, database and cluster routing) from a sending thread, so that a
partition encodes its next rows while the server runs the script.

A key that does not exist yet needs no check: the create script makes a call's keys whole with
RESTORE, from DUMP payloads built on the client (``redis_dump``), when none of them exists (one
EXISTS), and does nothing otherwise. A partition starts with it and sends the newer-wins script
instead once a call finds a key there (a view pushed onto keys other views made, a rerun), and
takes it up again after a pipeline of calls that found no key. The server spends about 1.9 us on a
created key against 2.5 us on a checked one, in the script (``benchmarks/README.md``). A batch with
a value longer than Redis keeps in a listpack, servers before Redis 7.0 and users without the
RESTORE permission get the newer-wins script only.

Every row ends counted as written, skipped (not newer) or failed, each from the server's answers
(the scripts count the keys they wrote, found holding the same event time and found holding a newer
one): a call the server rejects (out of memory, wrong key type) or a pipeline that still cannot be
sent after its retries counts its keys as failed, and a rerun writes them (keys already written are
then skipped). A call sent again because the answer to the first attempt was lost may have run
already: its keys that hold this very event time count as written (the lost attempt wrote them), not
as skipped. With ``PushSpec.min_replicas`` every pipeline ends with ``WAIT``: keys whose writes fewer
replicas acknowledged count as failed, and so does the rest of the partition.

A server that restarts (or fails over to a replica that had not caught up) loses keys written before,
which the writer cannot see: ``materialize.push`` compares the servers' identities before and after
the push (``server_identity``) and pushes again when they differ.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis
from redis.connection import Connection
from redis.crc import key_slot

from featurestore_spark.errors import ConfigError
from featurestore_spark.online import redis_dump as D
from featurestore_spark.online import redis_layout as L
from featurestore_spark.online.redis_scripts import CREATE, Script, newer_wins
from featurestore_spark.online.server_identity import until_stable
from featurestore_spark.online.settings import RedisSettings

#: Keys per script call, and keys per pipeline (one write per node; all nodes answer in one round trip).
KEYS_PER_CALL = 200
KEYS_PER_PIPELINE = 1600
#: Pipelines handed to the sending thread and not yet answered, at most: the partition encodes its
#: next rows while the server works through these (one at a time, in order).
PIPELINES_AHEAD = 8
#: On a Redis Cluster, rows encoded before they are grouped by hash slot into calls, at most: 400k rows
#: give about 24 keys per call (100k gave 6: 193k-200k keys/s against 181k-189k, 1M keys, three
#: masters), and at most this many bytes of encoded keys and values, so that wide views stay within
#: memory (while its calls are cut and sent the group is held about four times over, in RESP, as DUMP
#: payloads and as the newer-wins arguments if a call needs them: ~250 MB at most).
CLUSTER_GROUP_ROWS = 400_000
CLUSTER_GROUP_BYTES = 64 << 20
#: After this many keys in a row that newer-wins calls found missing, a partition sends create calls again.
CREATE_AGAIN = KEYS_PER_PIPELINE
#: Parts of the answers of a server that cannot or may not run RESTORE (an ACL without it, a renamed
#: command, a server before Redis 7.0 that cannot read the payload): the partition stops create calls.
_REFUSED = ("can't run this command", "NOPERM", "no permissions", "nknown Redis command", "unknown command",
            "DUMP payload version or checksum are wrong", "Bad data format")
#: A pipeline that loses its connection (a Redis restart, a failover) is sent again after a pause
#: that doubles each time. Sending again is safe: the script only writes strictly newer values, so
#: keys a lost attempt had already written are not written twice (and count as written). After the last
#: retry the pipeline's keys, and every later key of the partition, are counted as failed: the
#: server is gone, and waiting out the backoff again for every pipeline would only delay the report.
RETRIES = 6
FIRST_PAUSE_SECONDS = 0.25
#: Rounds of cluster redirects (-MOVED, -ASK, a call cut into one per key) a pipeline may take besides
#: its retries; a resharding needs two or three.
REDIRECTS = 16

#: The schema of what ``push_batches`` yields: one row per partition.
COUNTS_SCHEMA = "written long, created long, skipped long, failed long, error string"
_COUNTS = pa.schema([("written", pa.int64()), ("created", pa.int64()), ("skipped", pa.int64()),
                     ("failed", pa.int64()), ("error", pa.string())])

# Answers after which a call is sent again after a pause (with the script loaded, to the node that
# then owns its slot) rather than counted as failed: the script cache was emptied by a restart, a
# multi-key call met a slot halfway through a migration, a failover. -MOVED and -ASK are followed
# at once (see ``_Writer.flush``).
_RESEND = (redis.exceptions.NoScriptError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)
_LOST = (redis.ConnectionError, redis.TimeoutError)
_MIGRATING = (redis.exceptions.AskError, redis.exceptions.TryAgainError)  # -MOVED is taken care of first


@dataclass(frozen=True)
class PushSpec:
    """What one partition needs to encode and write a view's rows (picklable, no secrets in repr)."""

    project: str
    view: str
    keys: tuple[tuple[str, str], ...]  # (column, Feast dtype), named as the entity's join keys
    features: tuple[tuple[str, str], ...]
    settings: RedisSettings
    restore: bool = True  # start with create calls (RESTORE of new keys); False: the newer-wins script only
    #: WAIT after each pipeline for this many replicas to acknowledge its writes (0: no WAIT).
    min_replicas: int = 0
    replica_timeout_ms: int = 5000
    #: A repair pass after the server lost earlier writes: every call counts as sent again (see the module doc).
    resend: bool = False

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.replica_timeout_ms < 0:
            raise ConfigError(f"min_replicas ({self.min_replicas}) and its timeout ({self.replica_timeout_ms} ms) "
                              "must be 0 or more")


log = logging.getLogger(__name__)

_ASKING = b"*1\r\n$6\r\nASKING\r\n"


class _Strings(NamedTuple):
    """RESP bulk strings of some rows: the data buffer, and each row's offset in it (rows + 1)."""

    data: memoryview
    at: np.ndarray


@dataclass
class _Call:
    slot: int
    keys: int  # how many
    script: Script
    command: bytes  # the whole EVALSHA command in RESP: header, keys, the view's arguments, the keys' arguments
    key_at: np.ndarray  # its rows' offsets in the data its keys were cut from (keys + 1), to cut it per key
    arg_at: np.ndarray  # the same for its arguments
    checked: Callable[[], _Call] | None = None  # a create call: the same keys as a newer-wins call
    resent: bool = False  # an earlier attempt may have run (its answer was lost): "same event time" means written

    def as_checked(self) -> _Call:
        """The newer-wins call of the same keys (itself if it is one)."""
        if self.checked is None:
            return self
        call = self.checked()
        call.resent = self.resent
        return call


def _bulk(*columns: pa.Array) -> pa.BinaryArray:
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


def _rows(array: pa.BinaryArray) -> _Strings:
    """The data buffer of a binary array and the offsets of its n rows in it (n + 1 of them)."""
    _, offsets, data = array.buffers()
    return _Strings(memoryview(data), np.frombuffer(offsets, np.int32, len(array) + 1, array.offset * 4))


class _Writer:
    """Packs rows into script calls and sends them in pipelines to the server (or to the primary of
    each call's slot) from a thread of its own, so that encoding goes on while the server works;
    counts the outcome. The thread runs ``flush`` for one pipeline after another."""

    def __init__(self, spec: PushSpec):
        self.cluster = spec.settings.cluster
        # A cluster client reads the topology here: if no node answers, that raises (see push_batches).
        self.client = spec.settings.client()
        self.loaded: set[int] = set()  # node clients that have the scripts
        self.outside: dict[tuple[str, int], redis.Redis] = {}  # -ASK targets the topology does not list
        self.written = self.created = self.skipped = self.failed = 0
        self.resend = spec.resend
        # WAIT must answer within the socket timeout, or its pipeline would be taken for lost and resent.
        self.min_replicas = spec.min_replicas
        self.replica_timeout_ms = min(spec.replica_timeout_ms, int(spec.settings.socket_timeout * 500))
        self.wait_command = b"" if not spec.min_replicas else b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in (b"WAIT", b"%d" % spec.min_replicas,
                                                       b"%d" % self.replica_timeout_ms))
        if self.wait_command:
            self.wait_command = b"*3\r\n" + self.wait_command
        self.error: str | None = None
        self.broken = False
        self.address = spec.settings.address
        self.fields = [L.ts_field(spec.view), *(L.field_hash(spec.view, f) for f, _ in spec.features)]
        ttl = spec.settings.key_ttl_seconds
        self.check = Script(newer_wins(len(spec.features)),
                             [self.fields[0], str(ttl).encode(), str(len(spec.features)).encode(), *self.fields[1:]],
                             per_key=2 + len(spec.features))
        self.make = Script(CREATE, [str(ttl * 1000).encode()], per_key=2)
        self.restore = spec.restore  # False once the server refuses RESTORE: no create calls at all then
        self.create = spec.restore  # build create calls (off from a call that finds an existing key)
        self.fresh = 0  # keys in a row that newer-wins calls found missing: create calls again from CREATE_AGAIN
        self.queue: list[_Call] = []
        self.queued = 0
        self.sender = ThreadPoolExecutor(max_workers=1)
        self.sent: deque[Future] = deque()

    def write(self, keys: pa.BinaryArray, columns: Sequence[pa.BinaryArray]) -> None:
        """Queue calls for rows of ``keys`` and their encoded columns (the event time's Timestamp, then
        the features' values); hand a pipeline to the sending thread whenever enough keys are queued.
        One row per key (see ``write_encoded``)."""
        for call in self._calls(keys, columns):
            self.queue.append(call)
            self.queued += call.keys
            if self.queued >= KEYS_PER_PIPELINE:
                self._send_queue()

    def _send_queue(self) -> None:
        self.sent.append(self.sender.submit(self.flush, self.queue))
        self.queue, self.queued = [], 0
        while len(self.sent) > PIPELINES_AHEAD:
            self.sent.popleft().result()  # raises what the flush raised

    def wait(self) -> None:
        """Send what is queued and wait for every answer."""
        if self.queue:
            self._send_queue()
        while self.sent:
            self.sent.popleft().result()

    def close(self) -> None:
        """``wait``, then close the connections (also when a pipeline raised: the Python worker may be
        reused for another task)."""
        try:
            self.wait()
        finally:
            self.sender.shutdown(cancel_futures=True)
            for client in (self.client, *self.outside.values()):
                client.close()

    def _calls(self, keys: pa.BinaryArray, columns: Sequence[pa.BinaryArray]) -> list[_Call]:
        """Calls of up to KEYS_PER_CALL rows each (of one hash slot each, on a cluster): each call's
        keys and arguments are one slice of the bulk strings' data, so no Python object is made per row.
        Create calls when they are on and every row fits a listpack; each can become a newer-wins call."""
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
        key_rows = _rows(_bulk(keys))
        if not (self.restore and self.create and D.fits(self.fields, columns)):
            args = _rows(_bulk(*columns))
            return [self._call(self.check, key_rows, args, *span) for span in spans]
        made = _rows(_bulk(D.payloads(self.fields, columns)))

        @functools.cache
        def check_args() -> _Strings:  # the newer-wins arguments, built when a first call needs them
            return _rows(_bulk(*columns))

        def checked(span: tuple[int, int, int]) -> Callable[[], _Call]:
            return lambda: self._call(self.check, key_rows, check_args(), *span)

        return [self._call(self.make, key_rows, made, *span, checked=checked(span)) for span in spans]

    def _call(self, script: Script, keys: _Strings, args: _Strings, slot: int, start: int, stop: int,
              checked: Callable[[], _Call] | None = None) -> _Call:
        """The call of ``script`` for rows ``start`` to ``stop``: slices of their data, no copy per row."""
        size = stop - start
        command = (f"*{script.argc + size * script.per_key}\r\n$7\r\nEVALSHA\r\n$40\r\n{script.sha}\r\n"
                   f"${len(str(size))}\r\n{size}\r\n").encode()
        return _Call(slot, size, script, b"".join((command, keys.data[keys.at[start]:keys.at[stop]], script.head,
                                                   args.data[args.at[start]:args.at[stop]])),
                     keys.at[start:stop + 1], args.at[start:stop + 1], checked, self.resend)

    def _one_by_one(self, call: _Call) -> list[tuple[_Call, None]]:
        """``call`` cut into one call per key (out of its own command's bytes), each routed by its slot."""
        call = call.as_checked()
        key_at, arg_at = call.key_at - call.key_at[0], call.arg_at - call.arg_at[0]
        head = call.script.head
        start = len(call.command) - int(key_at[-1]) - len(head) - int(arg_at[-1])  # after the header
        data = memoryview(call.command)
        keys, args = _Strings(data[start:], key_at), _Strings(data[start + int(key_at[-1]) + len(head):], arg_at)
        parts = [self._call(call.script, keys, args, call.slot, i, i + 1) for i in range(call.keys)]
        for part in parts:
            part.resent = call.resent
        return [(part, None) for part in parts]

    def _node(self, slot: int) -> redis.Redis:
        if not self.cluster:
            return self.client
        return self.client.get_redis_connection(self.client.nodes_manager.get_node_from_slot(slot))

    def _node_at(self, address: tuple[str, int]) -> redis.Redis:
        """The client of the node at ``address`` (an -ASK target). A master that owns no slot yet (one
        just added, taking its first slots) is not in the topology: it gets a client of its own."""
        node = self.client.get_node(host=address[0], port=address[1])
        if node is not None:
            return self.client.get_redis_connection(node)
        if address not in self.outside:
            manager = self.client.nodes_manager
            self.outside[address] = manager.create_redis_node(address[0], address[1], **manager.connection_kwargs)
        return self.outside[address]

    def _send(
        self, groups: list[tuple[redis.Redis, list[_Call], bool]]
    ) -> list[tuple[list[_Call], list | Exception, int | None]]:
        """Send each node's calls in one write on a connection of that node, to every node before reading
        any answer (the masters of a cluster work at the same time), then read them. Per node: its
        answers (an error answer is an exception in the list, not raised), or the exception that lost
        the whole node: a lost connection, or an error answer to SCRIPT LOAD, after which no call can
        run. A group flagged ``asking`` goes to a slot's importing node: ASKING precedes each call.
        With ``min_replicas``, a WAIT closes each node's chunk: its answer, the replicas that
        acknowledged the node's writes so far, is the third item (else None).
        redis-py's connection does AUTH, TLS and SELECT."""
        results: list[tuple[list[_Call], list | Exception, int | None]] = []
        sent: list[tuple[redis.Redis, Connection, list[_Call], bool]] = []
        try:
            for node, calls, asking in groups:
                conn = None
                try:
                    if id(node) not in self.loaded:
                        node.script_load(self.check.source)
                        node.script_load(self.make.source)
                        self.loaded.add(id(node))
                    conn = node.connection_pool.get_connection()
                    sent.append((node, conn, calls, asking))
                    prefix = _ASKING if asking else b""
                    conn.send_packed_command([b"".join([*(prefix + c.command for c in calls), self.wait_command])])
                except (*_LOST, redis.ResponseError) as exc:
                    if conn is not None:
                        sent.pop()
                        node.connection_pool.release(conn)
                    results.append((calls, exc, None))
            while sent:
                node, reader, calls, asking = sent[0]
                answers: list = []
                try:
                    for _ in calls:
                        if asking:
                            try:
                                reader.read_response()  # +OK to ASKING
                            except redis.ResponseError:
                                pass  # the call's own answer follows, and says what went wrong
                        try:
                            answers.append(reader.read_response())
                        except redis.ResponseError as exc:
                            answers.append(exc)
                    replicas = self._replicas(reader) if self.wait_command else None
                    results.append((calls, answers, replicas))
                except _LOST as exc:
                    results.append((calls, exc, None))
                finally:
                    sent.pop(0)
                    node.connection_pool.release(reader)  # a connection lost midway was closed by redis-py
        finally:
            for node, left, _, _ in sent:  # only after an unexpected error: hand the connections back closed
                left.disconnect()
                node.connection_pool.release(left)
        return results

    def _created(self, answer: object) -> bool:
        """Count a create call's answer; False when it wrote nothing: a key exists (create calls stop
        until CREATE_AGAIN), the server refused RESTORE (they stop for good, with a warning) or another
        error (out of memory, a read-only replica: the newer-wins script meets it too, and counts it)."""
        if isinstance(answer, int) and answer >= 0:
            self.written += answer
            self.created += answer
            return True
        if isinstance(answer, Exception):
            reason = f"{type(answer).__name__}: {str(answer).splitlines()[0]}"
            if self.restore and any(m in reason for m in _REFUSED):
                self.restore = False
                log.warning("Redis at %s refused RESTORE (%s): this partition writes with the newer-wins script "
                            "only", self.address, reason)
        else:
            self.create, self.fresh = False, 0
        return False

    def _checked(self, answer: list, call: _Call) -> None:
        """Count a newer-wins call's answer (written, same event time, newer, none existed); after
        CREATE_AGAIN keys in a row that did not exist, create calls start again. Keys holding this
        very event time were written by a lost earlier attempt when the call was ``resent``."""
        written, same, newer, fresh = (int(a) for a in answer)
        self.written += written + same * call.resent
        self.skipped += newer + same * (not call.resent)
        self.fresh = self.fresh + call.keys if fresh else 0
        if self.fresh >= CREATE_AGAIN:
            self.create = True

    def _replicas(self, reader: Connection) -> int | str:
        """The answer to WAIT: the replicas that acknowledged, or why the server refused it (an ACL
        without WAIT, a node that is a replica)."""
        try:
            return int(reader.read_response())
        except redis.ResponseError as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def _unreplicated(self, before: tuple[int, int, int], replicas: int | str) -> None:
        """The keys a node answered for since ``before`` (written, created, skipped) reached fewer
        replicas than asked within the timeout: they count as failed, the skipped ones too (a rerun
        finds keys it wrote before holding the same event time, and only WAIT tells whether the
        replicas have them now), and so does every later key of the partition, unsent: the replicas
        are missing, and waiting out the timeout for every pipeline would only delay the report."""
        self.failed += (self.written - before[0]) + (self.skipped - before[2])
        self.written, self.created, self.skipped = before
        self.broken = True
        answer = (f"only {replicas} of {self.min_replicas}" if isinstance(replicas, int)
                  else f"WAIT for {self.min_replicas} refused ({replicas}):")
        self.error = self.error or (f"{answer} replica(s) of Redis at {self.address} acknowledged the writes "
                                    f"within {self.replica_timeout_ms} ms")

    def _fail(self, calls: Sequence[_Call], reason: str) -> None:
        self.failed += sum(c.keys for c in calls)
        self.error = self.error or reason

    def flush(self, calls: list[_Call]) -> None:
        """Send ``calls`` (one pipeline per node), resending what was lost or redirected; count every key.

        A cluster's redirects are followed at once: after -MOVED (the slot has a new owner) the
        topology is read again. A call of several keys answered -ASK or -TRYAGAIN has met a slot
        being migrated, whose keys may sit on either node: it is cut into one call per key. A key
        answered -ASK (not on its owner any more) goes to the importing node, preceded by ASKING.
        Such rounds are at most REDIRECTS. What was lost, refused for now (TRYAGAIN, CLUSTERDOWN) or
        found the script cache empty waits out a backoff first, at most RETRIES times."""
        if self.broken:
            self._fail(calls, self.error or "an earlier pipeline failed")
            return
        if not (self.create and self.restore):  # built before a call found a key: check them instead
            calls = [c.as_checked() for c in calls]
        pending: list[tuple[_Call, tuple[str, int] | None]] = [(c, None) for c in calls]  # (call, ASK target)
        losses = redirects = 0
        wait = refresh = False
        while True:
            if wait:
                if losses == RETRIES:
                    self.broken = True
                    self._fail([c for c, _ in pending],
                               f"no answer from Redis at {self.address} after {RETRIES} retries")
                    return
                time.sleep(FIRST_PAUSE_SECONDS * 2 ** losses)
                losses += 1
                self.loaded.clear()
            if self.cluster and (wait or refresh):
                try:
                    self.client.nodes_manager.initialize()
                except _LOST + (redis.exceptions.RedisClusterException,):
                    wait = True
                    continue  # every node still unreachable: wait longer
            groups: dict[tuple[int, bool], tuple[redis.Redis, list[_Call], bool]] = {}
            for call, target in pending:
                node = self._node(call.slot) if target is None else self._node_at(target)
                groups.setdefault((id(node), target is not None), (node, [], target is not None))[1].append(call)
            again: list[tuple[_Call, tuple[str, int] | None]] = []
            wait = refresh = False
            for group, answers, replicas in self._send(list(groups.values())):
                if isinstance(answers, _LOST):
                    for call in group:  # it may have run before the connection went: its answer is lost
                        call.resent = True
                    again += [(c, None) for c in group]
                    wait = True
                    continue
                if isinstance(answers, Exception):  # e.g. NOPERM or BUSY on SCRIPT LOAD
                    self._fail(group, f"{type(answers).__name__}: {str(answers).splitlines()[0]}")
                    continue
                before = (self.written, self.created, self.skipped)
                for call, answer in zip(group, answers):
                    if isinstance(answer, redis.exceptions.AskError) and not self.cluster:  # MOVED too
                        self._fail([call], f"{type(answer).__name__}: the server is a Redis Cluster node; set "
                                   "online_store.redis_type: redis_cluster")
                    elif isinstance(answer, redis.exceptions.MovedError):  # a subclass of AskError
                        again.append((call, None))
                        refresh = True
                    elif isinstance(answer, _MIGRATING) and call.keys > 1:
                        # Its slot is being migrated: the keys may be on either node, and neither takes
                        # a call holding keys it lacks; each key alone can be served or redirected.
                        again += self._one_by_one(call)
                    elif isinstance(answer, redis.exceptions.AskError):
                        again.append((call, answer.node_addr))
                    elif isinstance(answer, _RESEND):
                        again.append((call, None))
                        wait = True
                    elif call.checked is not None:
                        if not self._created(answer):
                            again.append((call.as_checked(), None))
                    elif isinstance(answer, Exception):
                        self._fail([call], f"{type(answer).__name__}: {str(answer).splitlines()[0]}")
                    else:
                        self._checked(answer, call)
                if replicas is not None and (isinstance(replicas, str) or replicas < self.min_replicas):
                    self._unreplicated(before, replicas)
            pending = again
            if not pending:
                return
            if not wait:
                redirects += 1
                if redirects > REDIRECTS:
                    self._fail([c for c, _ in pending], f"Redis Cluster at {self.address} still redirected "
                               f"(-MOVED/-ASK) {len(pending)} call(s) after {REDIRECTS} rounds")
                    return


def write_encoded(spec: PushSpec, keys: list[bytes], columns: list[list[bytes]]) -> tuple[int, int, str | None]:
    """Write rows already in Feast's bytes, newer-wins, over one connection: (written, failed, first error).

    ``columns`` holds the event-time Timestamp bytes, then one value column per feature of ``spec``.
    One row per key: both scripts take a call's keys as distinct (the newer-wins script's shortcut for
    new keys would let a later duplicate win, the create script would stop at it). Used by the Feast
    plugin's online store for ``write_to_online_store``.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("rows written together must have distinct keys; keep the newest row per key")

    def one_pass(resend: bool) -> _Writer:
        writer = _Writer(dataclasses.replace(spec, resend=resend))
        writer.write(pa.array(keys, pa.binary()), [pa.array(c, pa.binary()) for c in columns])
        writer.close()
        return writer

    writer, _, unconfirmed = until_stable(spec.settings, one_pass)
    if unconfirmed:
        return 0, len(keys), unconfirmed
    return writer.written, writer.failed, writer.error


def push_batches(batches: Iterator[pa.RecordBatch], spec: PushSpec) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: write every row (keys, ``__ts_us``, features; one row per key, as
    ``materialize.latest_of`` leaves them); yield one ``COUNTS_SCHEMA`` row."""
    try:
        writer = _Writer(spec)
    except (*_LOST, redis.exceptions.RedisClusterException) as exc:
        # No connection for this partition at all: count its rows failed (a rerun writes them).
        rows = sum(batch.num_rows for batch in batches)
        error = f"{type(exc).__name__}: cannot connect to Redis at {spec.settings.address}"
        yield pa.RecordBatch.from_pydict({"written": [0], "created": [0], "skipped": [0], "failed": [rows], "error": [error]},
                                         schema=_COUNTS)
        return
    # On a cluster a call holds keys of one slot only; grouping more rows at once puts more keys in
    # each of the 16384 slots, so fewer, larger calls (a 10k-row batch gives about one key per call).
    group_rows, group_bytes = (CLUSTER_GROUP_ROWS, CLUSTER_GROUP_BYTES) if writer.cluster else (1, 0)
    total = 0
    pending: list[tuple[pa.BinaryArray, list[pa.BinaryArray]]] = []

    def send() -> None:
        keys = pa.concat_arrays([k for k, _ in pending])
        columns = [pa.concat_arrays(list(c)) for c in zip(*(cols for _, cols in pending))]
        pending.clear()
        writer.write(keys, columns)

    for batch in batches:
        if batch.num_rows == 0:
            continue
        keys = L.encode_entity_keys({k: batch.column(k) for k, _ in spec.keys}, dict(spec.keys), spec.project)
        columns = [L.encode_timestamps(batch.column("__ts_us").to_numpy(zero_copy_only=False)),
                   *(L.encode_values(batch.column(f), dtype) for f, dtype in spec.features)]
        pending.append((keys, columns))
        total += batch.num_rows
        if (sum(len(k) for k, _ in pending) >= group_rows
                or sum(k.nbytes + sum(c.nbytes for c in cols) for k, cols in pending) >= group_bytes):
            send()
    if pending:
        send()
    writer.close()
    failed, error = writer.failed, writer.error
    unaccounted = total - writer.written - writer.skipped - writer.failed
    written, created, skipped = writer.written, writer.created, writer.skipped
    if unaccounted:  # a defect of the writer's bookkeeping: never let it read as written or skipped
        log.error("Redis push of view '%s': the counts of %d keys add up to %d", spec.view, total, total - unaccounted)
        error = f"the writer's counts of {total} keys add up to {total - unaccounted} (a defect: please report it); rerun"
        if unaccounted > 0:
            failed += unaccounted
        else:  # counted twice: nothing of this partition can be vouched for
            written = created = skipped = 0
            failed = total
    yield pa.RecordBatch.from_pydict({"written": [written], "created": [created], "skipped": [skipped],
                                      "failed": [failed], "error": [error]}, schema=_COUNTS)

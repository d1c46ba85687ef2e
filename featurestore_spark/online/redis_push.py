"""Write encoded rows to Redis from the executors: pipelined batches of atomic Lua script calls.

One connection per partition (per cluster primary, for Redis Cluster). Each script call takes
many keys; a pipeline sends several calls in one round trip. The newer-wins script compares the
stored ``_ts:{view}`` (a protobuf Timestamp) with the incoming time on the server, so a concurrent
writer is never overwritten by older data (``redis_scripts``). On a cluster every call holds keys of
one hash slot only, as a multi-key script call must.

The work is split in three parts, each a module: the calls are built in bulk from Arrow, with no
Python object per row (``redis_calls``); they go out on redis-py's own connections, to the node of
their slot on a cluster (``redis_nodes``), from a sending thread, so that a partition encodes its
next rows while the server runs the script; and every key's outcome is counted from the server's
answers (``push_tally``). This module drives them: pipelines, redirects, retries.

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
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import redis

from featurestore_spark.columns import TS_MICROS
from featurestore_spark.errors import ConfigError
from featurestore_spark.online import redis_layout as L
from featurestore_spark.online.push_tally import Created, Tally, reason
from featurestore_spark.online.redis_calls import KEYS_PER_CALL, Call, CallMaker
from featurestore_spark.online.redis_nodes import LOST, Nodes
from featurestore_spark.online.server_identity import until_stable
from featurestore_spark.online.settings import RedisSettings

__all__ = ["COUNTS_SCHEMA", "KEYS_PER_CALL", "KEYS_PER_PIPELINE", "PushSpec", "push_batches", "write_encoded"]

#: Keys per pipeline (one write per node; all nodes answer in one round trip).
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


class _Writer:
    """One partition's push: packs rows into script calls (``redis_calls``), hands pipelines of them to
    a sending thread of its own, so that encoding goes on while the server works, and there sends them
    (``redis_nodes``), follows redirects and retries, and counts every key (``push_tally``). The thread
    runs ``flush`` for one pipeline after another."""

    def __init__(self, spec: PushSpec):
        self.cluster = spec.settings.cluster
        self.address = spec.settings.address
        self.calls = CallMaker(spec.view, spec.features, spec.settings.key_ttl_seconds, self.cluster, spec.resend)
        # WAIT must answer within the socket timeout, or its pipeline would be taken for lost and resent.
        self.min_replicas = spec.min_replicas
        self.replica_timeout_ms = min(spec.replica_timeout_ms, int(spec.settings.socket_timeout * 500))
        wait = (spec.min_replicas, self.replica_timeout_ms) if spec.min_replicas else None
        # A cluster client reads the topology here: if no node answers, that raises (see push_batches).
        self.nodes = Nodes(spec.settings.client(), self.cluster, self.calls.scripts, wait)
        self.tally = Tally()
        self.broken = False  # the server is gone or the replicas are missing: later keys fail unsent
        self.restore = spec.restore  # False once the server refuses RESTORE: no create calls at all then
        self.create = spec.restore  # build create calls (off from a call that finds an existing key)
        self.fresh = 0  # keys in a row that newer-wins calls found missing: create calls again from CREATE_AGAIN
        self.queue: list[Call] = []
        self.queued = 0
        self.sender = ThreadPoolExecutor(max_workers=1)
        self.sent: deque[Future] = deque()

    def write(self, keys: pa.BinaryArray, columns: Sequence[pa.BinaryArray]) -> None:
        """Queue calls for rows of ``keys`` and their encoded columns (the event time's Timestamp, then
        the features' values); hand a pipeline to the sending thread whenever enough keys are queued.
        One row per key (see ``write_encoded``)."""
        for call in self.calls.calls(keys, columns, create=self.restore and self.create):
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
            self.nodes.close()

    def _fail(self, calls: Sequence[Call], why: str) -> None:
        self.tally.fail(sum(c.keys for c in calls), why)

    def _create_answer(self, call: Call, answer: object) -> bool:
        """Count a create call's answer; False when it wrote nothing and must go again as a newer-wins
        call: a key exists (create calls stop until CREATE_AGAIN), the server refused RESTORE (they stop
        for good, with a warning) or another error (the newer-wins script meets it too, and counts it)."""
        outcome = self.tally.create_answer(answer)
        if outcome is Created.REFUSED and self.restore:
            self.restore = False
            log.warning("Redis at %s refused RESTORE (%s): this partition writes with the newer-wins script "
                        "only", self.address, reason(answer))  # type: ignore[arg-type]
        elif outcome is Created.EXISTS:
            self.create, self.fresh = False, 0
        return outcome is Created.WRITTEN

    def _check_answer(self, call: Call, answer: list) -> None:
        """Count a newer-wins call's answer; after CREATE_AGAIN keys in a row that did not exist, create
        calls start again."""
        fresh = self.tally.check_answer(answer, call)
        self.fresh = self.fresh + call.keys if fresh else 0
        if self.fresh >= CREATE_AGAIN:
            self.create = True

    def _unreplicated(self, since: tuple[int, int, int], replicas: int | str) -> None:
        """Fewer replicas than asked acknowledged a node's writes within the timeout: its keys since
        ``since`` count as failed, and so does every later key of the partition, unsent: the replicas
        are missing, and waiting out the timeout for every pipeline would only delay the report."""
        answer = (f"only {replicas} of {self.min_replicas}" if isinstance(replicas, int)
                  else f"WAIT for {self.min_replicas} refused ({replicas}):")
        self.tally.unconfirmed(since, f"{answer} replica(s) of Redis at {self.address} acknowledged the writes "
                                      f"within {self.replica_timeout_ms} ms")
        self.broken = True

    def flush(self, calls: list[Call]) -> None:
        """Send ``calls`` (one pipeline per node), resending what was lost or redirected; count every key.

        A cluster's redirects are followed at once: after -MOVED (the slot has a new owner) the
        topology is read again. A call of several keys answered -ASK or -TRYAGAIN has met a slot
        being migrated, whose keys may sit on either node: it is cut into one call per key. A key
        answered -ASK (not on its owner any more) goes to the importing node, preceded by ASKING.
        Such rounds are at most REDIRECTS. What was lost, refused for now (TRYAGAIN, CLUSTERDOWN) or
        found the script cache empty waits out a backoff first, at most RETRIES times."""
        if self.broken:
            self._fail(calls, self.tally.error or "an earlier pipeline failed")
            return
        if not (self.create and self.restore):  # built before a call found a key: check them instead
            calls = [c.as_checked() for c in calls]
        pending: list[tuple[Call, tuple[str, int] | None]] = [(c, None) for c in calls]  # (call, ASK target)
        losses = redirects = 0
        wait = refresh = False
        while True:
            if wait:
                if losses == RETRIES:
                    self.broken = True
                    self._fail([c for c, _ in pending], f"no answer from Redis at {self.address} after {RETRIES} retries")
                    return
                time.sleep(FIRST_PAUSE_SECONDS * 2 ** losses)
                losses += 1
                self.nodes.forget_scripts()
            if self.cluster and (wait or refresh):
                try:
                    self.nodes.refresh()
                except LOST + (redis.exceptions.RedisClusterException,):
                    wait = True
                    continue  # every node still unreachable: wait longer
            groups: dict[tuple[int, bool], tuple[redis.Redis, list[Call], bool]] = {}
            for call, target in pending:
                node = self.nodes.of_slot(call.slot) if target is None else self.nodes.at(target)
                groups.setdefault((id(node), target is not None), (node, [], target is not None))[1].append(call)
            again: list[tuple[Call, tuple[str, int] | None]] = []
            wait = refresh = False
            for group, answers, replicas in self.nodes.send(list(groups.values())):
                if isinstance(answers, LOST):
                    for call in group:  # it may have run before the connection went: its answer is lost
                        call.resent = True
                    again += [(c, None) for c in group]
                    wait = True
                    continue
                if isinstance(answers, Exception):  # e.g. NOPERM or BUSY on SCRIPT LOAD
                    self._fail(group, reason(answers))
                    continue
                since = self.tally.mark()
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
                        again += [(part, None) for part in self.calls.one_by_one(call)]
                    elif isinstance(answer, redis.exceptions.AskError):
                        again.append((call, answer.node_addr))
                    elif isinstance(answer, _RESEND):
                        again.append((call, None))
                        wait = True
                    elif call.checked is not None:
                        if not self._create_answer(call, answer):
                            again.append((call.as_checked(), None))
                    elif isinstance(answer, Exception):
                        self._fail([call], reason(answer))
                    else:
                        self._check_answer(call, answer)
                if replicas is not None and (isinstance(replicas, str) or replicas < self.min_replicas):
                    self._unreplicated(since, replicas)
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
    return writer.tally.written, writer.tally.failed, writer.tally.error


def _retried_task() -> bool:
    """Whether this is a Spark task's second (or later) attempt. (A stage computed again after lost
    shuffle output starts its tasks at attempt 0, and Python's TaskContext does not tell the stage's
    attempt: keys such a rerun finds written by the lost attempt count as skipped.)"""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context is not None and context.attemptNumber() > 0


def push_batches(batches: Iterator[pa.RecordBatch], spec: PushSpec) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: write every row (keys, ``__ts_us``, features; one row per key, as
    ``materialize.latest_of`` leaves them); yield one ``COUNTS_SCHEMA`` row.

    A task Spark runs again (its executor was lost) may find keys its earlier attempt wrote before the
    counts row was lost with it: its calls count as sent again, so that keys holding this very event
    time count as written, not skipped."""
    if _retried_task():
        spec = dataclasses.replace(spec, resend=True)
    try:
        writer = _Writer(spec)
    except (*LOST, redis.exceptions.RedisClusterException) as exc:
        # No connection for this partition at all: count its rows failed (a rerun writes them).
        rows = sum(batch.num_rows for batch in batches)
        lost = f"{type(exc).__name__}: cannot connect to Redis at {spec.settings.address}"
        yield pa.RecordBatch.from_pydict({"written": [0], "created": [0], "skipped": [0], "failed": [rows], "error": [lost]},
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
        columns = [L.encode_timestamps(batch.column(TS_MICROS).to_numpy(zero_copy_only=False)),
                   *(L.encode_values(batch.column(f), dtype) for f, dtype in spec.features)]
        pending.append((keys, columns))
        total += batch.num_rows
        if (sum(len(k) for k, _ in pending) >= group_rows
                or sum(k.nbytes + sum(c.nbytes for c in cols) for k, cols in pending) >= group_bytes):
            send()
    if pending:
        send()
    writer.close()
    tally = writer.tally
    failed, error = tally.failed, tally.error
    unaccounted = total - tally.written - tally.skipped - tally.failed
    written, created, skipped = tally.written, tally.created, tally.skipped
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

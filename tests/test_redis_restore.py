"""The push's create path: keys that do not exist yet are made whole by RESTORE of DUMP payloads built on
the client (``online/redis_dump.py``). The reference is Redis itself: the hash HSET makes of the same
fields, on a server that validates every payload deeply (``sanitize-dump-payload yes``), and Feast's
own key, field and value functions for what a push leaves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore_spark.online import redis_dump, redis_push
from featurestore_spark.online.settings import RedisSettings
from tests.redis_servers import PORT_BASE, redis_server

PORT = PORT_BASE + 95


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with redis_server(PORT, tmp_path_factory.mktemp("restore"), "--sanitize-dump-payload", "yes") as port:
        yield redis.Redis(port=port)


# Values as Redis sees them: any bytes, and digit strings, which HSET keeps as listpack integers.
_VALUE = st.one_of(st.binary(max_size=redis_dump.LISTPACK_VALUE_MAX),
                   st.integers(-(2**63), 2**63 - 1).map(lambda i: str(i).encode()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(st.binary(min_size=1, max_size=redis_dump.LISTPACK_VALUE_MAX), min_size=1, max_size=12,
                       unique=True),
       rows=st.integers(1, 30), data=st.data())
def test_a_restored_payload_is_the_hash_hset_makes(server, fields, rows, data):
    columns = [pa.array(data.draw(st.lists(_VALUE, min_size=rows, max_size=rows)), pa.binary()) for _ in fields]
    assert redis_dump.fits(fields, columns)
    server.flushdb()
    pipe = server.pipeline()
    for i, payload in enumerate(redis_dump.payloads(fields, columns).to_pylist()):
        pipe.restore(f"r{i}", 0, payload)
        pipe.hset(f"h{i}", mapping={f: c[i].as_py() for f, c in zip(fields, columns)})
    pipe.execute()
    for i in range(rows):
        assert server.hgetall(f"r{i}") == server.hgetall(f"h{i}")
        assert server.object("encoding", f"r{i}") == server.object("encoding", f"h{i}") == b"listpack"
        assert server.hlen(f"r{i}") == len(fields) and server.hstrlen(f"r{i}", fields[-1]) == len(columns[-1][i].as_py())


def test_only_rows_a_listpack_keeps_are_encoded():
    short, long = pa.array([b"x" * 64], pa.binary()), pa.array([b"x" * 65], pa.binary())
    assert redis_dump.fits([b"f"], [short]) and not redis_dump.fits([b"f"], [long])
    assert not redis_dump.fits([b"f" * 65], [short])
    assert redis_dump.fits([b"f%d" % i for i in range(200)], [short] * 200)  # the server converts wide hashes


def test_wide_and_long_payloads_restore_as_written(server):
    """Beyond what ``fits`` lets through (12-bit string lengths, two-byte back lengths, a 32-bit RDB
    length), and wider than Redis keeps a listpack: the server converts it as it would HSET's hash."""
    server.flushdb()
    wide = server.config_get("hash-max-listpack-entries")["hash-max-listpack-entries"]
    fields = [b"f" * 200, *(b"g%d" % i for i in range(int(wide)))]
    columns = [pa.array([b"v" * 4095, b""], pa.binary()), *[pa.array([b"w" * 300, b"1"], pa.binary())] * int(wide)]
    for i, payload in enumerate(redis_dump.payloads(fields, columns).to_pylist()):
        assert len(payload) > 16383 or i == 1
        server.restore(f"r{i}", 0, payload)
        server.hset(f"h{i}", mapping={f: c[i].as_py() for f, c in zip(fields, columns)})
        assert server.hgetall(f"r{i}") == server.hgetall(f"h{i}")
        assert server.object("encoding", f"r{i}") == server.object("encoding", f"h{i}") == b"hashtable"


def test_field_hashes_holding_crlf_frame_the_calls_right(server):
    """Features whose 4-byte field hashes hold CR LF: each call's argument count must still be right."""
    server.flushdb()
    spec = dataclasses.replace(_spec(PORT), features=(("f39703", "DOUBLE"), ("f76787", "DOUBLE")))
    assert sum(b"\r\n" in redis_push.L.field_hash("v", f) for f, _ in spec.features) == 2
    ids = np.arange(300)
    batch = pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids * 0 + 5),
                                        "f39703": pa.array(ids / 2.0), "f76787": pa.array(ids / 4.0)})
    for restore, stamp in ((True, 5), (False, 6)):
        pushed = pa.RecordBatch.from_arrays([*batch.columns[:1], pa.array(ids * 0 + stamp), *batch.columns[2:]],
                                            names=batch.schema.names)
        counts = list(redis_push.push_batches(iter([pushed]), dataclasses.replace(spec, restore=restore)))[0]
        assert counts.to_pydict()["written"] == [300] and counts.to_pydict()["failed"] == [0]
    assert server.dbsize() == 300


def test_rows_of_one_key_written_together_are_refused(server):
    server.flushdb()
    with pytest.raises(ValueError, match="rows written together must have distinct keys"):
        redis_push.write_encoded(_spec(PORT), [b"k1", b"k2", b"k1"], [[b"t"] * 3, [b"1"] * 3, [b"x"] * 3])
    assert server.dbsize() == 0


def _spec(port: int, **settings_) -> redis_push.PushSpec:
    return redis_push.PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),),
                               features=(("rate", "DOUBLE"), ("label", "STRING")),
                               settings=RedisSettings(nodes=(("127.0.0.1", port),), **settings_))


def _batch(ids, stamp: int, label: str = "l") -> pa.RecordBatch:
    ids = np.asarray(ids)
    return pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids * 0 + stamp),
                                       "rate": pa.array(ids / 7.0), "label": pa.array([f"{label}{i}" for i in ids])})


def _served(client: redis.Redis, ids, view: str = "v") -> list[tuple[int, float, str]]:
    """Per id, the stored event time (us), rate and label, read with Feast's functions."""
    from feast.infra.online_stores.redis import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp

    pipe = client.pipeline()
    for i in ids:
        key = _redis_key("p", EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=int(i))]), 3)
        pipe.hmget(key, [f"_ts:{view}", _mmh3(f"{view}:rate"), _mmh3(f"{view}:label")])
    return [(Timestamp.FromString(ts).ToMicroseconds(), Value.FromString(rate).double_val,
             Value.FromString(label).string_val) for ts, rate, label in pipe.execute()]


def test_new_keys_are_restored_existing_ones_checked_and_the_writer_switches_back(server):
    """A partition creates new keys, meets existing ones (and from then on checks every call), and
    creates again after a pipeline of calls that found no key. Each phase waits for its answers."""
    server.flushdb()
    server.config_resetstat()
    size = redis_push.KEYS_PER_PIPELINE
    writer = redis_push._Writer(_spec(PORT))
    layout = redis_push.L

    def write(batch: pa.RecordBatch) -> None:
        keys = layout.encode_entity_keys({"driver_id": batch.column("driver_id")}, {"driver_id": "INT64"}, "p")
        writer.write(keys, [layout.encode_timestamps(batch.column("__ts_us").to_numpy()),
                            layout.encode_values(batch.column("rate"), "DOUBLE"),
                            layout.encode_values(batch.column("label"), "STRING")])
        writer.wait()

    phases = [(np.arange(size), 10, "a", size),  # new: created
              (np.arange(size), 20, "b", 0),  # all exist: refused by the create script, checked instead
              (np.arange(size, 2 * size), 10, "c", 0),  # new, but built as checked calls: they turn creating on
              (np.arange(2 * size, 3 * size), 10, "d", size)]  # new, created
    for ids, stamp, label, created in phases:
        before = writer.tally.created
        write(_batch(ids, stamp, label))
        assert writer.tally.created - before == created, label
    writer.close()
    assert (writer.tally.written, writer.tally.failed) == (4 * size, 0)
    stats = server.info("commandstats")
    assert stats["cmdstat_restore"]["calls"] == 2 * size
    assert _served(server, np.arange(3 * size)) == (
        [(20, i / 7.0, f"b{i}") for i in range(size)] + [(10, i / 7.0, f"c{i}") for i in range(size, 2 * size)]
        + [(10, i / 7.0, f"d{i}") for i in range(2 * size, 3 * size)])


def test_created_keys_get_the_key_ttl_and_long_values_go_through_hset(server):
    server.flushdb()
    ids = np.arange(500)
    counts = list(redis_push.push_batches(iter([_batch(ids, 5)]), _spec(PORT, key_ttl_seconds=5000)))[0].to_pydict()
    assert (counts["written"], counts["created"]) == ([500], [500])
    assert all(4990 <= server.ttl(k) <= 5000 for k in server.keys("*"))
    long = _batch(np.arange(500, 600), 5, label="x" * 80)  # its ValueProto is longer than a listpack keeps
    counts = list(redis_push.push_batches(iter([long]), _spec(PORT)))[0].to_pydict()
    assert (counts["written"], counts["created"]) == ([100], [0])
    assert _served(server, [0, 550]) == [(5, 0.0, "l0"), (5, 550 / 7.0, "x" * 80 + "550")]


def test_a_user_refused_restore_still_gets_every_key_written(server, caplog):
    """RESTORE needs the @dangerous ACL category; without it the partition falls back to the newer-wins
    script at its first call and writes everything (and logs why, without secrets)."""
    server.flushdb()
    server.acl_setuser("pusher", enabled=True, passwords=["+S3cret-pw"], keys=["*"],
                       commands=["+@all", "-restore"])
    try:
        spec = _spec(PORT, username="pusher", password="S3cret-pw")
        ids = np.arange(3 * redis_push.KEYS_PER_CALL)
        counts = list(redis_push.push_batches(iter([_batch(ids, 7)]), spec))[0].to_pydict()
        assert counts == {"written": [len(ids)], "created": [0], "skipped": [0], "failed": [0], "error": [None]}
        assert _served(server, ids) == [(7, i / 7.0, f"l{i}") for i in ids]
        assert "refused RESTORE" in caplog.text and "S3cret-pw" not in caplog.text
    finally:
        server.acl_deluser("pusher")


def test_the_create_script_writes_nothing_when_one_key_exists(server):
    """Atomic per call: one existing key among new ones, and none of them is created by it."""
    server.flushdb()
    ids = np.arange(redis_push.KEYS_PER_CALL)
    list(redis_push.push_batches(iter([_batch(ids[-1:], 99, "old")]), dataclasses.replace(_spec(PORT), view="w")))
    server.config_resetstat()
    counts = list(redis_push.push_batches(iter([_batch(ids, 3)]), _spec(PORT)))[0].to_pydict()
    assert (counts["written"], counts["created"]) == ([len(ids)], [0])
    assert "cmdstat_restore" not in server.info("commandstats")
    assert _served(server, ids) == [(3, i / 7.0, f"l{i}") for i in ids]

"""Redis Cluster, AUTH, TLS and failed keys: each test starts its own servers, pushes through Spark,
and reads back through Feast's own Redis online store against a pandas oracle."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
from datetime import timedelta
from pathlib import Path

import feast
import pyarrow as pa
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore_spark import FeatureStore
from featurestore_spark.cli import main as cli
from featurestore_spark.demo_data import DEFAULT_START, write_demo_data
from featurestore_spark.online.settings import OnlineStoreError, redis_settings
from featurestore_spark.repo import _import_definitions
from tests.helpers import oracle_latest, same
from tests.redis_servers import PORT_BASE, make_tls_files, redis_cluster, redis_server, wait_for_keys

ROOT = Path(__file__).resolve().parents[1]
END = DEFAULT_START + timedelta(days=10)
SECRET = "pw-Zq81-never-printed"
PROFILE = ["current_balance", "lifetime_trip_count", "is_premium", "segment", "avatar_hash", "favourite_zones"]


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("redis_ops")
    data = root / "data"
    previous = os.environ.get("FSSPARK_DATA_DIR")
    os.environ["FSSPARK_DATA_DIR"] = str(data)
    write_demo_data(spark, str(data), rows=1500, entity_rows_count=10, n_entities=120, days=10)
    yield root, data
    if previous is None:
        del os.environ["FSSPARK_DATA_DIR"]
    else:
        os.environ["FSSPARK_DATA_DIR"] = previous


def make_repo(spark, root: Path, name: str, online_store: str) -> tuple[feast.FeatureStore, FeatureStore, Path]:
    """The example repo with its own online_store block, applied to a Feast registry."""
    repo = root / name
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (repo / "feature_store.yaml").write_text(
        f"project: ops_{name}\nregistry: {repo}/registry.db\nprovider: local\n"
        f"online_store:\n  type: redis\n{online_store}entity_key_serialization_version: 3\n"
    )
    fs = feast.FeatureStore(repo_path=str(repo))
    fs.apply(_import_definitions(repo))
    return fs, FeatureStore(repo_path=repo, spark=spark), repo


def assert_feast_serves_latest(spark, fs: feast.FeatureStore, data: Path, view: str = "customer_profile") -> int:
    """Every key of the view, read through Feast, equals the latest offline row (pandas oracle)."""
    latest = oracle_latest(spark, f"{data}/{view}", ["customer_id"], END)
    ids = sorted(latest.index)
    got = fs.get_online_features(features=[f"{view}:{f}" for f in PROFILE],
                                 entity_rows=[{"customer_id": c} for c in ids]).to_dict()
    for n, c in enumerate(ids):
        for f in PROFILE:
            assert same(latest.loc[c, f], got[f][n]), (c, f, latest.loc[c, f], got[f][n])
    return len(ids)


def test_cluster_push_is_served_by_feast_redis_cluster(spark, demo, tmp_path):
    root, data = demo
    with redis_cluster(PORT_BASE + 10, tmp_path / "cluster") as ports:
        nodes = ",".join(f"127.0.0.1:{p}" for p in ports)
        fs, store, _ = make_repo(spark, root, "cluster",
                                 f"  redis_type: redis_cluster\n  connection_string: \"{nodes}\"\n")
        (report,) = store.materialize(DEFAULT_START - timedelta(days=1), END, ["customer_profile"])
        assert report.ok and report.written == report.rows == 120
        sizes = [redis.Redis(port=p).dbsize() for p in ports]
        assert sum(sizes) == 120 and min(sizes) > 0, sizes  # the keys spread over all three masters
        assert assert_feast_serves_latest(spark, fs, data) == 120
        again = store.materialize(DEFAULT_START - timedelta(days=1), END, ["customer_profile"])[0]
        assert (again.written, again.skipped, again.failed) == (0, 120, 0)


def test_password_server_wrong_or_missing_password_fails_early_and_right_one_pushes(spark, demo, tmp_path):
    root, data = demo
    port = PORT_BASE + 20
    with redis_server(port, tmp_path / "auth", "--requirepass", SECRET):
        os.environ["FSSPARK_TEST_REDIS_PASSWORD"] = SECRET
        for conn in (f"127.0.0.1:{port},password=wrong-{SECRET}", f"127.0.0.1:{port}"):
            settings = redis_settings({"type": "redis", "connection_string": conn})
            with pytest.raises(OnlineStoreError, match=rf"^Redis at 127.0.0.1:{port}/0 refused the credentials; "
                               r"check the username and password in online_store.connection_string") as info:
                settings.check()
            assert SECRET not in str(info.value) + repr(settings) and info.value.__cause__ is None
        fs, store, _ = make_repo(spark, root, "auth", f"  connection_string: \"127.0.0.1:{port},"
                                 "password=${FSSPARK_TEST_REDIS_PASSWORD}\"\n")
        (report,) = store.materialize(DEFAULT_START - timedelta(days=1), END, ["customer_profile"])
        assert report.ok and report.written == 120
        assert SECRET not in repr(report) and SECRET not in report.summary()
        assert assert_feast_serves_latest(spark, fs, data) == 120


def test_tls_server_with_ca_pushes_and_without_ca_fails_early(spark, demo, tmp_path):
    root, data = demo
    port = PORT_BASE + 30
    tls = make_tls_files(tmp_path / "tls")
    with redis_server(port, tmp_path / "tls-server", "--tls-cert-file", str(tls["cert"]), "--tls-key-file",
                      str(tls["key"]), "--tls-ca-cert-file", str(tls["ca"]), "--tls-auth-clients", "no",
                      tls=True, ssl=True, ssl_ca_certs=str(tls["ca"])):
        with pytest.raises(OnlineStoreError, match=rf"cannot reach Redis at 127.0.0.1:{port}/0 \(tls\): "
                           r"ConnectionError \(a TLS server: check ssl=true and ssl_ca_certs\)"):
            redis_settings({"type": "redis", "connection_string": f"127.0.0.1:{port},ssl=true"}).check()
        with pytest.raises(OnlineStoreError, match=rf"cannot reach Redis at 127.0.0.1:{port}/0: ConnectionError"):
            redis_settings({"type": "redis", "connection_string": f"127.0.0.1:{port}"}).check()
        fs, store, _ = make_repo(spark, root, "tls",
                                 f"  connection_string: \"127.0.0.1:{port},ssl=true,ssl_ca_certs={tls['ca']}\"\n")
        (report,) = store.materialize(DEFAULT_START - timedelta(days=1), END, ["customer_profile"])
        assert report.ok and report.written == 120
        assert assert_feast_serves_latest(spark, fs, data) == 120


def test_keys_the_server_refuses_are_counted_failed_and_a_rerun_writes_them(spark, demo, tmp_path, capsys):
    """Some keys are held by another program as strings: the script calls holding them fail, the
    CLI exits 3 naming the failure; once those keys are cleared, the same command writes the rest."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    root, data = demo
    port = PORT_BASE + 40
    with redis_server(port, tmp_path / "refusing"):
        client = redis.Redis(port=port)
        fs, _, repo = make_repo(spark, root, "refusing", f"  connection_string: \"127.0.0.1:{port}\"\n")
        ids = sorted(oracle_latest(spark, f"{data}/customer_profile", ["customer_id"], END).index)
        squatted = [serialize_entity_key(EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=c)]),
                                         3) + b"ops_refusing" for c in ids[::40]]
        for key in squatted:
            client.set(key, b"not a hash")
        args = ["--repo", str(repo), "materialize", "--start", "2025-12-31", "--end", END.isoformat(),
                "--views", "customer_profile"]
        assert cli(args) == 3
        out = capsys.readouterr()
        assert "WRONGTYPE Operation against a key holding the wrong kind of value" in out.out
        assert "rerun the same command to write them" in out.err
        counts = re.search(r"customer_profile: 120 keys, (\d+) written, 0 skipped \(not newer\), (\d+) failed", out.out)
        written, failed = int(counts[1]), int(counts[2])
        assert written + failed == 120 and failed > len(squatted)  # a failed call counts all its keys
        client.delete(*squatted)
        assert cli(args) == 0
        out = capsys.readouterr().out
        counts = re.search(r"customer_profile: 120 keys, (\d+) written, (\d+) skipped \(not newer\), 0 failed", out)
        # Keys a failed call wrote before the squatted key stopped it are skipped now: newer-wins.
        assert int(counts[1]) + int(counts[2]) == 120 and int(counts[2]) >= written
        assert assert_feast_serves_latest(spark, fs, data) == 120


def _rate_batch(first: int, size: int):
    """``size`` rows of a one-feature view in the push's input form (keys, ``__ts_us``, features)."""
    import numpy as np
    import pyarrow as pa

    ids = np.arange(first, first + size)
    return pa.RecordBatch.from_pydict({"driver_id": pa.array(ids), "__ts_us": pa.array(ids * 1_000_000),
                                       "rate": pa.array(ids / 7.0)})


def _rate_spec(port: int):
    from featurestore_spark.online import redis_push
    from featurestore_spark.online.settings import RedisSettings

    return redis_push.PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),), features=(("rate", "DOUBLE"),),
                               settings=RedisSettings(nodes=(("127.0.0.1", port),)))


def test_a_server_that_stays_down_counts_the_rest_of_the_partition_failed(tmp_path, monkeypatch):
    """After its retries a pipeline's keys, and every later key of the partition, count as failed."""
    from featurestore_spark.online import redis_push

    monkeypatch.setattr(redis_push, "RETRIES", 2)  # keep the test short: 0.05 s + 0.1 s of backoff
    monkeypatch.setattr(redis_push, "FIRST_PAUSE_SECONDS", 0.05)
    port = PORT_BASE + 50
    size = redis_push.KEYS_PER_PIPELINE

    with redis_server(port, tmp_path / "down"):
        def batches():
            yield _rate_batch(0, size)
            wait_for_keys(redis.Redis(port=port), size)  # the writer sends from a thread: let batch 0 land
            redis.Redis(port=port).shutdown(nosave=True)
            yield _rate_batch(size, size)
            yield _rate_batch(2 * size, size)

        counts = list(redis_push.push_batches(batches(), _rate_spec(port)))[0].to_pydict()
    assert counts == {"written": [size], "created": [size], "skipped": [0], "failed": [2 * size],
                      "error": [f"no answer from Redis at 127.0.0.1:{port}/0 after 2 retries"]}


def test_calls_answered_noscript_are_sent_again_with_the_script_loaded(tmp_path, monkeypatch):
    """The script cache emptied mid-push (SCRIPT FLUSH, a restart): NOSCRIPT answers are resent, none fail."""
    from featurestore_spark.online import redis_push

    monkeypatch.setattr(redis_push, "FIRST_PAUSE_SECONDS", 0.01)
    port = PORT_BASE + 60
    size = redis_push.KEYS_PER_PIPELINE

    with redis_server(port, tmp_path / "noscript"):
        client = redis.Redis(port=port)

        def batches():
            yield _rate_batch(0, size)
            wait_for_keys(client, size)
            client.script_flush()
            yield _rate_batch(size, size)

        counts = list(redis_push.push_batches(batches(), _rate_spec(port)))[0].to_pydict()
        assert counts == {"written": [2 * size], "created": [2 * size], "skipped": [0], "failed": [0], "error": [None]}
        assert client.dbsize() == 2 * size


@pytest.fixture(scope="module")
def lone_server(tmp_path_factory):
    with redis_server(PORT_BASE + 90, tmp_path_factory.mktemp("lone")) as port:
        yield port


#: What Redis holds for a key before the push: nothing, another view's fields only, or this view's
#: row with an older, the same or a newer event time than the pushed row.
_BEFORE = st.sampled_from(["absent", "other view", "older", "equal", "newer"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fresh=st.integers(0, 450), mixed=st.lists(_BEFORE, max_size=450),
       base=st.one_of(st.just(-300_000_000), st.integers(-62_135_596_800 * 10**6, 253_402_300_000 * 10**6)),
       step=st.sampled_from([1, 999_999, 1_000_000, 86_400 * 10**6]), restore=st.booleans())
def test_newer_wins_per_key_whatever_one_call_mixes(lone_server, fresh, mixed, base, step, restore):
    """Calls of only new keys are created whole by RESTORE or, with ``restore`` off, take the newer-wins
    script's shortcut (one EXISTS instead of an HGET per key); calls that mix new keys with keys holding
    older, equal or newer rows must still judge every key alone,
    also across 1970 (negative seconds) and by nanoseconds. The outcome per key, read back with Feast's
    own key, field and value functions, against an oracle. Event times (us): base + 2 * step * id,
    the stored row's shifted by one step."""
    from feast.infra.online_stores.redis import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from google.protobuf.timestamp_pb2 import Timestamp

    from featurestore_spark.online import redis_push

    client = redis.Redis(port=lone_server)
    client.flushdb()
    before = ["absent"] * fresh + mixed  # a leading run of new keys: whole calls of them
    ids = list(range(1, len(before) + 1))
    spec = _rate_spec(lone_server)
    shift = {"older": -1, "equal": 0, "newer": 1}
    for view, states in (("other", ("other view",)), ("v", tuple(shift))):
        rows = [(i, base + (2 * i + shift.get(b, 0)) * step) for i, b in zip(ids, before) if b in states]
        if rows:  # the row Redis holds: its event time (us) and rate -(its id)
            batch = pa.RecordBatch.from_pydict({
                "driver_id": pa.array([i for i, _ in rows], pa.int64()),
                "__ts_us": pa.array([t for _, t in rows], pa.int64()),
                "rate": pa.array([-float(i) for i, _ in rows])})
            list(redis_push.push_batches(iter([batch]), dataclasses.replace(spec, view=view)))
    pushed = pa.RecordBatch.from_pydict({"driver_id": pa.array(ids, pa.int64()),
                                         "__ts_us": pa.array([base + 2 * i * step for i in ids], pa.int64()),
                                         "rate": pa.array([float(i) for i in ids])})
    counts = list(redis_push.push_batches(iter([pushed]), dataclasses.replace(spec, restore=restore)))[0].to_pydict()

    wins = [b in ("absent", "other view", "older") for b in before]
    calls = [before[i : i + redis_push.KEYS_PER_CALL] for i in range(0, len(before), redis_push.KEYS_PER_CALL)]
    created = sum(len(c) for c in calls if set(c) == {"absent"}) if restore else 0  # no key of their call existed
    assert counts == {"written": [sum(wins)], "created": [created], "skipped": [len(ids) - sum(wins)], "failed": [0],
                      "error": [None]}
    pipe = client.pipeline()
    for i in ids:
        key = EntityKey(join_keys=["driver_id"], entity_values=[ValueProto(int64_val=i)])
        pipe.hmget(_redis_key("p", key, entity_key_serialization_version=3), ["_ts:v", _mmh3("v:rate")])
    for i, b, win, (stamp, rate) in zip(ids, before, wins, pipe.execute()):
        assert Timestamp.FromString(stamp).ToMicroseconds() == base + (2 * i + (0 if win else shift[b])) * step, (i, b)
        assert ValueProto.FromString(rate).double_val == (float(i) if win else -float(i)), (i, b)


def test_connection_strings_parse_as_feast_writes_them_and_mistakes_name_the_fix():
    cluster = redis_settings({"type": "redis", "redis_type": "redis_cluster",
                              "connection_string": "10.0.0.1:7000,10.0.0.2:7001,skip_full_coverage_check=true,"
                                                   f"ssl=true,ssl_ca_certs=/ca.pem,username=app,password={SECRET}"})
    assert (cluster.nodes, cluster.cluster, cluster.ssl, cluster.ssl_ca_certs, cluster.username) == (
        (("10.0.0.1", 7000), ("10.0.0.2", 7001)), True, True, "/ca.pem", "app")
    assert SECRET not in repr(cluster) and cluster.address == "cluster 10.0.0.1:7000,10.0.0.2:7001 (tls)"
    with pytest.raises(ValueError, match=r"connection_string lists several host:port but redis_type is redis; "
                       r"set redis_type: redis_cluster"):
        redis_settings({"type": "redis", "connection_string": "a:1,b:2"})
    with pytest.raises(ValueError, match=r"sets db for a Redis Cluster, which has only db 0; remove the db option"):
        redis_settings({"redis_type": "redis_cluster", "connection_string": "a:1,db=3"})
    with pytest.raises(ValueError, match=r"unknown option in part #2 \(use password, username, ssl, db, ssl_ca_certs"):
        redis_settings({"connection_string": "a:1,tls=true"})
    with pytest.raises(OnlineStoreError, match=r"^cannot reach Redis at cluster 127.0.0.1:1: "):  # no node answers
        redis_settings({"redis_type": "redis_cluster", "connection_string": "127.0.0.1:1"}).check()
    with pytest.raises(ValueError) as info:  # a password with a comma in it: its tail is not echoed
        redis_settings({"connection_string": f"a:1,password=Tr0ub,{SECRET}=zz"})
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError, match=r"redis_type 'redis_sentinel' is not supported; use redis or redis_cluster"):
        redis_settings({"redis_type": "redis_sentinel", "connection_string": "a:1"})


def test_cluster_push_follows_moved_and_ask_while_slots_change_hands(tmp_path, monkeypatch):
    """A resharding under a writer. One slot is handed to another master after the writer read the
    topology: its old owner answers -MOVED, once, and the writer reads the topology again. Another is
    halfway through a migration to a master just added (one the topology does not list yet): of its
    keys, an older value of one is still on the old owner, of another already on the new one, the rest
    are on neither; calls holding them are answered -TRYAGAIN or -ASK. Every key ends with the new value."""
    import pyarrow as pa
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from google.protobuf.timestamp_pb2 import Timestamp
    from redis.cluster import RedisCluster
    from redis.crc import key_slot

    from featurestore_spark.online import redis_push

    monkeypatch.setattr(redis_push, "FIRST_PAUSE_SECONDS", 0.01)
    size = 20_000  # about 1.2 keys per slot: some slots hold three or more
    added = PORT_BASE + 79
    with redis_cluster(PORT_BASE + 70, tmp_path / "resharding") as ports, \
            redis_server(added, tmp_path / "added", "--cluster-enabled", "yes", "--cluster-config-file",
                         str(tmp_path / "added" / "nodes.conf")):
        with pytest.raises(OnlineStoreError, match=rf"^Redis at 127.0.0.1:{ports[0]}/0 is a Redis Cluster node; set "
                           r"online_store.redis_type: redis_cluster and list the cluster's nodes in connection_string"):
            redis_settings({"connection_string": f"127.0.0.1:{ports[0]}"}).check()
        spec = redis_push.PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),),
                                   features=(("rate", "DOUBLE"),),
                                   settings=redis_settings({"redis_type": "redis_cluster",
                                                            "connection_string": f"127.0.0.1:{ports[0]}"}))
        keys = [serialize_entity_key(EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=i)]), 3) + b"p"
                for i in range(size)]
        slots = [key_slot(k) for k in keys]
        moved, asked = sorted({s for s in slots if slots.count(s) >= 3})[:2]
        ids_asked = [i for i in range(size) if slots[i] == asked]
        older = ids_asked[:2]  # written before, one second older, with another value
        assert 0 not in older
        list(redis_push.push_batches(iter([pa.RecordBatch.from_pydict({
            "driver_id": pa.array(older, pa.int64()), "__ts_us": pa.array([(i - 1) * 1_000_000 for i in older]),
            "rate": pa.array([-1.0] * len(older))})]), spec))

        node = {p: redis.Redis(port=p) for p in [*ports, added]}
        ids = {p: node[p].cluster("myid") for p in node}
        node[ports[0]].cluster("meet", "127.0.0.1", added)
        for _ in range(200):  # every master must know the new one, and it the whole cluster, before a migration
            if (all(ids[added] in c.cluster("nodes") for c in node.values())
                    and node[added].cluster("info").get("cluster_state") == "ok"):
                break
            time.sleep(0.05)
        cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        old = {s: cluster.nodes_manager.get_node_from_slot(s).port for s in (moved, asked)}
        new = {moved: next(p for p in ports if p != old[moved]), asked: added}

        def hand_over(slot: int) -> None:  # the target first, then the source, then the others
            for p in [new[slot], old[slot], *[p for p in node if p not in (new[slot], old[slot])]]:
                node[p].cluster("setslot", slot, "node", ids[new[slot]])

        node[added].cluster("setslot", asked, "importing", ids[old[asked]])
        node[old[asked]].cluster("setslot", asked, "migrating", ids[added])
        node[old[asked]].migrate("127.0.0.1", added, [keys[older[1]]], 0, 5000)

        def batches():  # runs after the writer read the topology: then the moved slot changes hands
            hand_over(moved)
            yield _rate_batch(0, size)

        counts = list(redis_push.push_batches(batches(), spec))[0].to_pydict()
        # Keys of the migrating slot are checked one by one; every other call finds its keys new.
        assert counts == {"written": [size], "created": [size - len(ids_asked)], "skipped": [0], "failed": [0],
                          "error": [None]}
        # The moved slot's keys went in one call: one -MOVED, then to the new owner after a topology read.
        assert node[old[moved]].info("errorstats").get("errorstat_MOVED", {}).get("count") == 1
        assert node[new[moved]].cluster("countkeysinslot", moved) == slots.count(moved)
        assert node[old[asked]].cluster("countkeysinslot", asked) == node[old[asked]].exists(keys[older[0]]) == 1
        assert node[added].cluster("countkeysinslot", asked) == len(ids_asked) - 1
        node[old[asked]].migrate("127.0.0.1", added, [keys[older[0]]], 0, 5000)
        hand_over(asked)  # the migration ends
        cluster.nodes_manager.initialize()
        ts, rate = b"_ts:v", _mmh3("v:rate")
        got = cluster.pipeline()
        for k in keys:
            got.hmget(k, [ts, rate])
        for i, (stamp, value) in enumerate(got.execute()):
            assert Value.FromString(value) == Value(double_val=i / 7.0) and Timestamp.FromString(stamp).seconds == i
        cluster.close()

        # A writer set up for one plain server but pointed at a cluster node (the Feast plugin's path
        # does not ping first): a key of another node's slot is refused, naming the setting to fix.
        elsewhere = next(i for i in range(size) if cluster.nodes_manager.get_node_from_slot(slots[i]).port != ports[0])
        counts = list(redis_push.push_batches(iter([_rate_batch(elsewhere, 1)]), _rate_spec(ports[0])))[0].to_pydict()
        assert counts == {"written": [0], "created": [0], "skipped": [0], "failed": [1], "error": [
            "MovedError: the server is a Redis Cluster node; set online_store.redis_type: redis_cluster"]}


def test_cluster_push_goes_on_after_a_master_fails_over_to_its_replica(tmp_path, monkeypatch):
    """A master is shut down between two pipelines of a writer: its calls find the connection lost,
    wait, read the topology again and go to the replica once it has taken over. Nothing fails, and
    every key holds its value (the replica had caught up before the master went: Redis replicates
    asynchronously, so a key written just before would be lost with the master, until a rerun)."""
    from feast.infra.online_stores.helpers import _mmh3
    from feast.protos.feast.types.Value_pb2 import Value
    from redis.cluster import RedisCluster

    from featurestore_spark.online import redis_push
    from featurestore_spark.online.redis_layout import encode_entity_keys

    monkeypatch.setattr(redis_push, "CLUSTER_GROUP_ROWS", 1000)  # the writer sends as the batches come
    size = 5000
    with redis_cluster(PORT_BASE + 80, tmp_path / "failover", replicas=1) as ports:
        settings = redis_settings({"redis_type": "redis_cluster",
                                   "connection_string": ",".join(f"127.0.0.1:{p}" for p in ports)})
        spec = redis_push.PushSpec(project="p", view="v", keys=(("driver_id", "INT64"),),
                                   features=(("rate", "DOUBLE"),), settings=settings)
        cluster = RedisCluster(host="127.0.0.1", port=ports[0])
        victim = cluster.nodes_manager.get_node_from_slot(0)
        masters = cluster.get_primaries()

        def caught_up() -> bool:  # every replica has all of its master's writes
            for m in masters:
                info = redis.Redis(port=m.port).info("replication")
                if info["connected_slaves"] < 1 or info["slave0"]["offset"] != info["master_repl_offset"]:
                    return False
            return True

        def batches():
            yield _rate_batch(0, size)
            for _ in range(200):  # the writer holds back less than a pipeline's keys until more come
                if sum(redis.Redis(port=m.port).dbsize() for m in masters) >= size - redis_push.KEYS_PER_PIPELINE:
                    break
                time.sleep(0.05)
            for _ in range(200):
                if caught_up():
                    break
                time.sleep(0.05)
            redis.Redis(port=victim.port).shutdown(nosave=True)
            yield _rate_batch(size, size)

        counts = list(redis_push.push_batches(batches(), spec))[0].to_pydict()
        assert counts == {"written": [2 * size], "created": [2 * size], "skipped": [0], "failed": [0], "error": [None]}
        cluster.nodes_manager.initialize()
        assert cluster.nodes_manager.get_node_from_slot(0).port != victim.port  # a replica took slot 0 over
        got = cluster.pipeline()
        for k in encode_entity_keys({"driver_id": _rate_batch(0, 2 * size).column("driver_id")},
                                    {"driver_id": "INT64"}, "p").to_pylist():
            got.hget(k, _mmh3("v:rate"))
        assert [Value.FromString(v).double_val for v in got.execute()] == [i / 7.0 for i in range(2 * size)]
        cluster.close()

"""Profile the Redis push alone: ``push_batches`` in one process (no Spark), client time vs server time.

    .venv/bin/python benchmarks/push_profile.py --keys 200000 --port 6379 [--profile]
    .venv/bin/python benchmarks/push_profile.py --keys 200000 --cluster 7400   # a throw-away 3-master cluster
    .venv/bin/python benchmarks/push_profile.py --keys 200000 --existing       # keys another view wrote first
    .venv/bin/python benchmarks/push_profile.py --keys 200000 --no-restore     # the newer-wins script only

Prints keys/s, how many keys the create script made by RESTORE, the client's CPU time (encoding,
packing, the sending thread), the server's time in the scripts and in the HGET, HSET, EXISTS and
RESTORE they call (``INFO commandstats``) and, with --profile, the top of
a cProfile of the client. Uses database 8 of a single server (or a throw-away cluster), flushed before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import redis

from featurestore_spark.online.redis_push import PushSpec, push_batches
from featurestore_spark.online.settings import RedisSettings

DB = 8


def batches(n: int) -> list[pa.RecordBatch]:
    """The shape of benchmarks/redis_push.py: one INT64 key, 5 features, 10k rows per Arrow batch."""
    rng = np.random.default_rng(1)
    out = []
    for start in range(0, n, 10_000):
        ids = np.arange(start, min(n, start + 10_000)) + 1000
        size = len(ids)
        out.append(pa.RecordBatch.from_pydict({
            "driver_id": pa.array(ids), "__ts_us": pa.array(1_767_225_600_000_000 + (ids % 86400) * 1_000_000),
            "f_float": pa.array(rng.random(size).astype(np.float32)), "f_double": pa.array(rng.random(size)),
            "f_long": pa.array((rng.random(size) * 1e9).astype(np.int64)),
            "f_count": pa.array((rng.random(size) * 100).astype(np.int64)),
            "f_label": pa.array([f"label-{i % 97}" for i in ids]),
        }))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=200_000)
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--cluster", type=int, metavar="FIRST_PORT",
                   help="start a local 3-master Redis Cluster on FIRST_PORT.. (as the tests do) and push to it")
    p.add_argument("--existing", action="store_true",
                   help="push the keys under another view first: the keys exist, this view's fields do not")
    p.add_argument("--no-restore", action="store_true",
                   help="no create calls (RESTORE of new keys): every key through the newer-wins script")
    p.add_argument("--profile", action="store_true",
                   help="also print a cProfile of the main thread (encoding, packing; the sending thread waits)")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        if args.cluster:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.redis_servers import redis_cluster

            ports = stack.enter_context(redis_cluster(args.cluster, Path(stack.enter_context(tempfile.TemporaryDirectory()))))
            settings = RedisSettings(nodes=tuple(("127.0.0.1", port) for port in ports), cluster=True)
            servers = [redis.Redis(port=port) for port in ports]
        else:
            settings = RedisSettings(nodes=(("127.0.0.1", args.port),), db=DB)
            servers = [redis.Redis(port=args.port, db=DB)]
        run(args, settings, servers)


def run(args: argparse.Namespace, settings: RedisSettings, servers: list[redis.Redis]) -> None:
    """Push ``args.keys`` keys once (and once more under cProfile with --profile); print the figures."""
    spec = PushSpec(project="bench", view="bench_stats", keys=(("driver_id", "INT64"),),
                    features=(("f_float", "FLOAT"), ("f_double", "DOUBLE"), ("f_long", "INT64"),
                              ("f_count", "INT64"), ("f_label", "STRING")), settings=settings)
    spec = dataclasses.replace(spec, restore=not args.no_restore)
    data = batches(args.keys)
    for server in servers:
        server.flushdb()
    if args.existing:
        list(push_batches(iter(data), dataclasses.replace(spec, view="other_view")))
    for server in servers:
        server.config_resetstat()
    started, cpu = time.perf_counter(), os.times()
    counts = list(push_batches(iter(data), spec))[0].to_pydict()
    seconds, cpu = time.perf_counter() - started, sum(os.times()[:2]) - sum(cpu[:2])
    stats = [server.info("commandstats") for server in servers]
    assert counts["written"] == [args.keys] and sum(server.dbsize() for server in servers) == args.keys, counts

    def per_key(command: str) -> float:
        return sum(st.get(f"cmdstat_{command}", {}).get("usec", 0) for st in stats) / args.keys

    print(f"{args.keys} keys ({counts['created'][0]} created by RESTORE): {seconds:.2f} s ({args.keys / seconds:,.0f} "
          f"keys/s); client CPU {cpu / args.keys * 1e6:.2f} us/key; server in the scripts {per_key('evalsha'):.2f} "
          f"us/key (HGET {per_key('hget'):.2f}, HSET {per_key('hset'):.2f}, EXISTS {per_key('exists'):.2f}, "
          f"RESTORE {per_key('restore'):.2f})")
    if args.profile:
        for server in servers:
            server.flushdb()
        profiler = cProfile.Profile()
        profiler.runcall(lambda: list(push_batches(iter(data), spec)))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    for server in servers:
        server.flushdb()


if __name__ == "__main__":
    main()

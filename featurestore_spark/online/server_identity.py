"""Which Redis server processes hold a push's keys, to tell whether one lost them during the push.

A server that restarts without persistence comes back empty, and a replica that takes over from a
failed master lacks the writes it had not received yet. Either way keys the push wrote earlier are
gone, and no answer the writer gets afterwards says so: its later calls succeed on the new process.
Every server process draws a ``run_id`` (``INFO server``) when it starts, so the set of (address,
run_id) of the server, or of every master of a cluster, read before and after a push differs exactly
when such a change happened in between. ``until_stable`` runs a push again until it does not.

A failover to a replica that had caught up, or a restart from an AOF that kept everything, also
changes the set: the push is then sent again needlessly, which newer-wins makes safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

from featurestore_spark.online.settings import RedisSettings

log = logging.getLogger(__name__)

#: Passes of a push before it gives up when the servers keep changing under it.
PASSES = 3
#: How long a server may be away (restarting, failing over) when its identity is read: twice what a
#: writer waits out in its retries (0.25 s doubling six times), as a cluster's failover may take longer.
PATIENCE_SECONDS = 32.0

Identity = frozenset[tuple[str, str]]
T = TypeVar("T")


class Unconfirmed(Exception):
    """The servers' identities could not be read: what the push wrote cannot be confirmed."""


def server_identity(settings: RedisSettings, patience: float = PATIENCE_SECONDS) -> Identity | None:
    """The (address, run_id) of the server, or of each master of the cluster.

    Waits up to ``patience`` seconds for a server that does not answer (raises ``Unconfirmed`` after
    that). None when the server refuses ``INFO`` (an ACL without it): restarts cannot be seen then.
    """
    deadline, pause = time.monotonic() + patience, 0.25
    while True:
        try:
            return _read(settings)
        except redis.ResponseError as exc:
            log.warning("Redis at %s refused INFO (%s): a restart during a push cannot be detected",
                        settings.address, type(exc).__name__)
            return None
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            if time.monotonic() + pause > deadline:
                raise Unconfirmed(f"Redis at {settings.address} did not answer ({type(exc).__name__}) "
                                  f"for {patience:.0f} s") from None
            time.sleep(pause)
            pause *= 2


def _read(settings: RedisSettings) -> Identity:
    client = settings.client()
    try:
        if not settings.cluster:
            return frozenset({(settings.address, _run_id(client))})
        # Every master must answer: one missing (failing over) means its slots' keys are unconfirmed.
        client.nodes_manager.initialize()
        masters = client.get_primaries()
        return frozenset((m.name, _run_id(client.get_redis_connection(m))) for m in masters)
    finally:
        client.close()


def _run_id(node: redis.Redis) -> str:
    run_id = node.info("server").get("run_id")
    if not run_id:  # a Redis-compatible server without one: as blind as a refused INFO
        raise redis.ResponseError("INFO server has no run_id")
    return str(run_id)


def until_stable(settings: RedisSettings, push: Callable[[bool], T]) -> tuple[T, int, str | None]:
    """Run ``push(resend)`` until the servers are the same processes after it as before it.

    ``resend`` is False on the first pass and True on later ones (every key goes again; keys holding
    the same event time were written by the pass before). Returns the last pass's result, the number
    of passes, and None, or why what it wrote is not confirmed (the servers did not answer afterwards,
    or changed during each of ``PASSES`` passes): the caller counts every key as failed then.
    """
    try:
        before = server_identity(settings)
    except Unconfirmed as exc:  # the push meets the same absent server, and counts its keys failed
        return push(False), 1, str(exc)
    result, passes = push(False), 1
    while True:
        try:
            after = server_identity(settings)
        except Unconfirmed as exc:
            return result, passes, f"{exc} after the push, so the keys it wrote are not confirmed"
        if after == before:
            return result, passes, None
        if passes == PASSES:
            return result, passes, (f"Redis at {settings.address} restarted or failed over during each of {PASSES} "
                                    "passes of the push, so the keys it wrote are not confirmed")
        changed = sorted(address for address, _ in (before or frozenset()) ^ (after or frozenset()))
        log.warning("Redis at %s restarted or failed over during the push (%s): keys written before may be lost; "
                    "pushing every key again (pass %d)", settings.address, ", ".join(dict.fromkeys(changed)),
                    passes + 1)
        before, passes = after, passes + 1
        result = push(True)

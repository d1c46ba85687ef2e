"""Where a call goes and how it is sent: the server, or on a Redis Cluster the node of its slot.

Calls go out on redis-py's own connections (its AUTH, TLS, database and cluster routing), each node's
calls in one write, to every node before any answer is read, so that a cluster's masters work at the
same time. The push (``redis_push``) decides what to do with the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import Connection

from featurestore_spark.online.redis_calls import Call
from featurestore_spark.online.redis_scripts import Script

#: A lost connection or an answer that did not come in time: the call may have run, and goes again.
LOST = (redis.ConnectionError, redis.TimeoutError)
_ASKING = b"*1\r\n$6\r\nASKING\r\n"

#: Per node: its calls; their answers (an error answer is an exception in the list, not raised), or the
#: exception that lost the whole node; and the answer to WAIT (replicas, or why it was refused), or None.
Sent = tuple[list[Call], list | Exception, int | str | None]


class Nodes:
    """The connections of one partition's push: one client (a cluster client reads the topology when
    made: if no node answers, that raises), the scripts loaded once per node."""

    def __init__(self, client: Any, cluster: bool, scripts: Sequence[Script], wait: tuple[int, int] | None):
        self.client = client  # a redis.Redis, or a redis.RedisCluster when ``cluster``
        self.cluster = cluster
        self.scripts = scripts
        self.loaded: set[int] = set()  # node clients that have the scripts
        self.outside: dict[tuple[str, int], redis.Redis] = {}  # -ASK targets the topology does not list
        self.wait_command = b""
        if wait is not None:  # WAIT numreplicas timeout_ms closes each node's chunk
            args = (b"WAIT", b"%d" % wait[0], b"%d" % wait[1])
            self.wait_command = b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)

    def of_slot(self, slot: int) -> redis.Redis:
        if not self.cluster:
            return self.client
        return self.client.get_redis_connection(self.client.nodes_manager.get_node_from_slot(slot))

    def at(self, address: tuple[str, int]) -> redis.Redis:
        """The client of the node at ``address`` (an -ASK target). A master that owns no slot yet (one
        just added, taking its first slots) is not in the topology: it gets a client of its own."""
        node = self.client.get_node(host=address[0], port=address[1])
        if node is not None:
            return self.client.get_redis_connection(node)
        if address not in self.outside:
            manager = self.client.nodes_manager
            self.outside[address] = manager.create_redis_node(address[0], address[1], **manager.connection_kwargs)
        return self.outside[address]

    def refresh(self) -> None:
        """Read a cluster's topology again (after -MOVED or a lost node); raises when no node answers."""
        self.client.nodes_manager.initialize()

    def forget_scripts(self) -> None:
        """After a lost connection: the server may have restarted with an empty script cache."""
        self.loaded.clear()

    def close(self) -> None:
        for client in (self.client, *self.outside.values()):
            client.close()

    def send(self, groups: list[tuple[redis.Redis, list[Call], bool]]) -> list[Sent]:
        """Send each node's calls in one write on a connection of that node, to every node before reading
        any answer, then read them. A group flagged ``asking`` goes to a slot's importing node: ASKING
        precedes each call. A lost connection, or an error answer to SCRIPT LOAD (after which no call
        can run), loses the node's group."""
        results: list[Sent] = []
        sent: list[tuple[redis.Redis, Connection, list[Call], bool]] = []
        try:
            for node, calls, asking in groups:
                conn = None
                try:
                    if id(node) not in self.loaded:
                        for script in self.scripts:
                            node.script_load(script.source)
                        self.loaded.add(id(node))
                    conn = node.connection_pool.get_connection()
                    sent.append((node, conn, calls, asking))
                    prefix = _ASKING if asking else b""
                    conn.send_packed_command([b"".join([*(prefix + c.command for c in calls), self.wait_command])])
                except (*LOST, redis.ResponseError) as exc:
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
                except LOST as exc:
                    results.append((calls, exc, None))
                finally:
                    sent.pop(0)
                    node.connection_pool.release(reader)  # a connection lost midway was closed by redis-py
        finally:
            for node, left, _, _ in sent:  # only after an unexpected error: hand the connections back closed
                left.disconnect()
                node.connection_pool.release(left)
        return results

    @staticmethod
    def _replicas(reader: Connection) -> int | str:
        """The answer to WAIT: the replicas that acknowledged, or why the server refused it (an ACL
        without WAIT, a node that is a replica)."""
        try:
            return int(reader.read_response())
        except redis.ResponseError as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

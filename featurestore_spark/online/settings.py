"""Redis online-store settings from feature_store.yaml's ``online_store``, secrets kept out of sight.

The connection string is Feast's: comma-separated ``host:port`` nodes (one for ``redis_type: redis``,
the startup nodes for ``redis_type: redis_cluster``), then ``name=value`` options spelled as redis-py
spells them (Feast passes them to redis-py unchanged): ``password``, ``username``, ``db``, ``ssl``,
``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``, ``socket_timeout`` (seconds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from featurestore_spark.errors import ConfigError, OnlineStoreError

_KNOWN = {"type", "connection_string", "redis_type", "key_ttl_seconds", "skip_dedup", "full_scan_for_deletion"}
_OPTIONS = ("password", "username", "ssl", "db", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
            "socket_timeout", "skip_full_coverage_check")


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    """Where and how to write. ``password`` never appears in repr, logs or errors.

    Attributes:
        nodes: (host, port) of the server, or the startup nodes of a cluster.
        cluster: True for ``redis_type: redis_cluster``.
        db: database number (single server only; a cluster has only database 0).
        ssl: connect with TLS.
        ssl_ca_certs, ssl_certfile, ssl_keyfile: CA bundle to verify the server, and the client's
            certificate and key for servers that require client certificates (``tls-auth-clients``).
        ssl_cert_reqs: "required" (default), "optional" or "none" (no verification: tests only).
        username: ACL user (Redis 6+); None means the default user.
        password: from the connection string (``password=${ENV_VAR}`` in feature_store.yaml).
        key_ttl_seconds: EXPIRE applied to a hash on every accepted or skipped write; 0 means none.
        socket_timeout: seconds to wait for an answer before the connection counts as lost and the
            pipeline is sent again (a server paused or swamped for longer).
    """

    nodes: tuple[tuple[str, int], ...] = (("127.0.0.1", 6379),)
    cluster: bool = False
    db: int = 0
    ssl: bool = False
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    key_ttl_seconds: int = 0
    socket_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.nodes:
            raise ConfigError("online_store.connection_string names no host:port")
        if self.cluster and self.db != 0:
            raise ConfigError("online_store.connection_string sets db for a Redis Cluster, which has only db 0; "
                              "remove the db option")
        if not self.socket_timeout > 0:
            raise ConfigError("online_store.connection_string option socket_timeout must be a number of seconds > 0")
        if self.ssl_cert_reqs not in ("required", "optional", "none"):
            raise ConfigError(f"online_store.connection_string has ssl_cert_reqs={self.ssl_cert_reqs}; "
                              "use required, optional or none")

    @property
    def host(self) -> str:
        return self.nodes[0][0]

    @property
    def port(self) -> int:
        return self.nodes[0][1]

    @property
    def address(self) -> str:
        where = ",".join(f"{h}:{p}" for h, p in self.nodes)
        kind = "cluster " if self.cluster else ""
        return f"{kind}{where}{'' if self.cluster else f'/{self.db}'}{' (tls)' if self.ssl else ''}"

    def _kwargs(self) -> dict:
        tls = {}
        if self.ssl:
            tls = {"ssl": True, "ssl_ca_certs": self.ssl_ca_certs, "ssl_certfile": self.ssl_certfile,
                   "ssl_keyfile": self.ssl_keyfile, "ssl_cert_reqs": self.ssl_cert_reqs}
        # No retries inside redis-py: the push resends whole pipelines with its own backoff.
        return {"username": self.username, "password": self.password, "socket_timeout": self.socket_timeout,
                "socket_connect_timeout": 10, "retry": Retry(NoBackoff(), 0), **tls}

    def client(self) -> redis.Redis | RedisCluster:
        """A new client: ``redis.Redis``, or ``RedisCluster`` over the startup nodes."""
        if self.cluster:
            return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in self.nodes], **self._kwargs())
        return redis.Redis(host=self.host, port=self.port, db=self.db, **self._kwargs())

    def check(self) -> None:
        """Ping the server (every cluster primary) from the driver, before any Spark work."""
        try:
            client = self.client()
            client.ping()
            clustered = not self.cluster and _cluster_enabled(client)
            client.close()
        except redis.AuthenticationError:
            raise OnlineStoreError(f"Redis at {self.address} refused the credentials; check the username and "
                                   "password in online_store.connection_string (or the variable it names)") from None
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            # The type names the failure (refused, timeout, certificate); the message could echo arguments.
            hint = " (a TLS server: check ssl=true and ssl_ca_certs)" if "SSL" in str(exc) else ""
            raise OnlineStoreError(f"cannot reach Redis at {self.address}: {type(exc).__name__}{hint}; is the "
                                   "server up and online_store.connection_string right?") from None
        if clustered:  # each call would be refused: its keys hash to many slots of several masters
            raise OnlineStoreError(f"Redis at {self.address} is a Redis Cluster node; set online_store.redis_type: "
                                   "redis_cluster and list the cluster's nodes in connection_string")


def _cluster_enabled(client: redis.Redis) -> bool:
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.ResponseError:  # INFO renamed or forbidden by the server's ACL: assume a plain server
        return False


def redis_settings(online_store: dict) -> RedisSettings:
    """Parse ``online_store``: type redis, redis_type redis or redis_cluster, Feast's connection string.

    Example:
        >>> redis_settings({"type": "redis", "redis_type": "redis_cluster",
        ...                 "connection_string": "10.0.0.1:6379,10.0.0.2:6379,ssl=true"}).address
        'cluster 10.0.0.1:6379,10.0.0.2:6379 (tls)'
    """
    unknown = set(online_store) - _KNOWN
    if unknown:
        raise ConfigError(f"online_store has unknown setting(s) {', '.join(sorted(unknown))}")
    if online_store.get("type", "redis") != "redis":
        raise ConfigError(f"online_store type {online_store.get('type')!r} is not supported; use type: redis")
    redis_type = online_store.get("redis_type", "redis")
    if redis_type not in ("redis", "redis_cluster"):
        raise ConfigError(f"online_store redis_type {redis_type!r} is not supported; use redis or redis_cluster")
    raw = os.path.expandvars(str(online_store.get("connection_string", "127.0.0.1:6379")))
    if "${" in raw:  # never echo the string: it may hold a password
        raise ConfigError("online_store.connection_string uses a ${VARIABLE} that is not set; export it")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    nodes = []
    values: dict = {"cluster": redis_type == "redis_cluster"}
    for number, part in enumerate(parts, start=1):
        if "=" not in part:
            host, _, port = part.rpartition(":")
            if not (port or "6379").isdigit():  # e.g. the tail of a password containing a comma
                raise ConfigError(f"online_store.connection_string has a part #{number} that is neither "
                                  "host:port nor name=value (a comma inside a password splits it: avoid commas)")
            nodes.append((host or "127.0.0.1", int(port or 6379)))
            continue
        name, _, value = part.partition("=")
        if name not in _OPTIONS:  # not echoed: it may be the tail of a password that holds a comma
            raise ConfigError(f"online_store.connection_string has an unknown option in part #{number} "
                              f"(use {', '.join(_OPTIONS)}; a comma inside a password splits it: avoid commas)")
        if name == "ssl":
            values["ssl"] = value.lower() == "true"
        elif name == "db":
            if not value.isdigit():
                raise ConfigError("online_store.connection_string option db must be a number")
            values["db"] = int(value)
        elif name == "socket_timeout":
            try:
                values["socket_timeout"] = float(value)
            except ValueError:
                raise ConfigError("online_store.connection_string option socket_timeout must be a number of "
                                  "seconds") from None
        elif name != "skip_full_coverage_check":  # accepted for Feast's sake; the push needs every slot
            values[name] = value
    if len(nodes) > 1 and not values["cluster"]:
        raise ConfigError("online_store.connection_string lists several host:port but redis_type is redis; "
                          "set redis_type: redis_cluster, or keep one host:port")
    values["nodes"] = tuple(nodes) or (("127.0.0.1", 6379),)
    values["key_ttl_seconds"] = int(online_store.get("key_ttl_seconds") or 0)
    return RedisSettings(**values)

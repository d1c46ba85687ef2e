"""Redis online-store settings from feature_store.yaml's ``online_store``, secrets kept out of sight."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from featurestore_spark.errors import ConfigError, FeatureStoreError

_KNOWN = {"type", "connection_string", "redis_type", "key_ttl_seconds", "skip_dedup", "full_scan_for_deletion"}


class OnlineStoreError(FeatureStoreError, ConnectionError):
    """The online store cannot be reached or refused the credentials."""


@dataclass(frozen=True)
class RedisSettings:
    """Where and how to write. ``password`` never appears in repr, logs or errors.

    Attributes:
        host, port, db, ssl: the server.
        password: from the connection string (``password=${ENV_VAR}`` in feature_store.yaml).
        key_ttl_seconds: EXPIRE applied to a hash on every accepted or skipped write; 0 means none.
    """

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    ssl: bool = False
    password: str | None = field(default=None, repr=False)
    key_ttl_seconds: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}/{self.db}{' (tls)' if self.ssl else ''}"

    def client(self) -> redis.Redis:
        # No retries inside redis-py: the push resends whole pipelines with its own backoff.
        return redis.Redis(host=self.host, port=self.port, db=self.db, ssl=self.ssl, password=self.password,
                           socket_timeout=30, socket_connect_timeout=10, retry=Retry(NoBackoff(), 0))

    def check(self) -> None:
        """Ping the server from the driver, before any Spark work."""
        try:
            self.client().ping()
        except redis.AuthenticationError:
            raise OnlineStoreError(f"Redis at {self.address} refused the credentials; check the password "
                                   "in online_store.connection_string (or the variable it names)") from None
        except redis.RedisError as exc:
            raise OnlineStoreError(f"cannot reach Redis at {self.address}: {type(exc).__name__}; is the server up "
                                   "and online_store.connection_string right?") from None


def redis_settings(online_store: dict) -> RedisSettings:
    """Parse ``online_store`` (type redis; ``host:port[,password=...][,ssl=true][,db=N]``)."""
    unknown = set(online_store) - _KNOWN
    if unknown:
        raise ConfigError(f"online_store has unknown setting(s) {', '.join(sorted(unknown))}")
    if online_store.get("type", "redis") != "redis":
        raise ConfigError(f"online_store type {online_store.get('type')!r} is not supported; use type: redis")
    if online_store.get("redis_type", "redis") != "redis":
        raise ConfigError("online_store redis_type 'redis_cluster' is not supported yet; use a single Redis server")
    raw = os.path.expandvars(str(online_store.get("connection_string", "127.0.0.1:6379")))
    first, *options = [p.strip() for p in raw.split(",") if p.strip()]
    host, _, port = first.rpartition(":")
    values: dict = {"host": host or "127.0.0.1", "port": int(port or 6379)}
    for opt in options:
        name, _, value = opt.partition("=")
        if name == "password":
            values["password"] = value
        elif name == "ssl":
            values["ssl"] = value.lower() == "true"
        elif name == "db":
            values["db"] = int(value)
        else:
            raise ConfigError(f"online_store.connection_string has unknown option '{name}' (use password, ssl, db)")
    values["key_ttl_seconds"] = int(online_store.get("key_ttl_seconds") or 0)
    return RedisSettings(**values)

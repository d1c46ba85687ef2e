"""Feast's Redis online store with writes through this engine's atomic newer-wins script.

``online_store: type: featurestore_spark.feast_plugin.NewerWinsRedisOnlineStore`` in
feature_store.yaml (the other ``online_store`` settings are Feast's Redis ones). Reads, deletes
and teardown stay Feast's; ``online_write_batch`` (behind ``write_to_online_store`` and push
sources) writes a row only if its event time is strictly newer than the stored ``_ts:{view}``,
checked and written in one server-side step, so concurrent writers cannot put older data back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from feast import FeatureView
from feast.infra.online_stores.helpers import _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.utils import make_tzaware
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import StrictStr

from featurestore_spark.errors import OnlineStoreError
from featurestore_spark.feast_plugin._common import redis_target
from featurestore_spark.online.redis_push import PushSpec, write_encoded


class NewerWinsRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis settings; only ``type`` differs. ``skip_dedup`` is ignored: writes always compare."""

    type: StrictStr = "featurestore_spark.feast_plugin.NewerWinsRedisOnlineStore"  # type: ignore[assignment]
    """The online store class, as Feast imports it."""


Row = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]


class NewerWinsRedisOnlineStore(RedisOnlineStore):
    """See the module docstring."""

    def online_write_batch(
        self, config: RepoConfig, table: FeatureView, data: list[Row], progress: Callable[[int], Any] | None,
    ) -> None:
        """Write ``data`` (Feast's rows: entity key, values, event time, created time) newer-wins.

        Rows are grouped by the set of features they carry (one script call covers one set). Of several
        rows of one key, the newest stays (the first of equal event times), as if they were written one
        after another: the writer takes one row per key.
        """
        settings = redis_target(config)
        groups: dict[tuple[str, ...], dict[bytes, tuple[datetime, tuple[bytes, ...]]]] = {}
        for entity_key, values, event_time, _ in data:
            names = tuple(values)
            latest = groups.setdefault(names, {})
            key = _redis_key(config.project, entity_key, config.entity_key_serialization_version)
            when = make_tzaware(event_time)
            if key in latest and latest[key][0] >= when:
                continue
            stamp = Timestamp()
            stamp.FromDatetime(when)
            latest[key] = (when, (stamp.SerializeToString(), *(values[n].SerializeToString() for n in names)))
        for names, newest in groups.items():
            keys, rows = list(newest), [row for _, row in newest.values()]
            # Only the names matter here: the values arrive as Feast's own ValueProto bytes.
            spec = PushSpec(project=config.project, view=table.name, keys=(),
                            features=tuple((n, "") for n in names), settings=settings)
            _, failed, error = write_encoded(spec, keys, [list(col) for col in zip(*rows)])
            if failed:
                raise OnlineStoreError(f"{failed} of {len(keys)} keys of '{table.name}' were not written to Redis "
                                       f"at {settings.address} ({error}); write them again (newer-wins makes "
                                       "that safe)")
        if progress:
            progress(len(data))

"""Write encoded rows to Redis from the executors: pipelined batches of an atomic newer-wins script.

One connection per partition. Each script call takes many keys; a pipeline sends several calls
in one round trip. The script compares the stored ``_ts:{view}`` (a protobuf Timestamp) with
the incoming time on the server, so a concurrent writer is never overwritten by older data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import redis

from featurestore_spark.online import redis_layout as L
from featurestore_spark.online.settings import RedisSettings

#: Keys per script call, and script calls per pipeline (one round trip).
KEYS_PER_CALL = 200
CALLS_PER_PIPELINE = 8
#: A pipeline that loses its connection (a Redis restart, a failover) is sent again after a pause
#: that doubles each time. Sending again is safe: the script only writes strictly newer values, so
#: keys a lost attempt had already written are skipped (and counted as skipped).
RETRIES = 6
FIRST_PAUSE_SECONDS = 0.25

# KEYS: hashes. ARGV: ts field, ttl, m, m field names, then per key: ts bytes, m values.
# A Timestamp proto holds field 1 (seconds) and field 2 (nanos) as varints; zero fields are absent.
NEWER_WINS = """
local function ts(b)
  local s, n, i = 0, 0, 1
  while i <= #b do
    local tag = string.byte(b, i); i = i + 1
    local v, mul = 0, 1
    repeat
      local c = string.byte(b, i); i = i + 1
      v = v + (c % 128) * mul; mul = mul * 128
    until c < 128
    if tag == 8 then s = v elseif tag == 16 then n = v end
  end
  return s, n
end
local field, ttl, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local written, stride = 0, 1 + m
for i, key in ipairs(KEYS) do
  local o = 3 + m + (i - 1) * stride
  local stamp = ARGV[o + 1]
  local cur = redis.call('HGET', key, field)
  local newer = true
  if cur then
    local sec, ns = ts(stamp)
    local cs, cn = ts(cur)
    newer = sec > cs or (sec == cs and ns > cn)
  end
  if newer then
    local args = {field, stamp}
    for j = 1, m do
      args[#args + 1] = ARGV[3 + j]
      args[#args + 1] = ARGV[o + 1 + j]
    end
    redis.call('HSET', key, unpack(args))
    written = written + 1
  end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return written
"""


@dataclass(frozen=True)
class PushSpec:
    """What one partition needs to encode and write a view's rows (picklable, no secrets in repr)."""

    project: str
    view: str
    keys: tuple[tuple[str, str], ...]  # (column, Feast dtype), named as the entity's join keys
    features: tuple[tuple[str, str], ...]
    settings: RedisSettings


class NewerWinsWriter:
    """Sends encoded rows as pipelined calls of the newer-wins script over one connection.

    Args:
        client: the connection (one per partition, or per online store).
        ts_field: the ``_ts:{view}`` field name.
        feature_fields: the hash fields of the features, in the order of each row's values.
        key_ttl_seconds: EXPIRE applied on every accepted or skipped write; 0 means none.

    Example:
        >>> writer = NewerWinsWriter(client, b"_ts:v", [field_hash("v", "f")], 0)  # doctest: +SKIP
        >>> writer.add([key], [(ts_bytes, value_bytes)])                            # doctest: +SKIP
        >>> writer.flush()                                                          # doctest: +SKIP
        1
    """

    def __init__(self, client: redis.Redis, ts_field: bytes, feature_fields: list[bytes], key_ttl_seconds: int):
        self._client = client
        self._script = client.register_script(NEWER_WINS)
        self._head = [ts_field, str(key_ttl_seconds).encode(), str(len(feature_fields)).encode(), *feature_fields]
        self._calls: list[tuple[list[bytes], list[bytes]]] = []
        self._written = 0

    def add(self, keys: list[bytes], rows: list[tuple[bytes, ...]]) -> None:
        """Queue rows (event-time Timestamp bytes, then one value per feature field) for ``keys``."""
        for start in range(0, len(keys), KEYS_PER_CALL):
            stop = min(len(keys), start + KEYS_PER_CALL)
            args = list(self._head)
            for row in rows[start:stop]:
                args.extend(row)
            self._calls.append((keys[start:stop], args))
            if len(self._calls) >= CALLS_PER_PIPELINE:
                self._send()

    def flush(self) -> int:
        """Send what is queued; return how many rows were written (newer than Redis held) so far."""
        self._send()
        return self._written

    def _send(self) -> None:
        if not self._calls:
            return
        for attempt in range(RETRIES + 1):
            try:
                pipe = self._client.pipeline(transaction=False)
                for keys, args in self._calls:
                    self._script(keys=keys, args=args, client=pipe)
                done = sum(pipe.execute())
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == RETRIES:
                    raise
                time.sleep(FIRST_PAUSE_SECONDS * 2**attempt)
        self._calls.clear()
        self._written += done


def push_batches(batches: Iterator[pa.RecordBatch], spec: PushSpec) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: write every row (keys, ``__ts_us``, features); yield (written, skipped)."""
    writer = NewerWinsWriter(
        spec.settings.client(), L.ts_field(spec.view), [L.field_hash(spec.view, f) for f, _ in spec.features],
        spec.settings.key_ttl_seconds,
    )
    total = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        keys = L.encode_entity_keys({k: batch.column(k) for k, _ in spec.keys}, dict(spec.keys), spec.project)
        stamps = L.encode_timestamps(batch.column("__ts_us").to_numpy(zero_copy_only=False))
        values = [L.encode_values(batch.column(f), dtype) for f, dtype in spec.features]
        writer.add(keys, list(zip(stamps, *values)))
        total += batch.num_rows
    written = writer.flush()
    yield pa.RecordBatch.from_pydict({"written": [written], "skipped": [total - written]})

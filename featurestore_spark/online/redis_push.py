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


def push_batches(batches: Iterator[pa.RecordBatch], spec: PushSpec) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: write every row (keys, ``__ts_us``, features); yield (written, skipped)."""
    client = spec.settings.client()
    script = client.register_script(NEWER_WINS)
    head = [L.ts_field(spec.view), str(spec.settings.key_ttl_seconds).encode(), str(len(spec.features)).encode()]
    head += [L.field_hash(spec.view, f) for f, _ in spec.features]
    written = total = 0
    calls: list[tuple[list[bytes], list[bytes]]] = []

    def flush() -> int:
        if not calls:
            return 0
        for attempt in range(RETRIES + 1):
            try:
                pipe = client.pipeline(transaction=False)
                for keys, args in calls:
                    script(keys=keys, args=args, client=pipe)
                done = sum(pipe.execute())
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == RETRIES:
                    raise
                time.sleep(FIRST_PAUSE_SECONDS * 2**attempt)
        calls.clear()
        return done

    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        keys = L.encode_entity_keys({k: batch.column(k) for k, _ in spec.keys}, dict(spec.keys), spec.project)
        stamps = L.encode_timestamps(batch.column("__ts_us").to_numpy(zero_copy_only=False))
        values = [L.encode_values(batch.column(f), dtype) for f, dtype in spec.features]
        rows = list(zip(stamps, *values))
        for start in range(0, n, KEYS_PER_CALL):
            stop = min(n, start + KEYS_PER_CALL)
            args = list(head)
            for row in rows[start:stop]:
                args.extend(row)
            calls.append((keys[start:stop], args))
            if len(calls) >= CALLS_PER_PIPELINE:
                written += flush()
        total += n
    written += flush()
    yield pa.RecordBatch.from_pydict({"written": [written], "skipped": [total - written]})

"""The Lua scripts the push runs on Redis, and how a call of one is laid out.

Two scripts, each taking many keys a call: the newer-wins script judges every key against its stored
``_ts:{view}`` and writes what is strictly newer; the create script makes keys that do not exist yet
whole with RESTORE (``redis_dump``), and writes nothing if one of them exists. Both run atomically on
the server, so no other writer comes between a check and its write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# KEYS: hashes. ARGV: ts field, ttl, m, m field names, then per key: ts bytes, m values.
# Returns {written, same, newer, fresh}: keys written, keys that held this very event time, keys that
# held a newer one (each counted, so the caller adds nothing up by subtraction), and 1 when none of
# the keys existed (else 0).
# A Timestamp proto holds field 1 (seconds) and field 2 (nanos) as varints; zero fields are absent.
# Seconds before 1970 are 10-byte varints (two's complement): their first nine 7-bit groups, each taken
# from 127, add up to -seconds - 1 (exact in a Lua double for any year Timestamp allows).
# Equal bytes are equal times: a rerun of the same rows skips without decoding (-35% server time).
# A call's keys are distinct (the writer takes one row per key): a repeated key would make the shortcut
# below let its later row win, whatever its time.
# A call whose keys all do not exist yet (a first push, new entities) skips the HGETs: one EXISTS of all
# its keys costs the server less than one HGET per key (2.3-2.7 against 2.8-3.0 us/key in the script).
# The HSET is spelled out for the view's m features (see ``newer_wins``): building an argument
# table and unpacking it per key cost the server about 15% more time.
_NEWER_WINS = """
local function ts(b)
  local s, n, i = 0, 0, 1
  while i <= #b do
    local tag = string.byte(b, i); i = i + 1
    local v, w, mul, k = 0, 0, 1, 0
    repeat
      local c = string.byte(b, i); i = i + 1; k = k + 1
      if k < 10 then v = v + (c % 128) * mul; w = w + (127 - c % 128) * mul end
      mul = mul * 128
    until c < 128
    if k == 10 then v = -w - 1 end
    if tag == 8 then s = v elseif tag == 16 then n = v end
  end
  return s, n
end
local field, ttl, m = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local written, same, kept, stride = 0, 0, 0, 1 + m
local fresh = redis.call('EXISTS', unpack(KEYS)) == 0
for i, key in ipairs(KEYS) do
  local o = 3 + m + (i - 1) * stride
  local stamp = ARGV[o + 1]
  local cur = false
  if not fresh then cur = redis.call('HGET', key, field) end
  local newer = true
  if cur == stamp then
    newer = false
    same = same + 1
  elseif cur then
    local sec, ns = ts(stamp)
    local cs, cn = ts(cur)
    newer = sec > cs or (sec == cs and ns > cn)
    if not newer then
      if sec == cs and ns == cn then same = same + 1 else kept = kept + 1 end
    end
  end
  if newer then
    HSETS
    written = written + 1
  end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return {written, same, kept, fresh and 1 or 0}
"""

# KEYS: hashes that must not exist. ARGV: ttl in milliseconds (0: none), then per key its DUMP payload.
# Returns -1, writing nothing, when a key exists (the caller sends the newer-wins script instead).
# RESTORE refuses a key that exists, and nothing runs between the EXISTS and the RESTOREs.
CREATE = """
if redis.call('EXISTS', unpack(KEYS)) > 0 then return -1 end
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do redis.call('RESTORE', key, ttl, ARGV[i + 1]) end
return #KEYS
"""


#: Field-value pairs per HSET in the script: Redis's Lua compiler refuses a call of about 230
#: arguments ("function or expression too complex"), so wide views get several HSETs per key.
PAIRS_PER_HSET = 50


def newer_wins(m: int) -> str:
    """The newer-wins script for a view of ``m`` features."""
    pairs = [f"ARGV[{3 + j}], ARGV[o + {1 + j}]" for j in range(1, m + 1)]
    chunks = ["field, stamp"] + [", ".join(pairs[i : i + PAIRS_PER_HSET]) for i in range(0, m, PAIRS_PER_HSET)]
    chunks[:2] = [", ".join(chunks[:2])]
    return _NEWER_WINS.replace("HSETS", "\n    ".join(f"redis.call('HSET', key, {c})" for c in chunks))


class Script:
    """A script and how its calls are laid out: EVALSHA, sha, numkeys, the keys, the view's arguments
    (``head``, once per call, in RESP), then ``per_key`` arguments of each key in the keys' order."""

    def __init__(self, source: str, head: Sequence[bytes], per_key: int):
        self.source, self.per_key = source, per_key
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self.head = b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in head)
        self.argc = 3 + len(head)  # counted, not read back from the RESP: field hashes may hold CRLF

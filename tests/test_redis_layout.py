"""Golden bytes: the engine's vectorised Redis layout against Feast's own serializers."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from feast.infra.online_stores.redis import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore_spark.online import redis_layout as L

I64 = st.integers(-(2**63), 2**63 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
F64 = st.floats(allow_nan=False, width=64)
F32 = st.floats(allow_nan=False, width=32)
TEXT = st.text(max_size=20)
BLOB = st.binary(min_size=1, max_size=20)  # Feast writes a batch of only b"" as nulls; not our concern
SECONDS = st.integers(0, 4_000_000_000)

SCALARS = {
    "INT64": (I64, pa.int64()), "INT32": (I32, pa.int32()), "DOUBLE": (F64, pa.float64()),
    "FLOAT": (F32, pa.float32()), "BOOL": (st.booleans(), pa.bool_()), "STRING": (TEXT, pa.string()),
    "BYTES": (BLOB, pa.binary()),
}


def feast_bytes(values, dtype: str) -> list[bytes]:
    out = []
    for v in values:
        if v is None:
            out.append(Value().SerializeToString())
        else:
            out.append(python_values_to_proto_values([v], ValueType[dtype])[0].SerializeToString())
    return out


@pytest.mark.parametrize("dtype", sorted(SCALARS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_scalar_values_match_feast(dtype, data):
    strategy, arrow_type = SCALARS[dtype]
    values = data.draw(st.lists(st.one_of(st.none(), strategy), max_size=30))
    column = pa.array([None, *values, None], arrow_type)[1:-1]  # a slice: Arrow columns may start at an offset
    assert L.encode_values(column, dtype).to_pylist() == feast_bytes(values, dtype)


@pytest.mark.parametrize("dtype,inner", [
    ("INT64_LIST", (I64, pa.int64())), ("INT32_LIST", (I32, pa.int32())), ("DOUBLE_LIST", (F64, pa.float64())),
    ("FLOAT_LIST", (F32, pa.float32())), ("BOOL_LIST", (st.booleans(), pa.bool_())),
    ("STRING_LIST", (TEXT, pa.string())), ("BYTES_LIST", (BLOB, pa.binary())),
])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_list_values_match_feast(dtype, inner, data):
    strategy, arrow_type = inner
    values = data.draw(st.lists(st.one_of(st.none(), st.lists(strategy, max_size=5)), max_size=10))
    assert L.encode_values(pa.array(values, pa.list_(arrow_type)), dtype).to_pylist() == feast_bytes(values, dtype)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), SECONDS), max_size=20))
def test_unix_timestamps_match_feast(seconds):
    stamps = [None if s is None else datetime.fromtimestamp(s, tz=timezone.utc) for s in seconds]
    column = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    assert L.encode_values(column, "UNIX_TIMESTAMP").to_pylist() == feast_bytes(stamps, "UNIX_TIMESTAMP")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(-62_135_596_800 * 10**6, 253_402_300_799 * 10**6), min_size=1, max_size=20))
def test_event_timestamps_match_protobuf(micros):  # years 1 to 9999
    expected = []
    for us in micros:
        ts = Timestamp()
        ts.FromMicroseconds(us)
        expected.append(ts.SerializeToString())
    assert L.encode_timestamps(np.array(micros, dtype=np.int64)).to_pylist() == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(I64, TEXT, I32), min_size=1, max_size=20))
def test_entity_keys_match_feast(rows):
    cols = {"driver_id": pa.array([r[0] for r in rows], pa.int64()), "customer_id": pa.array([r[1] for r in rows]),
            "zone": pa.array([r[2] for r in rows], pa.int32())}
    dtypes = {"driver_id": "INT64", "customer_id": "STRING", "zone": "INT32"}
    ours = L.encode_entity_keys(cols, dtypes, "my_project").to_pylist()
    theirs = [
        _redis_key("my_project", EntityKey(
            join_keys=["driver_id", "customer_id", "zone"],
            entity_values=[Value(int64_val=d), Value(string_val=c), Value(int32_val=z)],
        ), entity_key_serialization_version=3)
        for d, c, z in rows
    ]
    assert ours == theirs


def test_documented_examples():
    key = L.encode_entity_keys({"driver_id": pa.array([1001], pa.int64())}, {"driver_id": "INT64"}, "my_project")[0].as_py()
    assert key.hex() == "01000000" "02000000" "09000000" + b"driver_id".hex() + "04000000" "08000000" \
        "e903000000000000" + b"my_project".hex()
    assert L.field_hash("driver_hourly_stats", "conv_rate") == bytes.fromhex("6160e3da")
    assert L.field_hash("driver_hourly_stats", "conv_rate") == _mmh3("driver_hourly_stats:conv_rate")

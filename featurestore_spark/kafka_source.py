"""Kafka as a stream source for ``ingest_stream``: records decoded into a view source's columns, and
the records that cannot be decoded kept as dead letters instead of stopping the stream.

A record's value is JSON (an object with the source table's columns) or Avro (a record schema given
inline or as a file). Timestamps are ISO-8601 strings (an offset, or UTC without one) or epoch
milliseconds. A record is a dead letter, with the reason, when its value does not parse, a field has
the wrong type, a join key is missing, or the event timestamp is missing or unreadable; the others
are appended and pushed as any stream's rows. Kafka's offsets live in the query's checkpoint, so a
restart resumes where the last recorded batch ended; the appends of good rows and of dead letters are
both idempotent per batch (Delta transaction ids), so a batch run again adds nothing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from featurestore_spark.errors import ConfigError
from featurestore_spark.specs import FeatureViewSpec

VALUE_FORMATS = ("json", "avro")
#: The columns of a dead-letter table (``dead_letters_location``).
DEAD_LETTER_COLUMNS = ("topic", "partition", "offset", "kafka_timestamp", "key", "value", "reason", "batch_id",
                       "recorded_at")
_ROW, _REASON, _CORRUPT = "__row", "__reason", "__corrupt"


@dataclass(frozen=True)
class KafkaSource:
    """Where the records come from and how their values are read.

    Attributes:
        bootstrap: ``host:port[,host:port]`` of the brokers.
        topic: the topic (or a comma-separated list of topics) to subscribe to.
        value_format: ``json`` or ``avro``.
        avro_schema: with ``avro``: the Avro record schema, as JSON text or a path to an ``.avsc`` file.
        starting_offsets: where a new query starts (``earliest``, ``latest``, or Spark's JSON form);
            a query restarted from its checkpoint resumes from the checkpoint's offsets instead.
        options: passed to Spark's Kafka source as they are (``kafka.security.protocol``,
            ``kafka.sasl.jaas.config``, ``maxOffsetsPerTrigger``, ...). Values stay out of logs and errors.
    """

    bootstrap: str
    topic: str
    value_format: str = "json"
    avro_schema: str | None = None
    starting_offsets: str = "earliest"
    options: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.bootstrap or ":" not in self.bootstrap:
            raise ConfigError(f"Kafka bootstrap servers '{self.bootstrap}' are not host:port[,host:port]; "
                              "pass --kafka-bootstrap 127.0.0.1:9092 (for example)")
        if not self.topic:
            raise ConfigError("no Kafka topic: pass --topic")
        if self.value_format not in VALUE_FORMATS:
            raise ConfigError(f"value format '{self.value_format}' is not one of {', '.join(VALUE_FORMATS)}")
        if self.value_format == "avro" and not self.avro_schema:
            raise ConfigError("Avro values need their schema: pass --avro-schema FILE.avsc (or the schema as JSON)")

    def read(self, spark: SparkSession) -> DataFrame:
        """The streaming DataFrame of the topic's records (Spark's Kafka source columns)."""
        # Spark's default failOnDataLoss=true stays: records deleted by retention before they were read,
        # or a topic created again, stop the query instead of being skipped with a log line.
        reader = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", self.bootstrap)
                  .option("subscribe", self.topic).option("startingOffsets", self.starting_offsets))
        for key, value in self.options.items():
            reader = reader.option(key, value)
        return reader.load()

    def avro_schema_text(self) -> str:
        text = self.avro_schema or ""
        if text.lstrip().startswith("{"):
            return text
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"Avro schema '{text}' is neither a file nor JSON; pass --avro-schema FILE.avsc")
        return path.read_text()


@dataclass(frozen=True)
class Decoder:
    """Turns a batch of Kafka records into the view source's rows and the dead letters (picklable: it
    runs inside ``foreachBatch``, also on a Spark Connect server)."""

    schema_json: str  # the source table's schema, as StructType JSON
    keys: tuple[str, ...]  # join-key columns (physical names)
    timestamp: str  # the event-timestamp column
    value_format: str = "json"
    avro_schema: str | None = None

    @property
    def schema(self) -> T.StructType:
        return T.StructType.fromJson(json.loads(self.schema_json))

    def _parsed(self, value: Column) -> tuple[Column, Column]:
        """The value as a struct of the source's columns (timestamps still as text), and whether it did
        not parse (or had a field of the wrong type)."""
        schema = self.schema
        as_text = T.StructType([T.StructField(f.name, T.StringType() if _is_time(f.dataType) else f.dataType)
                                for f in schema.fields])
        if self.value_format == "avro":
            from pyspark.sql.avro.functions import from_avro

            parsed = from_avro(value, self.avro_schema or "", {"mode": "PERMISSIVE"})
            # PERMISSIVE gives a null record, or (bytes it cannot decode) a record of nulls only.
            empty = reduce(lambda a, b: a & b, [parsed[f.name].isNull() for f in schema.fields])
            return parsed, parsed.isNull() | empty
        with_corrupt = T.StructType([*as_text.fields, T.StructField(_CORRUPT, T.StringType())])
        parsed = F.from_json(value.cast("string"), with_corrupt,
                             {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
        return parsed, parsed.isNull() | parsed[_CORRUPT].isNotNull()

    def decode(self, records: DataFrame) -> DataFrame:
        """Each record with ``__row`` (the source's columns, typed) and ``__reason`` (null for a good row)."""
        schema = self.schema
        parsed, broken = self._parsed(F.col("value"))
        columns, unreadable = [], []
        for f in schema.fields:
            raw = parsed[f.name]
            if _is_time(f.dataType):
                text = raw.cast("string")
                # Epoch milliseconds up to 15 digits (past the year 30000); longer numbers (micro- or
                # nanoseconds) are not read as milliseconds, and would overflow Spark's conversion.
                millis = F.when(text.rlike(r"^-?\d{1,15}$"), F.timestamp_millis(text.try_cast("long")))
                value = F.coalesce(millis, F.when(~text.rlike(r"^-?\d+$"), F.try_to_timestamp(text))).cast(f.dataType)
                unreadable.append((f.name, text, value,
                                   f"the timestamp '{f.name}' is neither ISO-8601 nor epoch milliseconds: "))
            else:  # JSON is parsed with the table's types already; Avro with its own, cast here
                value = raw.try_cast(f.dataType)
                unreadable.append((f.name, raw.cast("string"), value, f"the field '{f.name}' does not fit its column: "))
            columns.append(value.alias(f.name))
        row = F.struct(*columns)
        reason = F.when(broken, F.lit(f"the value is not {self.value_format.upper()} of the source's columns "
                                      "(or a field has the wrong type)"))
        for _, text, value, why in unreadable:  # present in the record, but not readable as its column's type
            reason = reason.when(text.isNotNull() & value.isNull(), F.concat(F.lit(why), F.substring(text, 1, 200)))
        for key in self.keys:
            reason = reason.when(row[key].isNull(), F.lit(f"the join key '{key}' is missing"))
        reason = reason.when(row[self.timestamp].isNull(), F.lit(f"the event timestamp '{self.timestamp}' is missing"))
        return records.select("*", row.alias(_ROW), reason.alias(_REASON))

    def good(self, records: DataFrame) -> DataFrame:
        """The records that can be read, in the source's columns (lazy; for checks and tests)."""
        return self.decode(records).where(F.col(_REASON).isNull()).select(f"{_ROW}.*")

    def split_decoded(self, decoded: DataFrame, batch_id: int) -> tuple[DataFrame, DataFrame]:
        """Of ``decode``'s output: (the good rows in the source's columns, the dead letters in
        ``DEAD_LETTER_COLUMNS``)."""
        good = decoded.where(F.col(_REASON).isNull()).select(f"{_ROW}.*")
        dead = decoded.where(F.col(_REASON).isNotNull()).select(
            "topic", "partition", "offset", F.col("timestamp").alias("kafka_timestamp"), "key", "value",
            F.col(_REASON).alias("reason"), F.lit(batch_id).cast("long").alias("batch_id"),
            F.current_timestamp().alias("recorded_at"))
        return good, dead


def decoder_for(view: FeatureViewSpec, schema: T.StructType, source: KafkaSource) -> Decoder:
    """The decoder of ``source``'s records into the view source's ``schema``."""
    keys = tuple(view.source.column_for(k.name) for k in view.join_keys)
    timestamp = view.source.column_for(view.source.timestamp_field)
    missing = [c for c in (*keys, timestamp) if c not in schema.fieldNames()]
    if missing:
        raise ConfigError(f"feature view '{view.name}': its source table has no column {', '.join(missing)}")
    return Decoder(schema.json(), keys, timestamp, source.value_format,
                   source.avro_schema_text() if source.value_format == "avro" else None)


def dead_letters_location(view: FeatureViewSpec) -> str:
    """The dead-letter Delta table next to the view's source: ``<path>_dead_letters`` for a path,
    ``<table>_dead_letters`` for a table name."""
    return f"{view.source.address.rstrip('/')}_dead_letters"


def _is_time(dtype: T.DataType) -> bool:
    return isinstance(dtype, (T.TimestampType, T.TimestampNTZType))

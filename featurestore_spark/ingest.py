"""Streaming ingestion: a Structured Streaming DataFrame into a view's Delta source and into Redis.

Each micro-batch is appended to the view's Delta table, then (for an online view) the latest row
per entity key of the batch within the view's ttl of the batch's time is pushed to Redis through the
newer-wins script, as ``materialize`` would push it then. The append is idempotent (Delta's
``txnAppId``, the query's id, which its checkpoint keeps, and ``txnVersion``, the batch id: a batch
Spark runs again after a failure is not appended twice, and a new checkpoint starts a new id), and so
is the push (a replayed or out-of-order row older than what Redis holds is skipped): the table gets
every row exactly once, Redis the newest value per key. A push that leaves keys unwritten fails the
batch, and with it the query: restarted from its checkpoint, the query runs that batch again (the
append is skipped, the push completes).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery

from featurestore_spark.delta_io import read_text
from featurestore_spark.errors import OnlineStoreError, SourceError
from featurestore_spark.kafka_source import Decoder, dead_letters_location
from featurestore_spark.online.materialize import latest_of, push
from featurestore_spark.online.settings import RedisSettings
from featurestore_spark.sources import read_view
from featurestore_spark.specs import FeatureViewSpec, RepoSpec

log = logging.getLogger(__name__)

def ingest_stream(
    spark: SparkSession, repo: RepoSpec, view: FeatureViewSpec, stream: DataFrame, checkpoint: str,
    settings: RedisSettings | None, *, trigger: dict | None = None, query_name: str | None = None,
    min_replicas: int = 0,
    decoder: Decoder | None = None,
) -> StreamingQuery:
    """Start a query that writes ``stream`` (rows in the source table's columns) to the view's Delta
    source and, when ``settings`` is given, its newest values to Redis. Returns the running query.

    The stream's columns are checked against the view (join keys, timestamps, features, types)
    before the query starts; extra columns are written too, and Delta refuses columns the table
    lacks. ``checkpoint`` is the query's checkpoint folder: keep it to resume where it stopped.
    ``trigger`` is passed to ``DataStreamWriter.trigger`` (e.g. ``{"availableNow": True}``).
    With ``decoder`` (Kafka records, ``kafka_source``), each batch is decoded first: records that
    cannot be read are appended to the view's dead-letter table, once per batch as well.
    """
    if not stream.isStreaming:
        raise SourceError(f"feature view '{view.name}': ingest_stream needs a streaming DataFrame "
                          "(spark.readStream...); for a batch DataFrame append to the Delta table and materialize")
    features = tuple(f.name for f in view.features)
    # The same column and type checks as every read (of the decoded rows, for Kafka records).
    read_view(spark, view, features, raw=stream if decoder is None else decoder.good(stream))
    address, location = view.source.address, view.source.location
    dead_letters = dead_letters_location(view)

    known: dict[str, str] = {}  # the query's id, read from the checkpoint by the first batch of this process

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        # Runs in the driver, or over Spark Connect in a Python process of the server: it may use only
        # what it is given and its own state (``known``), no state shared with the caller, no session
        # but the batch's.
        session = batch.sparkSession
        now = datetime.now(timezone.utc)
        batch = batch.persist() if decoder is None else decoder.decode(batch).persist()
        try:
            if "id" not in known:
                known["id"] = _query_id(session, checkpoint)
            app_id = f"fsspark-{known['id']}"
            dead = 0
            rows_in = batch
            if decoder is not None:  # records that cannot be read go to the dead letters, with the reason
                rows_in, letters = decoder.split_decoded(batch, batch_id)
                dead = letters.count()
                if dead:
                    _append(letters, dead_letters, f"{app_id}-dead-letters", batch_id, by_path=bool(view.source.path))
                    log.warning("feature view '%s', batch %d: %d record(s) that cannot be read went to %s", view.name,
                                batch_id, dead, dead_letters)
            _append(rows_in, address, app_id, batch_id, by_path=bool(view.source.path))
            if settings is not None:
                rows = read_view(session, view, features, raw=rows_in)
                rows = latest_of(rows, view, now - view.ttl if view.ttl else None, now)
                counts = push(session, repo, view, settings, rows, min_replicas=min_replicas)
                log.info("feature view '%s', batch %d: %d keys, %d written, %d skipped, %d failed, %d dead letters",
                         view.name, batch_id, counts["rows"], counts["written"], counts["skipped"], counts["failed"], dead)
                if counts["failed"]:
                    raise OnlineStoreError(
                        f"feature view '{view.name}', batch {batch_id}: {counts['failed']} key(s) were not written to "
                        f"Redis ({counts['error']}); the batch is in {location}; restart the query from its "
                        "checkpoint to push it again")
        finally:
            batch.unpersist()

    writer = stream.writeStream.foreachBatch(write_batch).option("checkpointLocation", checkpoint)
    if trigger:
        writer = writer.trigger(**trigger)
    if query_name:
        writer = writer.queryName(query_name)
    return writer.start()


def _append(rows: DataFrame, address: str, app_id: str, batch_id: int, *, by_path: bool) -> None:
    """Append ``rows`` once per (query, batch): Delta skips a transaction id it has already committed."""
    writer = rows.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch_id)
    writer.save(address) if by_path else writer.saveAsTable(address)


def _query_id(spark: SparkSession, checkpoint: str) -> str:
    """The query's id, as its checkpoint keeps it (``metadata``, written before the first batch): the
    same across restarts from the checkpoint, new with a new checkpoint. Delta's ``txnAppId`` is made
    of it, so that a batch run again is known by (id, batch id)."""
    return str(json.loads(read_text(spark, f"{checkpoint.rstrip('/')}/metadata").splitlines()[0])["id"])

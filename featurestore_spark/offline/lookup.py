"""The lookup strategy, for key sets whose candidate feature rows are few after key pruning.

A view keyed by a driver *and* a customer may keep a few hundred of its millions of rows once pruned to
the key pairs of the entity rows, yet the windowed range join would still shuffle and sort every entity
row for them: on the benchmark, 4 s of a 16 s join for 209 rows. Here those candidates are instead
materialised once, grouped by key into arrays and broadcast; each entity row takes the greatest ranking
struct visible at its time from its key's array. The entity rows are not shuffled at all.

The choice rests on measured numbers, not a guess. A bounded probe reads at most ``MAX_ROWS + 1``
candidate rows (a ``limit``: it stops early on a big candidate set) and counts the array entries the
entity rows would inspect (the sum, over candidates, of their key's entity rows). Lookup is chosen
when there are at most ``MAX_ROWS`` candidates and at most ``MAX_WORK_PER_ROW`` entries per entity row
on average; otherwise the windowed range join runs as planned. Both strategies read the same candidates
and take the ``max`` of the same ranking struct, so they return the same rows.

The probe's rows are kept with ``localCheckpoint`` (on the executors, freed when the returned DataFrame
is garbage-collected): a lost executor before the result is used means running the request again.
"""

from __future__ import annotations

import dataclasses
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from featurestore_spark.offline.candidates import ROWS, VIS, KeySet, key_set, micros
from featurestore_spark.offline.plan import JoinPlan, LookupProbe, group_views
from featurestore_spark.offline.refs import ViewRequest

#: Candidate rows a lookup may hold (they are broadcast: a few MB).
MAX_ROWS = 100_000
#: Array entries an entity row may inspect on average (interpreted lambdas, about 0.1 us each: a
#: few per row cost less than the shuffle and sort of the row that the windowed join needs).
MAX_WORK_PER_ROW = 4
_ARRAY = "__cands"


def wins(group: list[ViewRequest]) -> list[str]:
    """The ranking-struct column of each view of a key set, in view order."""
    return [f"__w{i}" for i in range(len(group))]


def plan_lookups(
    entity: DataFrame,
    ts_column: str,
    requests: list[ViewRequest],
    frames: dict[str, DataFrame],
    plan: JoinPlan,
    *,
    by_created: bool,
    max_rows: int | None = None,
    max_work_per_row: float | None = None,
) -> tuple[JoinPlan, dict[tuple[str, ...], DataFrame]]:
    """Probe every key-pruned key set; return the plan with the probes, and the lookup table of each
    key set that takes the lookup strategy (one bounded Spark job per probed key set).

    ``max_rows`` and ``max_work_per_row`` default to ``MAX_ROWS`` and ``MAX_WORK_PER_ROW``.
    """
    max_rows = MAX_ROWS if max_rows is None else max_rows
    max_work_per_row = MAX_WORK_PER_ROW if max_work_per_row is None else max_work_per_row
    by_view = {r.view.name: r for r in requests}
    groups, tables = [], {}
    for keys, views in group_views([r.view for r in requests]).items():
        gplan = plan.group(keys)
        if not gplan.prune_keys or plan.entity_rows == 0:
            groups.append(gplan)
            continue
        group = [by_view[v.name] for v in views]
        ks = key_set(entity, ts_column, group, wins(group), frames, plan, gplan, by_created)
        probe, table = _probe(ks, max_rows, int(min(max_work_per_row * plan.entity_rows, 2**62)))
        groups.append(dataclasses.replace(gplan, lookup=probe))
        if table is not None:
            tables[keys] = table
    return dataclasses.replace(plan, groups=tuple(groups)), tables


def _probe(ks: KeySet, max_rows: int, max_work: int) -> tuple[LookupProbe, DataFrame | None]:
    types = {w: rows.schema[w].dataType for w, rows in ks.rows.items()}
    parts = [
        rows.select(*ks.keys, VIS, ROWS, *[(F.col(w) if w == own else F.lit(None).cast(t)).alias(w) for w, t in types.items()])
        for own, rows in ks.rows.items()
    ]
    union = reduce(DataFrame.unionByName, parts)
    # Grouped after the limit: when the limit cuts nothing (the only case that is used), every
    # candidate is in. The checkpoint runs the probe once; the table is then read from it.
    table = (
        union.limit(max_rows + 1)
        .groupBy(*ks.keys)
        .agg(
            F.collect_list(F.struct(VIS, *types)).alias(_ARRAY),
            F.count(F.lit(1)).alias("__m"),
            F.sum(ROWS).alias("__work"),
        )
        .localCheckpoint(eager=True)
    )
    got = table.agg(F.sum("__m").alias("rows"), F.sum("__work").alias("work")).first()
    rows, work = (got["rows"] or 0, got["work"] or 0) if got else (0, 0)
    if rows > max_rows:
        return LookupProbe(rows=None, work=0, max_rows=max_rows, max_work=max_work), None
    probe = LookupProbe(rows=rows, work=work, max_rows=max_rows, max_work=max_work)
    return probe, (table.select(*ks.keys, _ARRAY) if probe.chosen else None)


def lookup_join(current: DataFrame, ts_column: str, ks: KeySet, table: DataFrame, wins: list[str]) -> DataFrame:
    """``current`` (all its columns, in order) plus ``__vis`` and one ranking struct per win: the
    greatest candidate of the row's key visible at its time, or null."""
    t = micros(F.col(f"`{ts_column}`"))
    joined = current.select("*", *ks.entity_keys, t.alias(VIS)).join(F.broadcast(table), on=ks.keys, how="left")
    visible = F.filter(_ARRAY, lambda c: c[VIS] <= F.col(VIS))
    return joined.select(
        *[F.col(f"`{c}`") for c in current.columns], VIS,
        *[F.array_max(F.transform(visible, _field(w))).alias(w) for w in wins],
    )


def _field(name: str):
    return lambda c: c[name]

"""A brute-force pandas reference of docs/semantics.md section 1 (the point-in-time join).

Written to be obviously right, not fast: for every entity row and every view, scan all the
view's rows. The engine is tested against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd


@dataclass(frozen=True)
class OracleView:
    name: str
    rows: pd.DataFrame          # join keys (named as in the entity df), "ts", optional "created", features
    join_keys: tuple[str, ...]
    features: tuple[str, ...]   # requested features, in order
    ttl: timedelta | None
    has_created: bool
    tie_order: tuple[str, ...] = ()  # all feature columns; exact ties are settled by a hash in the engine


def pit_join(entity: pd.DataFrame, ts: str, views: list[OracleView], *, by_created: bool = False) -> list[dict]:
    """One output dict per entity row: its columns, then ``view:feature`` -> value (None when absent).

    Exact ties (same event and created time) are returned as a set of acceptable values: the
    contract only requires a fixed rule, which a separate test pins.
    """
    out = []
    for _, e in entity.iterrows():
        row = {c: e[c] for c in entity.columns}
        for v in views:
            best = _winners(e, ts, v, by_created)
            for f in v.features:
                row[f"{v.name}:{f}"] = None if best is None else frozenset(_norm(x) for x in best[f])
        out.append(row)
    return out


def _winners(e: pd.Series, ts: str, v: OracleView, by_created: bool) -> pd.DataFrame | None:
    t = e[ts]
    if any(pd.isna(e[k]) for k in v.join_keys):
        return None
    cand = v.rows
    for k in v.join_keys:
        cand = cand[cand[k] == e[k]]
    cand = cand[cand["ts"].notna() & (cand["ts"] <= t)]
    if v.ttl is not None:
        cand = cand[cand["ts"] >= t - v.ttl]
    if by_created and v.has_created:
        cand = cand[cand["created"].notna() & (cand["created"] <= t)]
    if cand.empty:
        return None
    cand = cand[cand["ts"] == cand["ts"].max()]
    if v.has_created and len(cand) > 1:
        if cand["created"].notna().any():
            cand = cand[cand["created"] == cand["created"].max()]
    return cand


def _norm(x):
    if isinstance(x, (list, tuple)) or hasattr(x, "tolist"):
        return tuple(_norm(i) for i in (x.tolist() if hasattr(x, "tolist") else x))
    if x is None or (isinstance(x, float) and pd.isna(x)) or x is pd.NaT:
        return None
    return x


def normalise(value):
    """Make an engine value comparable with the oracle's."""
    return _norm(value)

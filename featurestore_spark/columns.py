"""The engine's internal column names, in one place.

The join and the push add columns of their own next to the user's: a source in normal form
(``sources.read_view``), the candidates and their pruning ranges, the sweep's union, the join's
feature outputs, and the push's event time. A user column may not take the names that share a
frame with it; ``RESERVED_FEATURE`` and ``RESERVED_OUTPUT`` say which, matched case-insensitively
because Spark resolves names that way.
"""

from __future__ import annotations

import re

# A source in normal form (sources.read_view): join keys __k0..__kN, event time, created time, tie hash.
TS, CREATED, TIE = "__ts", "__c", "__tie"

# Candidates (offline/candidates.py): time bucket, visibility time, per-key entity time range for pruning,
# and the ranking struct of one view (renamed __w<i> per view of a key set).
BUCKET, VIS = "__bucket", "__vis"
LO, HI = "__lo", "__hi"
WINNER = "__w"

# The sweep's union (offline/pit_join.py): row kind, and the entity row carried whole in a struct.
KIND, PAYLOAD = "__kind", "__entity"

# Materialization (online/materialize.py -> online/redis_push.py): the winner's event time in microseconds.
TS_MICROS = "__ts_us"

#: Names that sit next to a view's features (normal form and pruning): a feature cannot have one.
RESERVED_FEATURE = re.compile(r"__(k\d+|ts|c|tie|lo|hi)", re.IGNORECASE)
RESERVED_FEATURE_TEXT = "__k<n>, __ts, __c, __tie, __lo, __hi"
#: Names of the join's feature outputs: an entity column cannot have one.
RESERVED_OUTPUT = re.compile(r"__f\d+", re.IGNORECASE)


def key_col(i: int) -> str:
    """The i-th join key of a source in normal form."""
    return f"__k{i}"


def winner_col(i: int) -> str:
    """The ranking struct of the i-th view of a key set."""
    return f"{WINNER}{i}"


def output_col(i: int) -> str:
    """The i-th feature output of the join, before it takes its requested name."""
    return f"__f{i}"

"""Training-set requests: a YAML or JSON file, a dict, or a ``TrainingSetRequest``, validated strictly.

Example request (YAML)::

    name: ride_ranking_daily
    entities:
      delta: /data/entities            # or table: ml.entities | parquet: /data/e.parquet | sql: SELECT ...
    features: ride_ranking             # a FeatureService name, or a list of "view:feature"
    output:
      path: /data/training_sets/ride_ranking   # or table: ml.ride_ranking
      partition_by: []
      mode: error                      # error (default) | overwrite | append
    options:
      full_feature_names: false
      filter_by_created_timestamp: false
      start_time: 2026-01-01T00:00:00Z # keep entity rows with start_time <= event time < end_time
      end_time: 2026-02-01T00:00:00Z
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from featurestore_spark.errors import RequestError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntitySource(_Strict):
    """Where the entity rows come from: exactly one of the four."""

    delta: str | None = Field(None, description="Delta table path (pinned to its version in the manifest)")
    table: str | None = Field(None, description="Delta table name in the Spark catalog (pinned too)")
    parquet: str | None = Field(None, description="Parquet file or folder (not versioned: reproduce re-reads it)")
    sql: str | None = Field(None, description="a SQL query (not versioned: reproduce re-runs it)")
    version: int | None = Field(None, ge=0, description="Delta version to read; set by reproduce, rarely by hand")

    _paths = field_validator("delta", "parquet")(classmethod(lambda cls, v: _absolute(v)))

    @model_validator(mode="after")
    def _one_kind(self) -> EntitySource:
        given = [k for k in ("delta", "table", "parquet", "sql") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of delta, table, parquet, sql (got {', '.join(given) or 'none'})")
        if self.version is not None and self.kind not in ("delta", "table"):
            raise ValueError(f"version applies to delta and table sources, not {self.kind}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("delta", "table", "parquet", "sql") if getattr(self, k))

    @property
    def location(self) -> str:
        return str(getattr(self, self.kind))


class Output(_Strict):
    """Where the training set goes."""

    path: str | None = Field(None, description="Delta table path")
    table: str | None = Field(None, description="Delta table name in the Spark catalog")
    partition_by: tuple[str, ...] = Field((), description="output columns to partition the table by")
    _paths = field_validator("path")(classmethod(lambda cls, v: _absolute(v)))
    mode: Literal["error", "overwrite", "append"] = Field(
        "error", description="error: fail if the output exists; overwrite: replace it (earlier versions stay "
        "readable by time travel); append: add the rows as a new version"
    )

    @model_validator(mode="after")
    def _one_target(self) -> Output:
        if (self.path is None) == (self.table is None):
            raise ValueError("give exactly one of path or table")
        return self

    @property
    def location(self) -> str:
        return str(self.path or self.table)


class Options(_Strict):
    """How to join."""

    full_feature_names: bool = False
    filter_by_created_timestamp: bool = False
    start_time: datetime | None = Field(None, description="keep entity rows with event time >= start_time")
    end_time: datetime | None = Field(None, description="keep entity rows with event time < end_time")

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Options:
        if self.start_time and self.end_time and self.start_time >= self.end_time:
            raise ValueError("start_time must be before end_time")
        return self


class TrainingSetRequest(_Strict):
    """A request for a training set. Build one in Python, or load a file with ``load_request``.

    Example:
        >>> TrainingSetRequest(name="rides", entities={"delta": "/data/entities"},
        ...                    features="ride_ranking", output={"path": "/data/ts/rides"}).output.mode
        'error'
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="catalog name of the training set")
    entities: EntitySource
    features: str | tuple[str, ...] = Field(description="a FeatureService name or 'view:feature' references")
    output: Output
    options: Options = Options()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the manifest records)."""
        return self.model_dump(mode="json", exclude_none=True)


def load_request(request: object) -> TrainingSetRequest:
    """A ``TrainingSetRequest`` from itself, a dict, or a ``.yaml`` / ``.yml`` / ``.json`` file path.

    In files, ``${NAME}`` is replaced by the environment variable NAME (an unset one is an error).

    Raises:
        RequestError: the file is missing or unreadable, or a key is unknown, mistyped or missing;
            every problem is listed with its location in the request.
    """
    if isinstance(request, TrainingSetRequest):
        return request
    where = "request"
    if isinstance(request, (str, Path)):
        path = Path(request)
        where = f"request {path}"
        if not path.is_file():
            raise RequestError(f"{where}: no such file; pass a YAML or JSON training-set request")
        text = path.read_text()
        try:
            request = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise RequestError(f"{where}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
        request = _expand(request, where)
    if not isinstance(request, dict):
        raise RequestError(f"{where}: must be a mapping with name, entities, features, output, options")
    try:
        return TrainingSetRequest.model_validate(request)
    except ValidationError as exc:
        raise RequestError(f"{where} is invalid:\n" + "\n".join(_describe(e) for e in exc.errors())) from None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand(value: Any, where: str) -> Any:
    """``${NAME}`` in the file's string values, from the environment (after parsing: values cannot
    change the file's structure)."""
    if isinstance(value, dict):
        return {k: _expand(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if not isinstance(value, str):
        return value
    unset = [n for n in _VAR.findall(value) if n not in os.environ]
    if unset:
        raise RequestError(f"{where}: environment variable(s) {', '.join(unset)} not set (used as ${{NAME}})")
    return _VAR.sub(lambda m: os.environ[m.group(1)], value)


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _absolute(path: str | None) -> str | None:
    """Local paths made absolute (a relative one would read as a table name, and moves with the cwd);
    a path with a scheme (``s3a://...``, Hadoop's ``file:/...`` and ``hdfs:/...``) is kept as it is."""
    if path is None or _SCHEME.match(path) or path.startswith("/"):
        return path
    return os.path.abspath(path)


def _describe(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(error["loc"][:-1])
        return f"  {loc}: unknown key (allowed: {', '.join(allowed)})"
    msg = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    return f"  {loc or 'request'}: {msg}{shown}"


def _fields_at(loc: tuple) -> list[str]:
    model: type[BaseModel] = TrainingSetRequest
    for part in loc:
        annotation = model.model_fields[str(part)].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)

"""Resolve feature references (or a FeatureService) against a repo into view requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feast import FeatureService

from featurestore_spark.columns import RESERVED_OUTPUT
from featurestore_spark.errors import (
    FeatureNameCollisionError,
    InvalidFeatureRefError,
    NotSupportedError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)
from featurestore_spark.repo import service_spec
from featurestore_spark.specs import FeatureRef, FeatureViewSpec, RepoSpec


@dataclass(frozen=True)
class ViewRequest:
    """The features wanted from one view, their output column names and positions among the outputs."""

    view: FeatureViewSpec
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    positions: tuple[int, ...]


def in_request_order(requests: list[ViewRequest]) -> list[tuple[ViewRequest, str, str]]:
    """(request, feature, output name) of every output column, in the order the features were asked for."""
    outputs = [(p, r, f, n) for r in requests for f, n, p in zip(r.features, r.output_names, r.positions)]
    return [(r, f, n) for _, r, f, n in sorted(outputs, key=lambda o: o[0])]


def parse_refs(repo: RepoSpec, features: object) -> list[FeatureRef]:
    """``features`` as refs: a list of "view:feature", a FeatureService (its own projections, whether
    or not the repo defines it), or a service's name."""
    service = None
    if isinstance(features, FeatureService):
        service = service_spec(features, repo.views)
    elif isinstance(features, str) and features in repo.services:
        service = repo.services[features]
    if service is not None:
        if not service.features:
            raise InvalidFeatureRefError(f"feature service '{service.name}' has no features")
        return list(service.features)
    if isinstance(features, str):
        if ":" not in features:
            raise InvalidFeatureRefError(
                f"'{features}' is neither a feature service of the repo ({', '.join(sorted(repo.services)) or 'none'}) "
                "nor a 'view:feature' reference"
            )
        features = [features]
    if not isinstance(features, Sequence) or not features:
        raise InvalidFeatureRefError("features must be a non-empty list of 'view:feature' references or a FeatureService")
    refs = []
    for ref in features:
        if not isinstance(ref, str) or ref.count(":") != 1 or "" in ref.split(":"):
            raise InvalidFeatureRefError(f"feature reference {ref!r} is not of the form 'view:feature'")
        view, feature = ref.split(":")
        refs.append(FeatureRef(view=view, feature=feature))
    return refs


def resolve(
    repo: RepoSpec, refs: list[FeatureRef], *, full_feature_names: bool, entity_columns: Sequence[str]
) -> list[ViewRequest]:
    """One ViewRequest per view (in first-reference order) with checked output names; the output
    columns keep the order of ``refs`` (a repeated reference counts once, where it first appears)."""
    grouped: dict[str, list[str]] = {}
    position: dict[tuple[str, str], int] = {}
    specs: dict[str, FeatureViewSpec] = {}
    for ref in refs:
        view = ref.projected or repo.views.get(ref.view)
        if view is None:
            raise UnknownFeatureViewError(view=ref.view, ref=ref.ref, known=repo.views)
        if not view.join_keys:
            raise NotSupportedError(
                f"feature view '{ref.view}' has no entities (a global view); the engine joins views on entity "
                "keys: give it an entity, or read its latest row directly"
            )
        if view.feature(ref.feature) is None:
            raise UnknownFeatureError(view=ref.view, feature=ref.feature, known=[f.name for f in view.features])
        known = specs.setdefault(ref.view, view)
        if known != view:
            raise InvalidFeatureRefError(
                f"feature view '{ref.view}' is requested twice with different definitions (join keys "
                f"{', '.join(known.join_key_names)} and {', '.join(view.join_key_names)}); give each "
                "projection its own name, e.g. view.with_name('origin').with_join_key_map({...})"
            )
        wanted = grouped.setdefault(ref.view, [])
        if ref.feature not in wanted:
            wanted.append(ref.feature)
            position[(ref.view, ref.feature)] = len(position)
    for c in entity_columns:
        if RESERVED_OUTPUT.fullmatch(c):
            raise NotSupportedError(f"entity_df column '{c}' has a name the join reserves (__f<n>): rename it")
    # Spark resolves column names ignoring case: 'Rate' and 'rate' collide too.
    owners = {c.lower(): f"entity_df column '{c}'" for c in entity_columns}
    requests = []
    for name, feats in grouped.items():
        outputs = tuple(f"{name}__{f}" if full_feature_names else f for f in feats)
        for out in outputs:
            if out.lower() in owners:
                raise FeatureNameCollisionError(name=out, first=owners[out.lower()], second=f"feature view '{name}'")
            owners[out.lower()] = f"feature view '{name}'"
        requests.append(ViewRequest(view=specs[name], features=tuple(feats), output_names=outputs,
                                    positions=tuple(position[(name, f)] for f in feats)))
    return requests

"""Resolve feature references (or a FeatureService) against a repo into view requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feast import FeatureService

from featurestore_spark.errors import (
    FeatureNameCollisionError,
    InvalidFeatureRefError,
    UnknownFeatureError,
    UnknownFeatureViewError,
)
from featurestore_spark.specs import FeatureRef, FeatureViewSpec, RepoSpec


@dataclass(frozen=True)
class ViewRequest:
    """The features wanted from one view, and their output column names."""

    view: FeatureViewSpec
    features: tuple[str, ...]
    output_names: tuple[str, ...]


def parse_refs(repo: RepoSpec, features: object) -> list[FeatureRef]:
    """``features`` as refs: a list of "view:feature", a FeatureService, or a service's name."""
    if isinstance(features, FeatureService):
        features = features.name
    if isinstance(features, str):
        if features in repo.services:
            return list(repo.services[features].features)
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
    """One ViewRequest per view (in first-reference order) with checked output names."""
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        view = repo.views.get(ref.view)
        if view is None:
            raise UnknownFeatureViewError(view=ref.view, ref=ref.ref, known=repo.views)
        if view.feature(ref.feature) is None:
            raise UnknownFeatureError(view=ref.view, feature=ref.feature, known=[f.name for f in view.features])
        wanted = grouped.setdefault(ref.view, [])
        if ref.feature not in wanted:
            wanted.append(ref.feature)
    owners = {c: f"entity_df column '{c}'" for c in entity_columns}
    requests = []
    for name, feats in grouped.items():
        outputs = tuple(f"{name}__{f}" if full_feature_names else f for f in feats)
        for feature, out in zip(feats, outputs):
            if out in owners:
                raise FeatureNameCollisionError(name=out, first=owners[out], second=f"feature view '{name}'")
            owners[out] = f"feature view '{name}'"
        requests.append(ViewRequest(view=repo.views[name], features=tuple(feats), output_names=outputs))
    return requests

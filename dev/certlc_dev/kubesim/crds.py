"""The custom resources' schemas, read from the CustomResourceDefinitions in deploy/crds.

`schemas_of(crds)` is pure: for every served version of every CRD, its `openAPIV3Schema`,
keyed by (group, version, plural). `load_schemas()` reads deploy/crds/*.yaml once.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from certlc_dev.kubesim.pruning import Schema
from certlc_dev.paths import REPO

CRD_DIRECTORY = REPO / "deploy" / "crds"
SchemaKey = tuple[str, str, str]  # (group, version, plural)


def schemas_of(crds: Iterable[Mapping[str, Any]]) -> dict[SchemaKey, Schema]:
    """The schema of every served version of each CustomResourceDefinition in `crds`."""
    found: dict[SchemaKey, Schema] = {}
    for crd in crds:
        if crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec.get("versions") or []:
            if not version.get("served"):
                continue
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                raise ValueError(
                    f"{crd['metadata']['name']} {version['name']}: no openAPIV3Schema "
                    "(apiextensions.k8s.io/v1 requires a structural schema)"
                )
            found[(spec["group"], version["name"], spec["names"]["plural"])] = schema
    return found


@functools.cache
def load_schemas(directory: Path = CRD_DIRECTORY) -> Mapping[SchemaKey, Schema]:
    """The schemas of the CRDs in `directory` (every *.yaml file, multi-document allowed)."""
    documents: list[Mapping[str, Any]] = []
    for path in sorted(directory.glob("*.yaml")):
        documents.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
    return schemas_of(documents)

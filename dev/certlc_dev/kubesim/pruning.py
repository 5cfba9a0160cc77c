"""Structural-schema pruning of custom resources, as kube-apiserver does it. Pure functions.

A CRD's `openAPIV3Schema` decides what the API server keeps: on every write (create, update,
patch, `/status`, `/scale`) the decoded object is pruned before anything else looks at it.
This follows k8s.io/apiextensions-apiserver pkg/apiserver/schema/pruning/algorithm.go:

- an object node keeps the fields in `properties` (pruned further by their own schema) or,
  with a schema `additionalProperties`, every field pruned by that; any other field is dropped;
- `x-kubernetes-preserve-unknown-fields: true` keeps unknown fields of that node, while its
  declared `properties` are still pruned by their schemas (so are the items of its arrays);
- `x-kubernetes-embedded-resource: true` (and the resource root) keeps `apiVersion`, `kind`
  and `metadata` whatever the schema says;
- array items are pruned by `items`; scalars are left alone (type checking is validation's job).

`metadata` of the root and of embedded resources is then coerced to `ObjectMeta`
(pkg/apiserver/schema/objectmeta): its standard fields stay, anything else is dropped, as
decoding into the Go struct does. Unknown field paths are returned as the API server reports
them (`spec.foo`, `status.items[0].bar`, `metadata.foo`), sorted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

Schema = Mapping[str, Any]

PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"
META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
#: metav1.ObjectMeta's JSON fields (clusterName is gone since Kubernetes 1.25).
OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
#: The JSON fields of the structs inside ObjectMeta's lists.
_META_LIST_FIELDS: Mapping[str, frozenset[str]] = {
    "ownerReferences": frozenset(
        {"apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"}
    ),
    "managedFields": frozenset(
        {"manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"}
    ),
}


class Pruned(NamedTuple):
    """The object as the API server stores it, and the paths of what was dropped."""

    value: Any
    unknown: tuple[str, ...]


def prune(schema: Schema | None, obj: Any) -> Pruned:
    """`obj` (a whole resource) pruned by its version's `openAPIV3Schema`; `obj` is untouched."""
    root: Schema = {**(schema or {}), EMBEDDED: True}
    unknown: list[str] = []
    value = _prune(obj, root, "", unknown)
    return Pruned(value, tuple(sorted(unknown)))


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(
    value: Any, node: Schema | None, path: str, unknown: list[str], keep: bool = False
) -> Any:
    """`value` pruned by `node`. With `keep` (pruning's skipPrune, under
    `x-kubernetes-preserve-unknown-fields`), unknown fields stay while declared ones are still
    pruned by their own schemas."""
    keep = keep or (node is not None and node.get(PRESERVE) is True)
    if isinstance(value, Mapping):
        if node is None:  # never with `keep`: it comes from a node
            unknown.extend(_key(path, k) for k in value)
            return {}
        embedded = node.get(EMBEDDED) is True
        properties: Mapping[str, Schema] = node.get("properties") or {}
        additional = node.get("additionalProperties")
        kept: dict[str, Any] = {}
        for key, item in value.items():
            child = _key(path, key)
            if embedded and key in META_FIELDS:
                kept[key] = _meta_field(key, item, child, unknown)
            elif key in properties:
                kept[key] = _prune(item, properties[key], child, unknown)
            elif isinstance(additional, Mapping):
                kept[key] = _prune(item, additional, child, unknown)
            elif keep:
                kept[key] = item
            elif key not in META_FIELDS or path:
                unknown.append(child)
        return kept
    if isinstance(value, list):
        items = node.get("items") if node is not None else None
        schema = items if isinstance(items, Mapping) else None
        if schema is None and keep:
            return list(value)
        return [_prune(item, schema, f"{path}[{i}]", unknown, keep) for i, item in enumerate(value)]
    return value


def _meta_field(key: str, value: Any, path: str, unknown: list[str]) -> Any:
    if key == "metadata" and isinstance(value, Mapping):
        return object_meta(value, path, unknown)
    return value


def object_meta(meta: Mapping[str, Any], path: str, unknown: list[str]) -> dict[str, Any]:
    """`meta` as decoding it into metav1.ObjectMeta leaves it: standard fields only."""
    kept: dict[str, Any] = {}
    for key, value in meta.items():
        child = _key(path, key)
        if key not in OBJECT_META_FIELDS:
            unknown.append(child)
        elif key in _META_LIST_FIELDS and isinstance(value, list):
            fields = _META_LIST_FIELDS[key]
            kept[key] = [
                _only(item, fields, f"{child}[{i}]", unknown) for i, item in enumerate(value)
            ]
        else:
            kept[key] = value
    return kept


def _only(item: Any, fields: frozenset[str], path: str, unknown: list[str]) -> Any:
    if not isinstance(item, Mapping):
        return item
    unknown.extend(_key(path, k) for k in item if k not in fields)
    return {k: v for k, v in item.items() if k in fields}

"""PATCH algorithms over JSON documents: merge (RFC 7386), JSON (RFC 6902), strategic merge.

Pure functions: documents in, new document out, inputs never mutated. Failures raise
`PatchError` carrying the HTTP status the API server would use (400 for a malformed patch,
422 for a JSON patch that does not apply, including a failed `test`).

Strategic merge is simplified: instead of reading Go struct tags per type, lists merge by a
key chosen from the field name wherever it appears (`containers`, `volumes`, `env` by `name`,
`volumeMounts` by `mountPath`, `ownerReferences` by `uid`, `conditions` by `type`, ...);
`finalizers` merges as a set of strings; other lists are replaced. The directives `$patch`
(replace/delete/merge), `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
`$setElementOrder/<field>` are understood.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "envFrom": "prefix",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """A patch that is malformed (status 400) or cannot be applied (status 422)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- RFC 7386 merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch. A patch that is not an object replaces the target."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_merge_patch(document: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Merge-patch an object; the top level of the patch must be an object."""
    if not isinstance(patch, Mapping):
        raise PatchError("Invalid JSON Patch")
    result = merge_patch(document, patch)
    assert isinstance(result, dict)
    return result


# ---------------------------------------------------------------- RFC 6902 JSON patch


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, path: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path}", 422)
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise PatchError(f"array index out of bounds: {path}", 422)
    return index


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts[:-1]:
        if isinstance(current, dict):
            if part not in current:
                raise PatchError(f'doc is missing path: "{path}": missing value', 422)
            current = current[part]
        elif isinstance(current, list):
            current = current[_index(current, part, path, for_add=False)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value', 422)
    return current


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f'doc is missing path: "{path}": missing value', 422)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, path, for_add=False)]
    raise PatchError(f'doc is missing path: "{path}": missing value', 422)


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, path, for_add=True), value)
    else:
        raise PatchError(f'add operation does not apply: doc is missing path: "{path}"', 422)
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("remove operation does not apply: cannot remove the root", 422)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(
                f'remove operation does not apply: doc is missing path: "{path}": missing value',
                422,
            )
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, path, for_add=False))
    raise PatchError(f'remove operation does not apply: doc is missing path: "{path}"', 422)


def _op_add(doc: Any, op: Mapping[str, Any]) -> Any:
    return _add(doc, op["path"], copy.deepcopy(op["value"]))


def _op_remove(doc: Any, op: Mapping[str, Any]) -> Any:
    return _remove(doc, op["path"])[0]


def _op_replace(doc: Any, op: Mapping[str, Any]) -> Any:
    path = op["path"]
    _get(doc, path)
    if _pointer(path):
        doc, _ = _remove(doc, path)
    return _add(doc, path, copy.deepcopy(op["value"]))


def _source(op: Mapping[str, Any]) -> str:
    source = op.get("from")
    if not isinstance(source, str):
        raise PatchError(f"{op['op']} operation: missing from")
    return source


def _op_move(doc: Any, op: Mapping[str, Any]) -> Any:
    doc, value = _remove(doc, _source(op))
    return _add(doc, op["path"], value)


def _op_copy(doc: Any, op: Mapping[str, Any]) -> Any:
    return _add(doc, op["path"], copy.deepcopy(_get(doc, _source(op))))


def _op_test(doc: Any, op: Mapping[str, Any]) -> Any:
    if _get(doc, op["path"]) != op["value"]:
        raise PatchError(f"testing value {op['path']} failed: test failed", 422)
    return doc


_OPERATIONS = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}


def apply_json_patch(document: Mapping[str, Any], operations: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch (a list of operations) to a deep copy of `document`."""
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = copy.deepcopy(dict(document))
    for op in operations:
        if not isinstance(op, Mapping) or "op" not in op:
            raise PatchError("Unexpected kind: missing op")
        apply = _OPERATIONS.get(op["op"])
        if apply is None:
            raise PatchError(f"Unexpected kind: {op['op']}")
        if not isinstance(op.get("path"), str):
            raise PatchError(f"{op['op']} operation: missing path")
        if op["op"] in {"add", "replace", "test"} and "value" not in op:
            raise PatchError(f"{op['op']} operation: missing value")
        doc = apply(doc, op)
    if not isinstance(doc, dict):
        raise PatchError("the patched document is not an object", 422)
    return doc


# ---------------------------------------------------------------- strategic merge patch


def _merge_keyed_list(original: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = [copy.deepcopy(item) for item in original]
    replace = any(isinstance(i, Mapping) and i.get("$patch") == "replace" for i in patch)
    if replace:
        return [
            _strip_directives(i)
            for i in patch
            if not (isinstance(i, Mapping) and i.get("$patch") == "replace")
        ]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            return [copy.deepcopy(i) for i in patch]  # not a keyed list after all: replace
        position = next(
            (
                n
                for n, cur in enumerate(result)
                if isinstance(cur, Mapping) and cur.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
            continue
        if position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_list(key: str, current: list[Any], value: list[Any]) -> list[Any]:
    if key in MERGE_KEYS:
        return _merge_keyed_list(current, value, MERGE_KEYS[key])
    if key in PRIMITIVE_MERGE_LISTS:
        return current + [v for v in value if v not in current]
    result: list[Any] = _strip_directives(value)
    return result


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a (simplified) strategic merge patch; see the module docstring."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives(patch)
    result: dict[str, Any] = (
        {k: copy.deepcopy(v) for k, v in original.items()} if isinstance(original, Mapping) else {}
    )
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            doomed = set(value or [])
            result[field] = [v for v in result.get(field) or [] if v not in doomed]
            continue
        if key.startswith("$"):
            continue
        current = result.get(key)
        merged: Any
        if isinstance(value, list) and isinstance(current, list):
            merged = _merge_list(key, current, value)
        elif isinstance(value, Mapping):
            merged = strategic_merge(current, value)
        else:
            merged = _strip_directives(value)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def apply_strategic_merge_patch(document: Mapping[str, Any], patch: Any) -> dict[str, Any]:
    """Strategic-merge-patch an object; the top level of the patch must be an object."""
    if not isinstance(patch, Mapping):
        raise PatchError(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    result = strategic_merge(document, patch)
    if not isinstance(result, dict):
        raise PatchError("the patch deletes the whole object", 422)
    return result

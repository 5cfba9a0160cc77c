"""Rules for writing objects, shared by create, update and patch. Pure functions.

What the API server's generic registry decides on every write: which metadata the server
owns (`uid`, `creationTimestamp`, `generation`, ...), what a status-subresource write may
change, when `generation` moves, when a write changes nothing, and how patches apply.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from certlc_dev.kubesim import patch as patching
from certlc_dev.kubesim.errors import (
    ApiError,
    BadRequest,
    FieldError,
    UnsupportedMediaType,
    error_for_code,
    forbidden,
)
from certlc_dev.kubesim.resources import Generation, ResourceType

NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
SERVER_FIELDS = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
    "managedFields",
)
_EMPTY_DROPPED = ("labels", "annotations", "finalizers", "ownerReferences")
FIELD_VALIDATIONS = ("Ignore", "Strict", "Warn")


@dataclass(slots=True)
class FieldValidation:
    """The `fieldValidation` of a write (default Warn), and the warnings it produced."""

    directive: str = "Warn"
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str | None) -> FieldValidation:
        if value in (None, ""):
            return cls()
        if value not in FIELD_VALIDATIONS:
            choices = ", ".join(f'"{v}"' for v in ("", *FIELD_VALIDATIONS))
            raise BadRequest(
                f'fieldValidation: Unsupported value: "{value}": supported values: {choices}'
            )
        return cls(value)

    def unknown_fields(self, rt: ResourceType, paths: Sequence[str], *, patch: bool) -> None:
        """What the API server does about dropped unknown fields: nothing (Ignore), one
        warning each (Warn) or a 400 naming them all (Strict)."""
        if not paths or self.directive == "Ignore":
            return
        found = [f'unknown field "{p}"' for p in paths]
        if self.directive == "Warn":
            self.warnings.extend(found)
            return
        strict = f"strict decoding error: {', '.join(found)}"
        if patch:
            raise BadRequest(strict)
        raise BadRequest(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {strict}'
        )


def warning_header(warnings: Sequence[str]) -> str:
    """A `Warning` header value (RFC 7234 warn-code 299, as the API server sends them)."""
    return ", ".join(
        '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in warnings
    )


def random_suffix(length: int = 5) -> str:
    """The random part of a generated name (`generateName`, pod names)."""
    return "".join(secrets.choice(NAME_ALPHABET) for _ in range(length))


def patch_media_types(rt: ResourceType) -> str:
    accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    if not rt.custom:
        accepted.insert(2, STRATEGIC_PATCH)
    return ", ".join(accepted)


def apply_patch(
    rt: ResourceType, content_type: str, current: dict[str, Any], patch: Any
) -> dict[str, Any]:
    """The patched document; 415 for an unsupported patch type, 400/422 for a bad patch."""
    if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH) or (
        rt.custom and content_type == STRATEGIC_PATCH
    ):
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types include: "
            f"{patch_media_types(rt)}"
        )
    try:
        if content_type == MERGE_PATCH:
            return patching.apply_merge_patch(current, patch)
        if content_type == JSON_PATCH:
            return patching.apply_json_patch(current, patch)
        return patching.apply_strategic_merge_patch(current, patch)
    except patching.PatchError as error:
        failure: ApiError = (
            BadRequest(str(error))
            if error.status == 400
            else error_for_code(error.status, str(error))
        )
        raise failure from None


def without_rv(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`obj` with metadata.resourceVersion removed, to compare content."""
    copy = dict(obj)
    copy["metadata"] = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"
    }
    return copy


def generation_changed(policy: Generation, new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether a write moves `metadata.generation` under `policy`."""
    if policy is Generation.NONE:
        return False
    if policy is Generation.NON_METADATA:
        keys = (set(new) | set(old)) - {"metadata", "status", "kind", "apiVersion"}
        return any(new.get(k) != old.get(k) for k in keys)
    if new.get("spec") != old.get("spec"):
        return True
    if policy is Generation.SPEC_OR_ANNOTATIONS:
        new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
        return new_meta.get("annotations") != old_meta.get("annotations")
    return False


def finish(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """kind/apiVersion first, empty metadata maps and lists dropped (Go's omitempty)."""
    meta = obj["metadata"]
    for key in _EMPTY_DROPPED:
        if key in meta and not meta[key]:
            del meta[key]
    rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    return {"kind": rt.kind, "apiVersion": rt.api_version, **rest}


def keep_server_fields(meta: dict[str, Any], old_meta: Mapping[str, Any]) -> None:
    """Server-owned metadata cannot be changed by an update: restore it from the old object."""
    for key in SERVER_FIELDS:
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)


def status_write(
    rt: ResourceType, current: dict[str, Any], body: Mapping[str, Any]
) -> dict[str, Any]:
    """A write to `/status`: only `status` changes (and, for built-ins, annotations)."""
    status = body.get("status")
    if status is None:
        current.pop("status", None)
    else:
        current["status"] = status
    if not rt.custom:  # built-in status strategies keep the caller's annotations
        annotations = (body.get("metadata") or {}).get("annotations")
        if annotations:
            current["metadata"]["annotations"] = annotations
        else:
            current["metadata"].pop("annotations", None)
    return current


def new_finalizer_errors(meta: Mapping[str, Any], old_meta: Mapping[str, Any]) -> list[FieldError]:
    """No finalizer may be added to an object that is being deleted."""
    if not old_meta.get("deletionTimestamp"):
        return []
    before = old_meta.get("finalizers") or []
    added = [f for f in meta.get("finalizers") or [] if f not in before]
    if not added:
        return []
    shown = ", ".join(f'"{f}"' for f in added)
    return [
        forbidden(
            "metadata.finalizers",
            "no new finalizers can be added if the object is "
            f"being deleted, found new finalizers []string{{{shown}}}",
        )
    ]


def metadata_of(rt: ResourceType, obj: Any) -> dict[str, Any]:
    """The metadata of a request body, after checking it is an object of kind `rt`."""
    if not isinstance(obj, dict):
        raise BadRequest(f"the body of the request is not a {rt.kind} object")
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version is not None and api_version != rt.api_version:
        raise BadRequest(
            f"the API version in the data ({api_version}) does not match the "
            f"expected API version ({rt.api_version})"
        )
    if kind is not None and kind != rt.kind:
        raise BadRequest(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise BadRequest("metadata must be an object")
    return meta


def set_scope(rt: ResourceType, meta: dict[str, Any], namespace: str) -> None:
    """Fill in the request's namespace (400 when the body names another one)."""
    if not rt.namespaced:
        meta.pop("namespace", None)
        return
    given = meta.get("namespace")
    if given and given != namespace:
        raise BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    meta["namespace"] = namespace


def check_name(meta: Mapping[str, Any], name: str) -> None:
    """The body's name, if any, must be the one in the URL."""
    given = meta.get("name")
    if given is not None and given != name:
        raise BadRequest(
            f"the name of the object ({given}) does not match the name on the URL ({name})"
        )

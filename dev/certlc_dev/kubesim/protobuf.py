"""Decoding the Kubernetes protobuf request bodies kubectl sends for a few core kinds. Pure.

kubectl's typed clients (`kubectl create secret|namespace|serviceaccount|token|role|...`) send
`application/vnd.kubernetes.protobuf`: the magic `k8s\\0`, then a `runtime.Unknown` envelope
whose `raw` field is the object in the generated.proto encoding. The stand-in answers in
JSON (allowed by kubectl's Accept header) and only needs to read such bodies, so this module
decodes the protobuf wire format for Secret, Namespace, ServiceAccount, TokenRequest, the
four RBAC kinds and the self reviews (with ObjectMeta and OwnerReference) into the same
JSON-shaped dicts as a JSON body. Zero values are dropped, as Go's `omitempty` would when the
API server re-encodes them. Other kinds raise `ProtobufError` so the caller can answer 415.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body that cannot be decoded (malformed, or a kind we do not know)."""


# field number -> (JSON name, type); types: str, bytes, int, bool, time, strmap, bytesmap,
# strlist, or a message name (optionally prefixed "[]" for repeated)
SCHEMAS: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {
        1: ("typeMeta", "TypeMeta"),
        2: ("raw", "bytes"),
        3: ("contentEncoding", "str"),
        4: ("contentType", "str"),
    },
    "TypeMeta": {1: ("apiVersion", "str"), 2: ("kind", "str")},
    "ObjectMeta": {
        1: ("name", "str"),
        2: ("generateName", "str"),
        3: ("namespace", "str"),
        5: ("uid", "str"),
        6: ("resourceVersion", "str"),
        7: ("generation", "int"),
        11: ("labels", "strmap"),
        12: ("annotations", "strmap"),
        13: ("ownerReferences", "[]OwnerReference"),
        14: ("finalizers", "strlist"),
    },
    "OwnerReference": {
        1: ("kind", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "str"),
        2: ("namespace", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
        5: ("apiVersion", "str"),
    },
    "LocalObjectReference": {1: ("name", "str")},
    "Secret": {
        1: ("metadata", "ObjectMeta"),
        2: ("data", "bytesmap"),
        3: ("type", "str"),
        4: ("stringData", "strmap"),
        5: ("immutable", "bool"),
    },
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "strlist")},
    "ServiceAccount": {
        1: ("metadata", "ObjectMeta"),
        2: ("secrets", "[]ObjectReference"),
        3: ("imagePullSecrets", "[]LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "TokenRequest": {1: ("metadata", "ObjectMeta"), 2: ("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {
        1: ("audiences", "strlist"),
        3: ("boundObjectRef", "BoundObjectReference"),
        4: ("expirationSeconds", "int"),
    },
    "BoundObjectReference": {
        1: ("kind", "str"),
        2: ("apiVersion", "str"),
        3: ("name", "str"),
        4: ("uid", "str"),
    },
    "PolicyRule": {
        1: ("verbs", "strlist"),
        2: ("apiGroups", "strlist"),
        3: ("resources", "strlist"),
        4: ("resourceNames", "strlist"),
        5: ("nonResourceURLs", "strlist"),
    },
    "ClusterRole": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "Role": {1: ("metadata", "ObjectMeta"), 2: ("rules", "[]PolicyRule")},
    "Subject": {
        1: ("kind", "str"),
        2: ("apiGroup", "str"),
        3: ("name", "str"),
        4: ("namespace", "str"),
    },
    "RoleRef": {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")},
    "ClusterRoleBinding": {
        1: ("metadata", "ObjectMeta"),
        2: ("subjects", "[]Subject"),
        3: ("roleRef", "RoleRef"),
    },
    "RoleBinding": {
        1: ("metadata", "ObjectMeta"),
        2: ("subjects", "[]Subject"),
        3: ("roleRef", "RoleRef"),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "ObjectMeta"),
        2: ("spec", "SelfSubjectAccessReviewSpec"),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "ResourceAttributes"),
        2: ("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: ("namespace", "str"),
        2: ("verb", "str"),
        3: ("group", "str"),
        4: ("version", "str"),
        5: ("resource", "str"),
        6: ("subresource", "str"),
        7: ("name", "str"),
    },
    "NonResourceAttributes": {1: ("path", "str"), 2: ("verb", "str")},
    "SelfSubjectReview": {1: ("metadata", "ObjectMeta")},
    "Time": {1: ("seconds", "int"), 2: ("nanos", "int")},
    "MapEntry": {1: ("key", "bytes"), 2: ("value", "bytes")},
}
KINDS = frozenset(
    {
        "Secret",
        "Namespace",
        "ServiceAccount",
        "TokenRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
    }
)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            fields.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4  # fixed-width: not used by these kinds
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return fields


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited field")
    return value.decode("utf-8")


def _scalar(kind: str, value: int | bytes) -> Any:
    match kind:
        case "str":
            return _text(value)
        case "bytes":
            return value if isinstance(value, bytes) else b""
        case "int":
            return value if isinstance(value, int) else 0
        case "bool":
            return bool(value)
        case "time":
            seconds = decode_message("Time", value if isinstance(value, bytes) else b"")
            moment = datetime.fromtimestamp(seconds.get("seconds", 0), UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise ProtobufError(f"unknown field type {kind}")  # pragma: no cover


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """Decode one message of `SCHEMAS[name]` into a JSON-shaped dict (zero values dropped)."""
    schema = SCHEMAS[name]
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        key, kind = schema[number]
        if kind in ("strmap", "bytesmap"):
            entry = decode_message("MapEntry", value if isinstance(value, bytes) else b"")
            item = entry.get("value", b"")
            shown = base64.b64encode(item).decode() if kind == "bytesmap" else item.decode()
            result.setdefault(key, {})[entry.get("key", b"").decode()] = shown
        elif kind == "strlist":
            result.setdefault(key, []).append(_text(value))
        elif kind.startswith("[]"):
            result.setdefault(key, []).append(
                decode_message(kind[2:], value if isinstance(value, bytes) else b"")
            )
        elif kind in SCHEMAS:
            nested = decode_message(kind, value if isinstance(value, bytes) else b"")
            if nested:
                result[key] = nested
        else:
            decoded = _scalar(kind, value)
            if decoded not in ("", 0, False, b""):
                result[key] = decoded
    return result


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the equivalent JSON object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    envelope = decode_message("Unknown", body[len(MAGIC) :])
    type_meta = envelope.get("typeMeta") or {}
    kind = str(type_meta.get("kind", ""))
    if kind not in KINDS:
        raise ProtobufError(
            f"protobuf bodies are only understood for {', '.join(sorted(KINDS))}"
            f" (got {kind or 'no kind'})"
        )
    obj = decode_message(kind, envelope.get("raw", b""))
    return {"kind": kind, "apiVersion": type_meta.get("apiVersion", "v1"), **obj}

"""Validation shared by every kind: object names, labels, annotations, owner references.

Messages follow apimachinery's validation package word for word where we implement the same
rule, because clients and humans match on them (`a lowercase RFC 1123 subdomain must
consist of ...`). Functions return lists of `FieldError`; callers raise `Invalid`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from certlc_dev.kubesim.errors import FieldError, go_quote, invalid, required
from certlc_dev.kubesim.selectors import valid_label_key, valid_label_value

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


def name_errors(name: str, *, dns_label: bool) -> list[FieldError]:
    """`metadata.name` must be a DNS subdomain (<= 253) or, for namespaces, a DNS label."""
    if dns_label:
        if len(name) > 63:
            return [invalid("metadata.name", go_quote(name), "must be no more than 63 characters")]
        if not DNS1123_LABEL.match(name):
            return [invalid("metadata.name", go_quote(name), LABEL_MESSAGE)]
        return []
    if len(name) > 253:
        return [invalid("metadata.name", go_quote(name), "must be no more than 253 characters")]
    if not DNS1123_SUBDOMAIN.match(name):
        return [invalid("metadata.name", go_quote(name), SUBDOMAIN_MESSAGE)]
    return []


def _string_map_errors(field: str, value: Any) -> tuple[list[FieldError], Mapping[str, Any]]:
    if value is None:
        return [], {}
    if not isinstance(value, Mapping):
        return [invalid(field, go_quote(value), "must be a map of strings")], {}
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        return [invalid(f"{field}[{bad[0]}]", go_quote(value[bad[0]]), "must be a string")], {}
    return [], value


def _label_errors(metadata: Mapping[str, Any]) -> list[FieldError]:
    errors, labels = _string_map_errors("metadata.labels", metadata.get("labels"))
    for key, value in labels.items():
        if not valid_label_key(key):
            errors.append(invalid("metadata.labels", go_quote(key), QUALIFIED_NAME_MESSAGE))
        elif not valid_label_value(value):
            errors.append(invalid("metadata.labels", go_quote(value), LABEL_VALUE_MESSAGE))
    more, annotations = _string_map_errors("metadata.annotations", metadata.get("annotations"))
    errors.extend(more)
    errors.extend(
        invalid("metadata.annotations", go_quote(key), QUALIFIED_NAME_MESSAGE)
        for key in annotations
        if not valid_label_key(key.lower())
    )
    return errors


def _owner_errors(refs: Any) -> list[FieldError]:
    if refs is None:
        return []
    if not isinstance(refs, list):
        return [invalid("metadata.ownerReferences", go_quote(refs), "must be a list")]
    errors: list[FieldError] = []
    for i, ref in enumerate(refs):
        path = f"metadata.ownerReferences[{i}]"
        if not isinstance(ref, Mapping):
            errors.append(invalid(path, go_quote(ref), "must be an object"))
            continue
        errors.extend(
            required(f"{path}.{key}", "version must not be empty" if key == "apiVersion" else "")
            for key in ("apiVersion", "kind", "name", "uid")
            if not ref.get(key)
        )
    if sum(1 for r in refs if isinstance(r, Mapping) and r.get("controller")) > 1:
        errors.append(
            invalid(
                "metadata.ownerReferences",
                "[]v1.OwnerReference{...}",
                "Only one reference can have Controller set to true",
            )
        )
    return errors


def metadata_errors(metadata: Mapping[str, Any]) -> list[FieldError]:
    """Labels, annotations, ownerReferences and finalizers of any object."""
    errors = _label_errors(metadata) + _owner_errors(metadata.get("ownerReferences"))
    finalizers = metadata.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        errors.append(
            invalid("metadata.finalizers", go_quote(finalizers), "must be a list of strings")
        )
    return errors

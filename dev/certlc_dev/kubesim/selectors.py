"""Label and field selectors: parsing (strict, like apimachinery) and matching. Pure.

Label selectors support `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`,
`k>n`, `k<n`, with comma meaning AND. Field selectors support `f=v`, `f==v`, `f!=v` over the
fields a kind declares (`metadata.name`, `metadata.namespace` and kind-specific ones such as a
Secret's `type`). Malformed input raises `SelectorError`, which the API turns into a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CORE_FIELDS_ALL: tuple[str, ...] = ("metadata.name", "metadata.namespace")


class SelectorError(ValueError):
    """A selector string that cannot be parsed or uses an unsupported field."""


_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def valid_label_key(key: str) -> bool:
    """A qualified name: optional DNS-subdomain prefix and `/`, then a name of <= 63 chars."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_NAME.match(name))


def valid_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_NAME.match(value)))


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement: key, operator and values."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
            case "gt" | "lt":
                if not present or value is None:
                    return False
                try:
                    number = int(value)
                except ValueError:
                    return False
                bound = int(self.values[0])
                return number > bound if self.op == "gt" else number < bound
        return False  # pragma: no cover - ops are fixed by the parser


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s,=!()<>]+)")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:  # pragma: no cover - the pattern accepts any non-space character
            raise SelectorError(f"unable to parse requirement: unexpected text at {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


_OPERATORS = {"=", "==", "!=", "in", "notin", "<", ">"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise SelectorError(f"unable to parse requirement: unexpected end of {self.text!r}")
        self.pos += 1
        return token

    def fail(self, found: str, expected: str) -> SelectorError:
        return SelectorError(f"unable to parse requirement: found '{found}', expected: {expected}")

    def key(self) -> str:
        token = self.take()
        if token in {"=", "==", "!=", "!", "(", ")", ",", "<", ">"}:
            raise self.fail(token, "identifier")
        if not valid_label_key(token):
            raise SelectorError(
                f"unable to parse requirement: key: Invalid value: {token!r}: name part must "
                "consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character"
            )
        return token

    def value(self) -> str:
        token = self.peek()
        if token in {",", ")", None}:
            return ""  # `k=` selects the empty value
        token = self.take()
        if token in {"=", "==", "!=", "!", "(", "<", ">"} or not valid_label_value(token):
            raise SelectorError(
                f"unable to parse requirement: values[0]: Invalid value: {token!r}: a valid "
                "label must be an empty string or consist of alphanumeric characters, '-', '_' "
                "or '.', and must start and end with an alphanumeric character"
            )
        return token

    def value_set(self) -> tuple[str, ...]:
        token = self.take()
        if token != "(":
            raise self.fail(token, "'('")
        values: list[str] = []
        while True:
            values.append(self.value())
            token = self.take()
            if token == ")":
                return tuple(values)
            if token != ",":
                raise self.fail(token, "',' or ')'")

    def requirement(self) -> Requirement:
        if self.peek() == "!":
            self.take()
            return Requirement(self.key(), "!")
        key = self.key()
        token = self.peek()
        if token in {None, ","}:
            return Requirement(key, "exists")
        token = self.take()
        if token not in _OPERATORS:
            raise self.fail(token, "'=', '!=', '==', 'in', 'notin'")
        if token in {"in", "notin"}:
            return Requirement(key, token, self.value_set())
        if token in {"<", ">"}:
            bound = self.take()
            if not bound.lstrip("-").isdigit():
                raise SelectorError(
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be "
                    f"an integer, not {bound!r}"
                )
            return Requirement(key, "gt" if token == ">" else "lt", (bound,))
        return Requirement(key, "=" if token in {"=", "=="} else "!=", (self.value(),))

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        if self.peek() is None:
            return LabelSelector()
        while True:
            requirements.append(self.requirement())
            token = self.peek()
            if token is None:
                return LabelSelector(tuple(requirements))
            if self.take() != ",":
                raise self.fail(token, "','")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `labelSelector` query value; raises `SelectorError`."""
    if not text or not text.strip():
        return LabelSelector()
    return _Parser(text).parse()


def selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A `metav1.LabelSelector` (matchLabels, matchExpressions) as a `LabelSelector`."""
    if not selector:
        return LabelSelector()
    requirements = [
        Requirement(k, "=", (str(v),))
        for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(str(expr.get("operator")))
        if op is None:
            raise SelectorError(f"{expr.get('operator')!r} is not a valid label selector operator")
        requirements.append(
            Requirement(str(expr.get("key")), op, tuple(str(v) for v in expr.get("values") or ()))
        )
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    equal: bool
    value: str


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of field equalities/inequalities."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(r.field, "") == r.value) == r.equal for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def fields(self) -> set[str]:
        return {r.field for r in self.requirements}


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text: str | None, supported: Iterable[str]) -> FieldSelector:
    """Parse a `fieldSelector` query value; unknown fields raise `SelectorError`."""
    if not text or not text.strip():
        return FieldSelector()
    allowed = set(supported)
    requirements: list[FieldRequirement] = []
    for part in _split_unescaped(text, ","):
        match = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part.strip())
        if match is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        if name not in allowed:
            raise SelectorError(f"field label not supported: {name}")
        requirements.append(FieldRequirement(name, op != "!=", value))
    return FieldSelector(tuple(requirements))


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string value of a dotted field path (`metadata.name`, `involvedObject.kind`)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, Mapping):
        return str(current.get("component", "")) if path == "source" else ""
    return str(current)


Matcher = Callable[[Mapping[str, Any]], bool]


def object_matcher(labels: LabelSelector, fields: FieldSelector) -> Matcher | None:
    """A predicate over whole objects, or None when both selectors are empty."""
    if labels.empty and fields.empty:
        return None
    wanted = sorted(fields.fields())

    def matches(obj: Mapping[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if not labels.matches(metadata.get("labels")):
            return False
        if fields.empty:
            return True
        return fields.matches({f: field_value(obj, f) for f in wanted})

    return matches

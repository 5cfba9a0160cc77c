"""Kind-specific rules: defaulting, normalisation and validation per kind (the "strategies").

Each `Strategy` mirrors what the API server's registry strategy does for that kind and no
more: Secrets (base64 `data`, write-only `stringData`, immutable `type`, `immutable: true`,
kubernetes.io/tls keys, 1 MiB), Deployments (defaults, required selector/template, selector
matching the template, immutable selector), Events (involvedObject), Leases (MicroTime),
Namespaces (phase). Custom resources get no schema validation, like a CRD without a schema.
Malformed data that a Go API server could not even decode raises `BadRequest` (400); rule
violations are returned as `FieldError`s for a 422.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any

from certlc_dev.kubesim import timefmt
from certlc_dev.kubesim.errors import BadRequest, FieldError, forbidden, go_quote, invalid, required
from certlc_dev.kubesim.selectors import SelectorError, selector_from_object

MAX_SECRET_SIZE = 1024 * 1024
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
CONFIG_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
IMMUTABLE = "field is immutable"


class Strategy:
    """Default behaviour: nothing to default, nothing to validate."""

    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        """Default and normalise `obj` in place (create when `old` is None)."""

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        return []

    def initial_status(self) -> dict[str, Any] | None:
        """Status a freshly created object starts with (None: whatever the client sent)."""
        return None


def _bad_base64_position(text: str) -> int:
    for position, char in enumerate(text):
        if char not in _B64_ALPHABET:
            return position
    return len(text) - len(text) % 4 if len(text) % 4 else max(0, len(text) - 1)


def _decoded_length(kind: str, key: str, value: Any) -> int:
    if not isinstance(value, str):
        raise BadRequest(
            f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
            f"{type(value).__name__} into Go struct field {kind}.data of type []uint8"
        )
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest(
            f'{kind} in version "v1" cannot be handled as a {kind}: illegal base64 data at '
            f"input byte {_bad_base64_position(value)}"
        ) from None


class SecretStrategy(Strategy):
    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        data = obj.get("data")
        if data is not None and not isinstance(data, Mapping):
            raise BadRequest(
                'Secret in version "v1" cannot be handled as a Secret: data must be '
                "a map of base64 strings"
            )
        data = dict(data or {})
        for key, value in data.items():
            _decoded_length("Secret", key, value)
        string_data = obj.pop("stringData", None) or {}
        if not isinstance(string_data, Mapping):
            raise BadRequest(
                'Secret in version "v1" cannot be handled as a Secret: stringData '
                "must be a map of strings"
            )
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj["data"] = data
        else:
            obj.pop("data", None)
        if not obj.get("type"):
            obj["type"] = "Opaque"

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        errors: list[FieldError] = []
        data: Mapping[str, str] = obj.get("data") or {}
        total = 0
        for key, value in data.items():
            if not _CONFIG_KEY.match(key) or len(key) > 253:
                errors.append(invalid(f"data[{key}]", go_quote(key), CONFIG_KEY_MESSAGE))
            total += _decoded_length("Secret", key, value)
        kind = obj.get("type")
        if kind == "kubernetes.io/tls":
            errors.extend(required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data)
        elif kind == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in data:
            errors.append(required("data[.dockerconfigjson]"))
        if total > MAX_SECRET_SIZE:
            errors.append(
                FieldError("Too long", "data", f"must have at most {MAX_SECRET_SIZE} bytes")
            )
        if old is not None:
            if old.get("type") != kind:
                errors.append(invalid("type", go_quote(kind), IMMUTABLE))
            if old.get("immutable"):
                why = "field is immutable when `immutable` is set"
                if not obj.get("immutable"):
                    errors.append(forbidden("immutable", why))
                if (old.get("data") or {}) != data:
                    errors.append(forbidden("data", why))
        return errors


def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault(
            "imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always"
        )


def _template_errors(template: Any, selector: Any) -> list[FieldError]:
    if not isinstance(template, Mapping):
        return [required("spec.template")]
    errors: list[FieldError] = []
    labels = (template.get("metadata") or {}).get("labels") or {}
    try:
        if not selector_from_object(selector).matches(labels):
            shown = (
                "map[string]string{"
                + ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
                + "}"
            )
            errors.append(
                invalid(
                    "spec.template.metadata.labels",
                    shown,
                    "`selector` does not match template `labels`",
                )
            )
    except SelectorError as error:
        errors.append(invalid("spec.selector", go_quote(selector), str(error)))
    containers = (template.get("spec") or {}).get("containers")
    if not containers:
        errors.append(required("spec.template.spec.containers"))
    for i, container in enumerate(containers or []):
        for key in ("name", "image"):
            if not isinstance(container, Mapping) or not container.get(key):
                errors.append(required(f"spec.template.spec.containers[{i}].{key}"))
    return errors


class WorkloadStrategy(Strategy):
    """Deployments (and ReplicaSets written by the simulated controller)."""

    def __init__(self, *, deployment: bool) -> None:
        self.deployment = deployment

    def initial_status(self) -> dict[str, Any] | None:
        return {}

    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        if self.deployment:
            spec.setdefault(
                "strategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
                },
            )
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        template = spec.get("template")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            _default_pod_spec(template["spec"])

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, Mapping):
            return [required("spec.selector"), required("spec.template")]
        errors: list[FieldError] = []
        selector = spec.get("selector")
        if not isinstance(selector, Mapping):
            errors.append(required("spec.selector"))
        elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errors.append(
                invalid(
                    "spec.selector",
                    "v1.LabelSelector{}",
                    "empty selector is invalid for deployment",
                )
            )
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            errors.append(
                invalid("spec.replicas", str(replicas), "must be greater than or equal to 0")
            )
        errors.extend(_template_errors(spec.get("template"), selector))
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            errors.append(invalid("spec.selector", go_quote(selector), IMMUTABLE))
        return errors


class EventStrategy(Strategy):
    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        for key in ("firstTimestamp", "lastTimestamp"):
            if key in obj:
                obj[key] = timefmt.normalise(obj[key], micro=False)
        if "eventTime" in obj:
            obj["eventTime"] = timefmt.normalise(obj["eventTime"], micro=True)

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        involved = obj.get("involvedObject")
        if not isinstance(involved, Mapping):
            return [required("involvedObject")]
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        target = involved.get("namespace")
        if target and target != namespace:
            return [
                invalid(
                    "involvedObject.namespace", go_quote(target), "does not match event.namespace"
                )
            ]
        return []


class LeaseStrategy(Strategy):
    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for key in ("acquireTime", "renewTime"):
                if spec.get(key) is not None:
                    spec[key] = timefmt.normalise(spec[key], micro=True)

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errors: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            errors.append(
                invalid("spec.leaseDurationSeconds", str(duration), "must be greater than 0")
            )
        transitions = spec.get("leaseTransitions")
        if transitions is not None and (not isinstance(transitions, int) or transitions < 0):
            errors.append(
                invalid(
                    "spec.leaseTransitions", str(transitions), "must be greater than or equal to 0"
                )
            )
        return errors


class NamespaceStrategy(Strategy):
    """Namespaces carry the `kubernetes.io/metadata.name` label, like the API server sets."""

    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        meta = obj.setdefault("metadata", {})
        labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        meta["labels"] = {**labels, "kubernetes.io/metadata.name": meta.get("name", "")}

    def initial_status(self) -> dict[str, Any] | None:
        return {"phase": "Active"}


RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def not_supported(field: str, value: object, supported: Sequence[str]) -> FieldError:
    choices = ", ".join(go_quote(s) for s in supported)
    return FieldError("Unsupported value", field, f"supported values: {choices}", go_quote(value))


def _rule_errors(rule: Any, path: str, *, namespaced: bool) -> list[FieldError]:
    """rbac validation's ValidatePolicyRule."""
    if not isinstance(rule, Mapping):
        raise BadRequest(f"{path}: a rule must be an object")
    errors: list[FieldError] = []
    if not rule.get("verbs"):
        errors.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        shown = go_quote(urls)
        if namespaced:
            errors.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    shown,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errors.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    shown,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errors
    if not rule.get("apiGroups"):
        errors.append(
            required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        )
    if not rule.get("resources"):
        errors.append(
            required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    return errors


class RoleStrategy(Strategy):
    """Role and ClusterRole: every rule names verbs, and API groups plus resources."""

    def __init__(self, *, namespaced: bool) -> None:
        self.namespaced = namespaced

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        rules = obj.get("rules") or []
        if not isinstance(rules, list):
            raise BadRequest("rules: must be a list of policy rules")
        errors: list[FieldError] = []
        for index, rule in enumerate(rules):
            errors.extend(_rule_errors(rule, f"rules[{index}]", namespaced=self.namespaced))
        return errors


class BindingStrategy(Strategy):
    """RoleBinding and ClusterRoleBinding: a valid roleRef that never changes, known subjects."""

    def __init__(self, *, namespaced: bool) -> None:
        self.namespaced = namespaced

    def prepare(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        for subject in obj.get("subjects") or []:  # v1 defaulting of User and Group subjects
            if isinstance(subject, dict) and subject.get("kind") in {"User", "Group"}:
                subject.setdefault("apiGroup", RBAC_GROUP)

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[FieldError]:
        ref = obj.get("roleRef")
        if not isinstance(ref, Mapping):
            ref = {}
        errors: list[FieldError] = []
        if ref.get("apiGroup") != RBAC_GROUP:
            errors.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [RBAC_GROUP]))
        kinds = ("Role", "ClusterRole") if self.namespaced else ("ClusterRole",)
        if ref.get("kind") not in kinds:
            errors.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
        if not ref.get("name"):
            errors.append(required("roleRef.name"))
        subjects = obj.get("subjects") or []
        if not isinstance(subjects, list):
            raise BadRequest("subjects: must be a list of subjects")
        for index, subject in enumerate(subjects):
            errors.extend(self._subject_errors(subject, f"subjects[{index}]"))
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            shown = ", ".join(
                f"{field}:{go_quote(ref.get(key, ''))}"
                for field, key in (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name"))
            )
            errors.append(invalid("roleRef", f"rbac.RoleRef{{{shown}}}", "cannot change roleRef"))
        return errors

    def _subject_errors(self, subject: Any, path: str) -> list[FieldError]:
        if not isinstance(subject, Mapping):
            raise BadRequest(f"{path}: a subject must be an object")
        errors: list[FieldError] = []
        if not subject.get("name"):
            errors.append(required(f"{path}.name"))
        kind = subject.get("kind", "")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                errors.append(not_supported(f"{path}.apiGroup", subject["apiGroup"], [""]))
            if not self.namespaced and not subject.get("namespace"):
                errors.append(required(f"{path}.namespace"))
        elif kind in {"User", "Group"}:
            if subject.get("apiGroup") != RBAC_GROUP:
                errors.append(
                    not_supported(f"{path}.apiGroup", subject.get("apiGroup", ""), [RBAC_GROUP])
                )
        else:
            errors.append(not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
        return errors


STRATEGIES: dict[str, Strategy] = {
    "Role": RoleStrategy(namespaced=True),
    "ClusterRole": RoleStrategy(namespaced=False),
    "RoleBinding": BindingStrategy(namespaced=True),
    "ClusterRoleBinding": BindingStrategy(namespaced=False),
    "Secret": SecretStrategy(),
    "Deployment": WorkloadStrategy(deployment=True),
    "ReplicaSet": WorkloadStrategy(deployment=False),
    "Event": EventStrategy(),
    "Lease": LeaseStrategy(),
    "Namespace": NamespaceStrategy(),
}
DEFAULT_STRATEGY = Strategy()


def strategy_for(kind: str) -> Strategy:
    return STRATEGIES.get(kind, DEFAULT_STRATEGY)

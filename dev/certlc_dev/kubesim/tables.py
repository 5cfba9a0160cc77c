"""Server-side `meta.k8s.io/v1 Table` rendering, what `kubectl get` asks for. Pure.

Built-in kinds get the columns kube-apiserver's printers produce (Secret NAME TYPE DATA AGE,
Pod NAME READY STATUS RESTARTS AGE, Deployment NAME READY UP-TO-DATE AVAILABLE AGE, ...;
kubectl upper-cases the names). Custom resources get `Name` plus their CRD printer columns,
evaluated with simple JSONPaths; `date` columns become human ages, as the CRD table
convertor does. Rows carry the object as `PartialObjectMetadata` unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from certlc_dev.kubesim.resources import PrinterColumn, ResourceType
from certlc_dev.kubesim.timefmt import age

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)

Obj = Mapping[str, Any]
Cells = Callable[[Obj, datetime], list[Any]]


def _column(
    name: str, type_: str = "string", description: str = "", priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME = _column("Name", "string", NAME_DESCRIPTION, fmt="name")
AGE = _column("Age", "string", AGE_DESCRIPTION)


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


def _selector_text(selector: Any) -> str:
    if not isinstance(selector, Mapping):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        joined = ",".join(values)
        parts.append(
            {
                "In": f"{key} in ({joined})",
                "NotIn": f"{key} notin ({joined})",
                "Exists": str(key),
                "DoesNotExist": f"!{key}",
            }.get(str(op), str(key))
        )
    return ",".join(parts) or "<none>"


def _containers(obj: Obj) -> tuple[str, str]:
    template = (obj.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    return (
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
    )


def pod_status_text(obj: Obj) -> str:
    """The STATUS column of `kubectl get pods` (a subset of kubectl's printer logic)."""
    status = obj.get("status") or {}
    reason = str(status.get("reason") or status.get("phase") or "Unknown")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = str(state["waiting"]["reason"])
        elif (state.get("terminated") or {}).get("reason"):
            reason = str(state["terminated"]["reason"])
    if _meta(obj).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    return [
        _name(obj),
        f"{ready}/{len(spec.get('containers') or [])}",
        pod_status_text(obj),
        str(restarts),
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _deployment_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        _name(obj),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        _age(obj, now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _replicaset_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(obj)
    return [
        _name(obj),
        int(spec.get("replicas", 0)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        _age(obj, now),
        names,
        images,
        _selector_text(spec.get("selector")),
    ]


def _event_cells(obj: Obj, now: datetime) -> list[Any]:
    involved = obj.get("involvedObject") or {}
    seen = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp")
    return [
        age(seen, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        obj.get("message", ""),
    ]


BUILTIN: dict[str, tuple[list[dict[str, Any]], Cells]] = {
    "Secret": (
        [NAME, _column("Type"), _column("Data", "integer"), AGE],
        lambda o, n: [_name(o), o.get("type", ""), len(o.get("data") or {}), _age(o, n)],
    ),
    "Namespace": (
        [NAME, _column("Status"), AGE],
        lambda o, n: [_name(o), (o.get("status") or {}).get("phase", ""), _age(o, n)],
    ),
    "ServiceAccount": (
        [NAME, _column("Secrets", "integer"), AGE],
        lambda o, n: [_name(o), len(o.get("secrets") or []), _age(o, n)],
    ),
    "Lease": (
        [NAME, _column("Holder"), AGE],
        lambda o, n: [_name(o), (o.get("spec") or {}).get("holderIdentity", ""), _age(o, n)],
    ),
    "Pod": (
        [
            NAME,
            _column("Ready"),
            _column("Status"),
            _column("Restarts"),
            AGE,
            _column("IP", priority=1),
            _column("Node", priority=1),
            _column("Nominated Node", priority=1),
            _column("Readiness Gates", priority=1),
        ],
        _pod_cells,
    ),
    "Deployment": (
        [
            NAME,
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            AGE,
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _deployment_cells,
    ),
    "ReplicaSet": (
        [
            NAME,
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            AGE,
            _column("Containers", priority=1),
            _column("Images", priority=1),
            _column("Selector", priority=1),
        ],
        _replicaset_cells,
    ),
    "Event": (
        [
            _column("Last Seen"),
            _column("Type"),
            _column("Reason"),
            _column("Object"),
            _column("Message"),
        ],
        _event_cells,
    ),
}


def json_path(obj: Obj, path: str) -> Any:
    """Evaluate a simple `.a.b.c` JSONPath; None when a step is missing."""
    current: Any = obj
    for part in path.strip(".").split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _custom_cell(column: PrinterColumn, obj: Obj, now: datetime) -> Any:
    value = json_path(obj, column.json_path)
    if value is None:
        return None
    match column.type:
        case "date":
            return age(value, now) if isinstance(value, str) else None
        case "integer":
            return int(value) if isinstance(value, int | float) else None
        case "number":
            return float(value) if isinstance(value, int | float) else None
        case "boolean":
            return value if isinstance(value, bool) else None
        case _:
            return value if isinstance(value, str) else str(value)


def _custom(rt: ResourceType) -> tuple[list[dict[str, Any]], Cells]:
    columns = rt.printer_columns or (PrinterColumn("Age", "date", ".metadata.creationTimestamp"),)
    definitions = [NAME] + [
        _column(
            c.name,
            c.type,
            c.description
            or f"Custom resource definition column (in JSONPath format): {c.json_path}",
            c.priority,
            c.format,
        )
        for c in columns
    ]

    def cells(obj: Obj, now: datetime) -> list[Any]:
        return [_name(obj)] + [_custom_cell(c, obj, now) for c in columns]

    return definitions, cells


def _row_object(obj: Obj, include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(_meta(obj)),
    }


def render_table(
    rt: ResourceType,
    objects: Sequence[Obj],
    now: datetime,
    *,
    resource_version: str | None = None,
    include_object: str = "Metadata",
    no_headers: bool = False,
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    """A `Table` for `objects` of type `rt`."""
    definitions, cells = BUILTIN.get(rt.kind) or _custom(rt)
    metadata: dict[str, Any] = {}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining is not None:
        metadata["remainingItemCount"] = remaining
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(obj, now)}
        embedded = _row_object(obj, include_object)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    if not no_headers:
        table["columnDefinitions"] = definitions
    table["rows"] = rows
    return table

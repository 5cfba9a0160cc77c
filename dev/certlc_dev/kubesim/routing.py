"""URL paths to API requests: resource type, namespace, name, subresource and verb. Pure.

Understands `/api/v1/...` and `/apis/<group>/<version>/...` with the collection, item and
`/status` forms, namespaced (`.../namespaces/<ns>/<plural>/...`) or cluster-wide. Verbs follow
the API server's request-info rules: GET on a collection is `list` (or `watch` with
`watch=true`), DELETE on a collection is `deletecollection`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from certlc_dev.kubesim.errors import MethodNotAllowed, NotFound
from certlc_dev.kubesim.resources import Registry, ResourceType

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """A resource request. `namespace` is None for a list/watch across all namespaces."""

    rt: ResourceType
    verb: str
    namespace: str | None
    name: str = ""
    subresource: str = ""
    # False for a verb the resource does not serve: 405, but only after authorization, as the
    # API server's filter chain authorizes before the handler refuses the method.
    supported: bool = True


def _split(path: str) -> list[str]:
    return [unquote(p) for p in path.strip("/").split("/") if p]


def _verb(method: str, item: bool, watch: bool) -> str:
    if method in {"GET", "HEAD"}:
        if item:
            return "get"
        return "watch" if watch else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method)
    if verb is None:
        raise MethodNotAllowed()
    if not item:
        if verb == "delete":
            return "deletecollection"
        if verb != "create":
            raise MethodNotAllowed()
    elif verb == "create":
        raise MethodNotAllowed()
    return verb


def _group_version(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """(group, version, the rest) of an `/api/v1/...` or `/apis/<g>/<v>/...` resource path."""
    if len(parts) >= 3 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 4 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _has_subresource(rt: ResourceType, subresource: str) -> bool:
    return (
        (subresource == "status" and rt.status_subresource)
        or (subresource == "scale" and rt.scale is not None)
        or (subresource == "token" and rt.token_subresource)
    )


def parse(
    registry: Registry, method: str, path: str, query: Mapping[str, list[str]]
) -> RequestInfo | None:
    """The request for a resource path; None when the path is not a resource path.

    Raises NotFound for unknown resources and MethodNotAllowed for methods that have no verb
    on the path; a verb the resource does not serve is `supported=False`.
    """
    located = _group_version(_split(path))
    if located is None:
        return None
    group, version, rest = located
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = registry.by_path(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = registry.by_path(group, version, rest[0])
    if rt is None or len(rest) > 3:
        raise NotFound.path()
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) == 3 else ""
    if rt.namespaced and name and namespace is None:
        raise NotFound.path()
    if not rt.namespaced:
        namespace = ""
    if subresource and not _has_subresource(rt, subresource):
        raise NotFound.path()
    if subresource == "token":  # TokenRequest: create only
        if method != "POST":
            raise MethodNotAllowed()
        return RequestInfo(rt, "create", namespace, name, subresource)
    watch = (query.get("watch") or [""])[-1].lower() in {"true", "1"}
    verb = _verb(method, bool(name), watch)
    supported = rt.allows(verb)
    if subresource:
        supported = verb == "get" or (verb in {"update", "patch"} and rt.allows("update"))
    return RequestInfo(rt, verb, namespace, name, subresource, supported)

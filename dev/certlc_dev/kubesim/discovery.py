"""Discovery documents: `/version`, `/api`, `/apis`, `/apis/<group>[/<version>]`. Pure.

Both formats kubectl understands are produced from the resource registry: legacy discovery
(`APIVersions`, `APIGroupList`, `APIResourceList` per group version) and aggregated discovery
(`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, one document for `/api` and one for
`/apis`), which kubectl 1.32 asks for first.
"""

from __future__ import annotations

from typing import Any

from certlc_dev.kubesim.resources import Registry, ResourceType

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-kubesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
STATUS_VERBS = ["get", "patch", "update"]
SCALE_KIND = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
TOKEN_REQUEST_KIND = {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entries = [entry]
    if rt.status_subresource:
        entries.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": STATUS_VERBS,
            }
        )
    if rt.token_subresource:
        entries.append(
            {
                "name": f"{rt.plural}/token",
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": TOKEN_REQUEST_KIND["group"],
                "version": TOKEN_REQUEST_KIND["version"],
                "kind": TOKEN_REQUEST_KIND["kind"],
                "verbs": ["create"],
            }
        )
    if rt.scale is not None:
        entries.append(
            {
                "name": f"{rt.plural}/scale",
                "singularName": "",
                "namespaced": rt.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": STATUS_VERBS,
            }
        )
    return entries


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(registry: Registry, group: str) -> dict[str, Any]:
    versions = [
        {"groupVersion": f"{g}/{v}", "version": v} for g, v in registry.groups() if g == group
    ]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups: list[dict[str, Any]] = []
    for group, _ in registry.groups():
        if group and all(g["name"] != group for g in groups):
            groups.append(_group(registry, group))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    if not group or all(g != group for g, _ in registry.groups()):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(registry, group)}


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group(group, version)
    if not types:
        return None
    resources = [entry for rt in types for entry in _resource_entries(rt)]
    body: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        body["apiVersion"] = "v1"
    body["groupVersion"] = f"{group}/{version}" if group else version
    body["resources"] = resources
    return body


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subresources = []
    if rt.status_subresource:
        subresources.append({"subresource": "status", "responseKind": kind, "verbs": STATUS_VERBS})
    if rt.scale is not None:
        subresources.append(
            {"subresource": "scale", "responseKind": SCALE_KIND, "verbs": STATUS_VERBS}
        )
    if rt.token_subresource:
        subresources.append(
            {"subresource": "token", "responseKind": TOKEN_REQUEST_KIND, "verbs": ["create"]}
        )
    if subresources:
        entry["subresources"] = subresources
    return entry


def aggregated(registry: Registry, *, core: bool, version: str = "v2") -> dict[str, Any]:
    """`APIGroupDiscoveryList` for `/api` (core=True) or `/apis`."""
    items: list[dict[str, Any]] = []
    for group, ver in registry.groups():
        if bool(group) == core:
            continue
        versions = [
            {
                "version": ver,
                "freshness": "Current",
                "resources": [_aggregated_resource(rt) for rt in registry.in_group(group, ver)],
            }
        ]
        existing = next((i for i in items if i["metadata"].get("name", "") == group), None)
        if existing is not None:
            existing["versions"].extend(versions)
            continue
        metadata: dict[str, Any] = {"name": group} if group else {}
        metadata["creationTimestamp"] = None
        items.append({"metadata": metadata, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def aggregated_content_type(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def openapi_index(registry: Registry) -> dict[str, Any]:
    """`/openapi/v3`: where each group version's document lives."""
    paths: dict[str, Any] = {}
    for group, version in registry.groups():
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash=kubesim"}
    return {"paths": paths}


def openapi_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """A minimal OpenAPI v3 document for one group version.

    It declares no schemas, only the PATCH operations with their
    `x-kubernetes-group-version-kind` and the `fieldValidation` query parameter: enough for
    kubectl to see that the server validates fields itself and to skip client-side schema
    validation (`kubectl create/apply` would otherwise refuse to run without OpenAPI).
    """
    types = registry.in_group(group, version)
    if not types:
        return None
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    for rt in types:
        scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        operation = {
            "x-kubernetes-group-version-kind": gvk,
            "x-kubernetes-action": "patch",
            "parameters": [
                {
                    "name": "fieldValidation",
                    "in": "query",
                    "schema": {"type": "string", "uniqueItems": True},
                }
            ],
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{scope}/{rt.plural}/{{name}}"] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }

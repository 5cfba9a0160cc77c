"""The in-process Python API of `KubeSim`: seed and inspect state without a client.

Every call goes through the same `Api` as HTTP requests (validation, resourceVersion,
generation, events to watchers), as the system identity. Resources are named like kubectl
names them: plural, kind, short name or `plural.group` (`"secrets"`, `"tcp"`,
`"deployments.apps"`). Objects go in and come out as plain JSON-shaped dicts (copies).
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from certlc_dev.kubesim.api import MERGE_PATCH, Api
from certlc_dev.kubesim.errors import NotFound
from certlc_dev.kubesim.resources import Registry, ResourceType
from certlc_dev.kubesim.selectors import object_matcher, parse_field_selector, parse_label_selector
from certlc_dev.kubesim.store import Store, thaw


def thaw_dict(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A deep, JSON-shaped copy of a mapping."""
    copied: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(obj))
    return copied


class ObjectApi:
    """Mixin over `api`, `registry` and `store` (provided by `KubeSim`)."""

    api: Api
    registry: Registry
    store: Store

    def resource(self, name: str) -> ResourceType:
        """A resource type by plural, kind, short name or `plural.group`."""
        return self.registry.resolve(name)

    def _scope(self, rt: ResourceType, namespace: str | None) -> str:
        return (namespace or "default") if rt.namespaced else ""

    def create(
        self, obj: Mapping[str, Any], *, namespace: str | None = None, keep_status: bool = False
    ) -> dict[str, Any]:
        """Create an object (kind/apiVersion from the body); `keep_status` seeds its status."""
        body = thaw_dict(obj)
        rt = self.registry.for_object(str(body.get("apiVersion")), str(body.get("kind")))
        ns = namespace or (body.get("metadata") or {}).get("namespace")
        return thaw(self.api.create(rt, self._scope(rt, ns), body, keep_status=keep_status))

    def get(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any]:
        """The object, or `NotFound`."""
        rt = self.resource(resource)
        return thaw(self.api.get(rt, self._scope(rt, namespace), name))

    def try_get(
        self, resource: str, name: str, namespace: str = "default"
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(resource, name, namespace)
        except NotFound:
            return None

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Objects sorted by namespace and name (every namespace when `namespace` is None)."""
        rt = self.resource(resource)
        fields = ("metadata.name", "metadata.namespace", *rt.field_labels)
        matcher = object_matcher(
            parse_label_selector(label_selector), parse_field_selector(field_selector, fields)
        )
        scope = namespace if rt.namespaced else ""
        return [thaw(s) for s in self.api.list_objects(rt, scope, matcher).items]

    def update(self, obj: Mapping[str, Any], *, subresource: str | None = None) -> dict[str, Any]:
        """PUT semantics (a resourceVersion in `obj` is a precondition)."""
        body = thaw_dict(obj)
        rt = self.registry.for_object(str(body.get("apiVersion")), str(body.get("kind")))
        meta = body.get("metadata") or {}
        return thaw(
            self.api.update(
                rt,
                self._scope(rt, meta.get("namespace")),
                meta["name"],
                body,
                subresource=subresource,
            )
        )

    def patch(
        self,
        resource: str,
        name: str,
        patch: Any,
        *,
        namespace: str = "default",
        patch_type: str = MERGE_PATCH,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PATCH; a merge patch unless `patch_type` says otherwise."""
        rt = self.resource(resource)
        return thaw(
            self.api.patch(
                rt, self._scope(rt, namespace), name, patch_type, patch, subresource=subresource
            )
        )

    def update_status(
        self, resource: str, name: str, status: Mapping[str, Any], *, namespace: str = "default"
    ) -> dict[str, Any]:
        """Replace `.status` through the status subresource."""
        rt = self.resource(resource)
        ns = self._scope(rt, namespace)
        with self.store.lock:
            body = thaw(self.api.get(rt, ns, name))
            body["status"] = thaw_dict(status)
            return thaw(self.api.update(rt, ns, name, body, subresource="status"))

    def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str = "default",
        propagation: str | None = None,
    ) -> bool:
        """Delete; True when the object is gone (False: finalizers pending)."""
        rt = self.resource(resource)
        _, gone = self.api.delete(rt, self._scope(rt, namespace), name, propagation=propagation)
        return gone

    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self.store.resource_version

    def _wait(
        self,
        resource: str,
        name: str,
        namespace: str,
        timeout: float,
        done: Callable[[dict[str, Any] | None], bool],
    ) -> dict[str, Any] | None:
        rt = self.resource(resource)
        sub = self.store.subscribe_all([rt])
        deadline = time.monotonic() + timeout
        try:
            while True:
                current = self.try_get(resource, name, namespace)
                if done(current):
                    return current
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{rt.group_resource} {name!r} did not reach the "
                        f"condition within {timeout}s"
                    )
                sub.take(left)  # woken by the next change of this resource type
        finally:
            self.store.unsubscribe(sub)

    def wait_for(
        self,
        resource: str,
        name: str,
        condition: Callable[[dict[str, Any]], bool],
        *,
        namespace: str = "default",
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Block until the object exists and satisfies `condition`; TimeoutError otherwise.

        Woken by the store's change events (no polling).
        """
        found = self._wait(
            resource, name, namespace, timeout, lambda obj: obj is not None and condition(obj)
        )
        assert found is not None
        return found

    def wait_for_deletion(
        self, resource: str, name: str, *, namespace: str = "default", timeout: float = 10.0
    ) -> None:
        """Block until the object does not exist; TimeoutError otherwise."""
        self._wait(resource, name, namespace, timeout, lambda obj: obj is None)

    def wait_for_rollout(
        self, name: str, *, namespace: str = "default", timeout: float = 10.0
    ) -> dict[str, Any]:
        """Block until a Deployment is rolled out (what `kubectl rollout status` waits for)."""

        def rolled_out(deployment: dict[str, Any]) -> bool:
            spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
            desired = int(spec.get("replicas", 1))
            return bool(
                status.get("observedGeneration") == deployment["metadata"].get("generation")
                and status.get("updatedReplicas", 0) == desired
                and status.get("availableReplicas", 0) == desired
                and status.get("replicas", 0) == desired
            )

        return self.wait_for("deployments", name, rolled_out, namespace=namespace, timeout=timeout)

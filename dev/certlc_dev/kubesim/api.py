"""The API verbs: create, get, list, update, patch, watch (deletion lives in `deletion.py`).

This is the registry layer of the stand-in: it enforces what kube-apiserver's generic store
enforces (names, namespaces, resourceVersion preconditions, server-managed metadata, status
subresource rules, generation, finalizers, dry-run) on top of `Store`, and delegates
kind-specific rules to `kinds.py`. It speaks in dicts and `Stored` objects and raises
`ApiError`s; HTTP is someone else's job, so controllers and tests call it directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from certlc_dev.kubesim.crds import SchemaKey, load_schemas
from certlc_dev.kubesim.deletion import Deleter, Preconditions
from certlc_dev.kubesim.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Forbidden,
    InternalError,
    Invalid,
    NotFound,
    invalid,
    required,
)
from certlc_dev.kubesim.events import ADDED, MODIFIED, Stored, Subscription
from certlc_dev.kubesim.kinds import strategy_for
from certlc_dev.kubesim.paging import ListResult, Pager
from certlc_dev.kubesim.pruning import Schema, prune
from certlc_dev.kubesim.resources import Generation, Registry, ResourceType
from certlc_dev.kubesim.scale import desired_replicas, scale_of, with_replicas
from certlc_dev.kubesim.selectors import Matcher
from certlc_dev.kubesim.store import Store, encode, thaw
from certlc_dev.kubesim.timefmt import rfc3339
from certlc_dev.kubesim.validation import metadata_errors, name_errors
from certlc_dev.kubesim.writes import (
    MERGE_PATCH,
    SERVER_FIELDS,
    FieldValidation,
    apply_patch,
    check_name,
    finish,
    generation_changed,
    keep_server_fields,
    metadata_of,
    new_finalizer_errors,
    random_suffix,
    set_scope,
    status_write,
    without_rv,
)

__all__ = ["Api", "Preconditions", "MERGE_PATCH"]


class Api:
    """Kubernetes API semantics over a `Store`."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] | None = None,
        schemas: Mapping[SchemaKey, Schema] | None = None,
    ) -> None:
        """`schemas`: the custom resources' schemas (default: deploy/crds)."""
        self.store = store
        self.registry: Registry = store.registry
        self.clock = clock or (lambda: datetime.now(UTC))
        self.schemas = load_schemas() if schemas is None else schemas
        missing = [
            rt.group_resource
            for rt in self.registry
            if rt.custom and (rt.group, rt.version, rt.plural) not in self.schemas
        ]
        if missing:
            raise ValueError(f"no schema for the custom resources {', '.join(missing)}")
        self.pager = Pager()
        self.namespaces = self.registry.resolve("namespaces")
        self.deleter = Deleter(store, self.namespaces, self.now)

    # ------------------------------------------------------------------ helpers

    def now(self) -> str:
        return rfc3339(self.clock())

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(self.namespaces, "", namespace)
        if ns is None:
            raise NotFound.object(self.namespaces, namespace)
        if (ns.obj.get("status") or {}).get("phase") == "Terminating":
            raise Forbidden(
                f'{rt.group_resource} "{namespace}" is forbidden: unable to create new content '
                f"in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": rt.plural},
            )

    def _decoded(
        self,
        rt: ResourceType,
        body: dict[str, Any],
        fields: FieldValidation | None,
        *,
        patch: bool = False,
    ) -> dict[str, Any]:
        """A custom resource as the API server decodes it: pruned by its version's schema,
        the dropped fields reported as `fields` asks (None: silently)."""
        if not rt.custom:
            return body
        pruned, unknown = prune(self.schemas[(rt.group, rt.version, rt.plural)], body)
        if fields is not None:
            fields.unknown_fields(rt, unknown, patch=patch)
        decoded: dict[str, Any] = pruned
        return decoded

    def require(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.store.get(rt, namespace, name)
        if stored is None:
            raise NotFound.object(rt, name)
        return stored

    # ------------------------------------------------------------------ reads

    def get(self, rt: ResourceType, namespace: str, name: str) -> Stored:
        return self.require(rt, namespace, name)

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        matcher: Matcher | None = None,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        if continue_token:
            return self.pager.resume(continue_token, limit)
        items, rv = self.store.objects(rt, namespace)
        if matcher is not None:
            items = [s for s in items if matcher(s.obj)]
        return self.pager.first(items, rv, limit)

    def watch(self, rt: ResourceType, namespace: str | None, since: int | None) -> Subscription:
        return self.store.subscribe(rt, namespace, since)

    # ------------------------------------------------------------------ create

    def _new_name(self, rt: ResourceType, meta: dict[str, Any], namespace: str) -> str:
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise Invalid(
                    rt, "", [required("metadata.name", "name or generateName is required")]
                )
            name = f"{prefix}{random_suffix()}"
            while self.store.get(rt, namespace, name) is not None:
                name = f"{prefix}{random_suffix()}"
            meta["name"] = name
        if not isinstance(name, str):
            raise BadRequest("metadata.name must be a string")
        errors = name_errors(name, dns_label=rt.kind == "Namespace")
        if errors:
            raise Invalid(rt, name, errors)
        if self.store.get(rt, namespace, name) is not None:
            raise AlreadyExists.object(rt, name)
        return name

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        keep_status: bool = False,
        fields: FieldValidation | None = None,
    ) -> Stored:
        """POST: validate and store a new object. `keep_status` is for seeding from tests."""
        with self.store.lock:
            metadata_of(rt, body)
            obj = self._decoded(rt, body, fields)
            meta = obj["metadata"]
            set_scope(rt, meta, namespace)
            if meta.get("resourceVersion"):
                raise InternalError("resourceVersion should not be set on objects to be created")
            name = self._new_name(rt, meta, namespace)
            self._check_namespace(rt, namespace)
            for key in SERVER_FIELDS:
                meta.pop(key, None)
            strategy = strategy_for(rt.kind)
            status = obj.pop("status", None)
            strategy.prepare(obj, None)
            if not rt.status_subresource or (keep_status and status is not None):
                status = status if status is not None else obj.get("status")
            else:
                status = strategy.initial_status()
            if status is not None:
                obj["status"] = status
            errors = metadata_errors(meta) + strategy.validate(obj, None)
            if errors:
                raise Invalid(rt, name, errors)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self.now()
            if rt.generation is not Generation.NONE:
                meta["generation"] = 1
            final = finish(rt, obj)
            if dry_run:
                return Stored(final, encode(final), 0)
            return self.store.commit(rt, ADDED, final, None)

    # ------------------------------------------------------------------ update / patch

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        fields: FieldValidation | None = None,
    ) -> Stored:
        """PUT: replace an object (or its status) with a resourceVersion precondition."""
        with self.store.lock:
            old = self.require(rt, namespace, name)
            metadata_of(rt, body)
            obj = self._decoded(rt, body, fields)
            meta = obj["metadata"]
            check_name(meta, name)
            set_scope(rt, meta, namespace)
            rv = meta.get("resourceVersion")
            if rv in (None, "") and rt.custom:
                raise Invalid(
                    rt,
                    name,
                    [invalid("metadata.resourceVersion", "0x0", "must be specified for an update")],
                )
            if rv not in (None, "") and str(rv) != str(old.rv):
                raise Conflict.object(rt, name)
            return self._write(rt, old, obj, subresource, dry_run)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        fields: FieldValidation | None = None,
    ) -> Stored:
        """PATCH in one of the three patch formats; a resourceVersion inside is a precondition."""
        with self.store.lock:
            old = self.require(rt, namespace, name)
            patched = apply_patch(rt, content_type, thaw(old), patch)
            metadata_of(rt, patched)
            obj = self._decoded(rt, patched, fields, patch=True)
            meta = obj["metadata"]
            check_name(meta, name)
            set_scope(rt, meta, namespace)
            rv = meta.get("resourceVersion")
            if rv not in (None, "") and str(rv) != str(old.rv):
                raise Conflict.object(rt, name)
            return self._write(rt, old, obj, subresource, dry_run)

    def _main_write(self, rt: ResourceType, old: Stored, new: dict[str, Any]) -> dict[str, Any]:
        """A write to the main resource: server fields and status kept, kind rules applied."""
        meta = new["metadata"]
        keep_server_fields(meta, old.metadata)
        if rt.status_subresource:
            new.pop("status", None)
            if "status" in old.obj:
                new["status"] = old.obj["status"]
        strategy = strategy_for(rt.kind)
        strategy.prepare(new, old.obj)
        errors = (
            metadata_errors(meta)
            + strategy.validate(new, old.obj)
            + new_finalizer_errors(meta, old.metadata)
        )
        if errors:
            raise Invalid(rt, old.name, errors)
        return new

    def _write(
        self,
        rt: ResourceType,
        old: Stored,
        obj: dict[str, Any],
        subresource: str | None,
        dry_run: bool,
    ) -> Stored:
        if subresource == "status":
            new = status_write(rt, thaw(old), obj)
        else:
            new = self._main_write(rt, old, obj)
        final = finish(rt, new)
        final["metadata"]["resourceVersion"] = str(old.rv)
        if without_rv(final) == without_rv(old.obj):
            return old  # nothing changed: no new resourceVersion, no event
        if subresource != "status" and generation_changed(rt.generation, final, old.obj):
            final["metadata"]["generation"] = int(old.metadata.get("generation", 0)) + 1
        if dry_run:
            return Stored(final, encode(final), old.rv)
        if old.metadata.get("deletionTimestamp") and not final["metadata"].get("finalizers"):
            return self.deleter.remove(rt, old, final, None)  # the last finalizer is gone
        return self.store.commit(rt, MODIFIED, final, old)

    # ------------------------------------------------------------------ scale

    def scale(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """GET `/scale`."""
        return scale_of(rt, self.require(rt, namespace, name).obj)

    def write_scale(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        content_type: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT (content_type None) or PATCH `/scale`: only the replicas of the object change."""
        with self.store.lock:
            old = self.require(rt, namespace, name)
            current = scale_of(rt, old.obj)
            wanted = body if content_type is None else apply_patch(rt, content_type, current, body)
            rv = (
                (wanted.get("metadata") or {}).get("resourceVersion")
                if isinstance(wanted, dict)
                else None
            )
            if rv not in (None, "") and str(rv) != str(old.rv):
                raise Conflict.object(rt, name)
            updated = self._decoded(
                rt, with_replicas(rt, thaw(old), desired_replicas(wanted)), None
            )
            return scale_of(rt, self._write(rt, old, updated, None, dry_run).obj)

    # ------------------------------------------------------------------ delete

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Preconditions | None = None,
        dry_run: bool = False,
    ) -> tuple[Stored, bool]:
        """DELETE: the last state, and whether the object is gone (False: finalizers)."""
        with self.store.lock:
            old = self.require(rt, namespace, name)
            return self.deleter.delete(rt, old, propagation, preconditions, dry_run)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        matcher: Matcher | None,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
    ) -> list[Stored]:
        """DELETE on a collection: each match is deleted (or marked) on its own."""
        with self.store.lock:
            items, _ = self.store.objects(rt, namespace)
            return [
                self.deleter.delete(rt, s, propagation, None, dry_run)[0]
                for s in items
                if matcher is None or matcher(s.obj)
            ]

"""Resource endpoints: one API request (already routed and authorized) to one response.

Parses query parameters (selectors, `resourceVersion`, `limit`/`continue`, `dryRun`,
`propagationPolicy`, watch options) and DeleteOptions bodies, calls `Api`, and renders the
result: an object, a list built by concatenating pre-encoded items, a server-side `Table` or
`PartialObjectMetadata` view when the Accept header asks for one, a delete `Status`, or a
watch stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from certlc_dev.kubesim.api import Api, Preconditions
from certlc_dev.kubesim.errors import BadRequest
from certlc_dev.kubesim.events import Stored
from certlc_dev.kubesim.negotiation import View, resource_view
from certlc_dev.kubesim.paging import ListResult
from certlc_dev.kubesim.resources import ResourceType
from certlc_dev.kubesim.routing import RequestInfo
from certlc_dev.kubesim.selectors import (
    CORE_FIELDS_ALL,
    Matcher,
    SelectorError,
    object_matcher,
    parse_field_selector,
    parse_label_selector,
)
from certlc_dev.kubesim.store import Store, encode
from certlc_dev.kubesim.tables import render_table
from certlc_dev.kubesim.watch import Encoder, json_event, serve_watch, table_encoder
from certlc_dev.kubesim.wire import JSON, Request, Response, Result
from certlc_dev.kubesim.writes import FieldValidation, warning_header

PROPAGATION = ("Foreground", "Background", "Orphan")


def _int_param(request: Request, name: str) -> int | None:
    value = request.param(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r}") from None


def _dry_run(request: Request, options: dict[str, Any] | None = None) -> bool:
    values = list(request.query.get("dryRun", []))
    if options and isinstance(options.get("dryRun"), list):
        values.extend(options["dryRun"])
    for value in values:
        if value != "All":
            raise BadRequest(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


def _fields(request: Request) -> FieldValidation:
    return FieldValidation.parse(request.param("fieldValidation"))


def _warned(response: Response, fields: FieldValidation) -> Response:
    if fields.warnings:
        response.headers["Warning"] = warning_header(fields.warnings)
    return response


def matcher_for(rt: ResourceType, request: Request) -> Matcher | None:
    try:
        labels = parse_label_selector(request.param("labelSelector"))
        fields = parse_field_selector(
            request.param("fieldSelector"), CORE_FIELDS_ALL + rt.field_labels
        )
    except SelectorError as error:
        raise BadRequest(str(error)) from None
    return object_matcher(labels, fields)


LIST_CHUNK = 256  # items per write: big writes without one giant copy of the whole list


def _list_chunks(rt: ResourceType, result: ListResult) -> list[bytes]:
    """A `<Kind>List` as chunks to write one after another (each item is pre-encoded)."""
    meta: dict[str, Any] = {"resourceVersion": str(result.rv)}
    if result.continue_token:
        meta["continue"] = result.continue_token
    if result.remaining is not None:
        meta["remainingItemCount"] = result.remaining
    head = (
        b'{"kind":"'
        + rt.list_kind.encode()
        + b'","apiVersion":"'
        + rt.api_version.encode()
        + b'","metadata":'
        + encode(meta)
        + b',"items":['
    )
    chunks = [head]
    items = result.items
    for start in range(0, len(items), LIST_CHUNK):
        batch = b",".join(s.raw for s in items[start : start + LIST_CHUNK])
        chunks.append(batch if start == 0 else b"," + batch)
    chunks.append(b"]}")
    return chunks


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


class Endpoints:
    """Serves routed resource requests."""

    def __init__(
        self, api: Api, *, clock: Callable[[], datetime], bookmark_interval: float
    ) -> None:
        self.api = api
        self.store: Store = api.store
        self.clock = clock
        self.bookmark_interval = bookmark_interval

    def serve(self, request: Request, info: RequestInfo) -> Result:
        view = resource_view(request.header("Accept"))
        handler = getattr(self, f"_{info.verb}")
        result: Result = handler(request, info, view)
        return result

    # ------------------------------------------------------------------ rendering

    def _object(
        self,
        rt: ResourceType,
        stored: Stored,
        view: View,
        status: int = 200,
        request: Request | None = None,
    ) -> Response:
        if view is View.TABLE:
            table = render_table(
                rt,
                [stored.obj],
                self.clock(),
                resource_version=str(stored.rv),
                include_object=self._include(request),
            )
            return Response.json(status, table)
        if view is View.PARTIAL_METADATA:
            return Response.json(status, _partial(stored.obj))
        return Response(status, stored.raw)

    @staticmethod
    def _include(request: Request | None) -> str:
        value = request.param("includeObject") if request is not None else None
        return value if value in {"None", "Metadata", "Object"} else "Metadata"

    def _items(
        self, rt: ResourceType, request: Request, result: ListResult, view: View
    ) -> Response:
        if view is View.TABLE:
            return Response.json(
                200,
                render_table(
                    rt,
                    [s.obj for s in result.items],
                    self.clock(),
                    resource_version=str(result.rv),
                    include_object=self._include(request),
                    continue_token=result.continue_token,
                    remaining=result.remaining,
                ),
            )
        if view is View.PARTIAL_METADATA:
            body: dict[str, Any] = {
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": str(result.rv)},
                "items": [_partial(s.obj) for s in result.items],
            }
            if result.continue_token:
                body["metadata"]["continue"] = result.continue_token
            return Response.json(200, body)
        return Response(200, _list_chunks(rt, result))

    # ------------------------------------------------------------------ reads

    def _get(self, request: Request, info: RequestInfo, view: View) -> Result:
        if info.subresource == "scale":
            return Response.json(200, self.api.scale(info.rt, info.namespace or "", info.name))
        stored = self.api.get(info.rt, info.namespace or "", info.name)
        return self._object(info.rt, stored, view, request=request)

    def _list(self, request: Request, info: RequestInfo, view: View) -> Result:
        result = self.api.list_objects(
            info.rt,
            info.namespace,
            matcher_for(info.rt, request),
            limit=_int_param(request, "limit"),
            continue_token=request.param("continue"),
        )
        return self._items(info.rt, request, result, view)

    def _watch(self, request: Request, info: RequestInfo, view: View) -> Result:
        rt = info.rt
        encoder: Encoder = json_event
        if view is View.TABLE:
            encoder = table_encoder(rt, self.clock, self._include(request))
        return serve_watch(
            self.store,
            rt,
            info.namespace,
            matcher_for(rt, request),
            request,
            encoder,
            self.bookmark_interval,
        )

    # ------------------------------------------------------------------ writes

    def _create(self, request: Request, info: RequestInfo, view: View) -> Result:
        fields = _fields(request)
        stored = self.api.create(
            info.rt,
            info.namespace or "",
            request.json_body(),
            dry_run=_dry_run(request),
            fields=fields,
        )
        return _warned(self._object(info.rt, stored, View.OBJECT, 201), fields)

    def _update(self, request: Request, info: RequestInfo, view: View) -> Result:
        if info.subresource == "scale":
            return Response.json(
                200,
                self.api.write_scale(
                    info.rt,
                    info.namespace or "",
                    info.name,
                    request.json_body(),
                    dry_run=_dry_run(request),
                ),
            )
        fields = _fields(request)
        stored = self.api.update(
            info.rt,
            info.namespace or "",
            info.name,
            request.json_body(),
            subresource=info.subresource or None,
            dry_run=_dry_run(request),
            fields=fields,
        )
        return _warned(self._object(info.rt, stored, View.OBJECT), fields)

    def _patch(self, request: Request, info: RequestInfo, view: View) -> Result:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if info.subresource == "scale":
            return Response.json(
                200,
                self.api.write_scale(
                    info.rt,
                    info.namespace or "",
                    info.name,
                    request.json_body(),
                    content_type=content_type,
                    dry_run=_dry_run(request),
                ),
            )
        body = request.json_body() if content_type != "application/apply-patch+yaml" else None
        fields = _fields(request)
        stored = self.api.patch(
            info.rt,
            info.namespace or "",
            info.name,
            content_type,
            body,
            subresource=info.subresource or None,
            dry_run=_dry_run(request),
            fields=fields,
        )
        return _warned(self._object(info.rt, stored, View.OBJECT), fields)

    def _delete_options(self, request: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if request.body:
            decoded = request.json_body()
            if not isinstance(decoded, dict):
                raise BadRequest("DeleteOptions must be an object")
            options = decoded
        policy = request.param("propagationPolicy") or options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is True:
            policy = "Orphan"
        if policy is not None and policy not in PROPAGATION:
            raise BadRequest(
                f'propagationPolicy: Unsupported value: "{policy}": supported '
                'values: "Foreground", "Background", "Orphan"'
            )
        options["propagationPolicy"] = policy
        return options

    def _delete(self, request: Request, info: RequestInfo, view: View) -> Result:
        options = self._delete_options(request)
        pre = options.get("preconditions") or {}
        preconditions = Preconditions(pre.get("uid"), pre.get("resourceVersion")) if pre else None
        stored, gone = self.api.delete(
            info.rt,
            info.namespace or "",
            info.name,
            propagation=options["propagationPolicy"],
            preconditions=preconditions,
            dry_run=_dry_run(request, options),
        )
        if gone and not info.rt.return_deleted_object:
            details: dict[str, Any] = {"name": stored.name}
            if info.rt.group:
                details["group"] = info.rt.group
            details["kind"] = info.rt.plural
            details["uid"] = stored.uid
            return Response.json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                },
            )
        return self._object(info.rt, stored, View.OBJECT)

    def _deletecollection(self, request: Request, info: RequestInfo, view: View) -> Result:
        options = self._delete_options(request)
        deleted: Sequence[Stored] = self.api.delete_collection(
            info.rt,
            info.namespace,
            matcher_for(info.rt, request),
            propagation=options["propagationPolicy"],
            dry_run=_dry_run(request, options),
        )
        result = ListResult(list(deleted), self.store.resource_version)
        return Response(200, _list_chunks(info.rt, result), JSON)

"""Request dispatch: health, authentication, discovery, the admin API, then resources.

Order of checks, as in kube-apiserver's filter chain: health endpoints and `/version` are
public; everything else needs a bearer token (401); resource requests are authorized through
the hook (403), then pass fault injection (latency, injected errors), then reach the
endpoints. `/_sim/...` is the stand-in's own admin API (faults, watch cuts, compaction),
outside any Kubernetes path so it can never clash with one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from certlc_dev.kubesim import discovery
from certlc_dev.kubesim.admin import AdminApi
from certlc_dev.kubesim.auth import (
    ANONYMOUS,
    Attributes,
    Authorizer,
    TokenAuthenticator,
    forbidden_error,
)
from certlc_dev.kubesim.endpoints import Endpoints
from certlc_dev.kubesim.errors import ApiError, MethodNotAllowed, NotFound
from certlc_dev.kubesim.faults import Faults
from certlc_dev.kubesim.negotiation import aggregated_discovery
from certlc_dev.kubesim.resources import Registry
from certlc_dev.kubesim.reviews import Reviews, impersonated
from certlc_dev.kubesim.routing import RequestInfo, parse
from certlc_dev.kubesim.tokens import TokenIssuer
from certlc_dev.kubesim.wire import Request, Response, Result

log = logging.getLogger("kubesim")

PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version"}


class Application:
    """Turns a `Request` into a `Result`."""

    def __init__(
        self,
        registry: Registry,
        endpoints: Endpoints,
        faults: Faults,
        *,
        authenticator: TokenAuthenticator | None,
        authorizer: Authorizer,
        tokens: TokenIssuer | None = None,
        server_address: Callable[[], str],
        snapshot: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.registry = registry
        self.endpoints = endpoints
        self.faults = faults
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.tokens = tokens
        self.reviews = Reviews(authorizer)
        self.server_address = server_address
        self.admin = AdminApi(faults, snapshot)

    def handle(self, request: Request) -> Result:
        try:
            return self._dispatch(request)
        except ApiError as error:
            return Response.error(error)

    def _dispatch(self, request: Request) -> Result:
        path = "/" + request.path.strip("/")
        if path in PUBLIC_PATHS:
            if path == "/version":
                return Response.json(200, discovery.SERVER_VERSION)
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if self.authenticator is None:
            request.identity = ANONYMOUS
        else:
            request.identity = self.authenticator.authenticate(request.header("Authorization"))
        user = request.header("Impersonate-User")
        if user:
            groups = tuple(
                g.strip() for g in (request.header("Impersonate-Group") or "").split(",") if g
            )
            request.identity = impersonated(request.identity, user, groups, self.authorizer)
        if path.startswith("/_sim/"):
            return self.admin.handle(request, path)
        found = self._discovery(request, path)
        if found is not None:
            return found
        info = parse(self.registry, request.method, path, request.query)
        if info is None:
            raise NotFound.path()
        return self._resource(request, info)

    def _resource(self, request: Request, info: RequestInfo) -> Result:
        """A resource request: authorization, then the verb check, faults and the handler."""
        attrs = Attributes(
            info.verb,
            info.rt.group,
            info.rt.plural,
            info.namespace or "",
            info.name,
            info.subresource,
        )
        identity = request.identity or ANONYMOUS
        if info.rt.review and info.verb == "create":  # about the caller: open to everyone
            return self.reviews.serve(request, info, identity)
        if not self.authorizer(identity, attrs):
            raise forbidden_error(identity, attrs)
        if not info.supported:
            raise MethodNotAllowed()
        decision = self.faults.decide(
            info.verb, info.rt, info.rt.plural, info.namespace or "", info.name, info.subresource
        )
        if decision.delay > 0:
            time.sleep(decision.delay)
        if decision.error is not None:
            raise decision.error
        if info.subresource == "token":
            if self.tokens is None:
                raise NotFound.path()
            return self.tokens.serve(request, info)
        return self.endpoints.serve(request, info)

    # ------------------------------------------------------------------ discovery

    def _discovery(self, request: Request, path: str) -> Response | None:
        if request.method not in {"GET", "HEAD"}:
            return None
        parts = path.strip("/").split("/")
        accept = request.header("Accept")
        if path in {"/api", "/apis"}:
            version = aggregated_discovery(accept)
            if version is not None:
                body = discovery.aggregated(self.registry, core=path == "/api", version=version)
                response = Response.json(200, body, discovery.aggregated_content_type(version))
                response.headers["Vary"] = "Accept"
                return response
            if path == "/api":
                return Response.json(200, discovery.api_versions(self.server_address()))
            return Response.json(200, discovery.api_group_list(self.registry))
        doc: dict[str, Any] | None = None
        if len(parts) == 2 and parts[0] == "api":
            doc = discovery.api_resource_list(self.registry, "", parts[1])
        elif len(parts) == 2 and parts[0] == "apis":
            doc = discovery.api_group(self.registry, parts[1])
        elif len(parts) == 3 and parts[0] == "apis":
            doc = discovery.api_resource_list(self.registry, parts[1], parts[2])
        elif parts[:2] == ["openapi", "v3"]:
            doc = self._openapi(parts[2:])
        elif parts[0] in {"openapi", "swagger.json"}:
            raise NotFound.path()
        else:
            return None
        if doc is None:
            raise NotFound.path()
        return Response.json(200, doc)

    def _openapi(self, rest: list[str]) -> dict[str, Any] | None:
        if not rest:
            return discovery.openapi_index(self.registry)
        if len(rest) == 2 and rest[0] == "api":
            return discovery.openapi_document(self.registry, "", rest[1])
        if len(rest) == 3 and rest[0] == "apis":
            return discovery.openapi_document(self.registry, rest[1], rest[2])
        return None

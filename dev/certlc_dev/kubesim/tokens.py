"""The TokenRequest API: `POST .../serviceaccounts/<name>/token`, what `kubectl create token`
and kubelet's projected volumes use.

The ServiceAccount must exist (404 otherwise). `spec.expirationSeconds` defaults to one hour
and must lie between ten minutes and 2^32 seconds (422 otherwise), as kube-apiserver enforces.
The token is opaque (not a JWT) and bound to the ServiceAccount's uid: it stops authenticating
when it expires or when the ServiceAccount is deleted (`auth.TokenAuthenticator`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from certlc_dev.kubesim import timefmt
from certlc_dev.kubesim.api import Api
from certlc_dev.kubesim.auth import BoundToken, TokenAuthenticator
from certlc_dev.kubesim.errors import BadRequest, FieldError, Invalid, invalid
from certlc_dev.kubesim.routing import RequestInfo
from certlc_dev.kubesim.wire import Request, Response

DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
DEFAULT_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)
API_VERSION = "authentication.k8s.io/v1"


class _TokenRequestKind:
    """How Invalid errors name the TokenRequest kind."""

    qualified_kind = "TokenRequest.authentication.k8s.io"
    plural = "tokenrequests"
    group_resource = "tokenrequests.authentication.k8s.io"
    group = "authentication.k8s.io"
    kind = "TokenRequest"


def _spec_errors(spec: Mapping[str, Any]) -> list[FieldError]:
    seconds = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise BadRequest("spec.expirationSeconds: must be an integer")
    if seconds < MIN_EXPIRATION:
        return [
            invalid(
                "spec.expirationSeconds",
                str(seconds),
                "may not specify a duration less than 10 minutes",
            )
        ]
    if seconds > MAX_EXPIRATION:
        return [
            invalid(
                "spec.expirationSeconds",
                str(seconds),
                "may not specify a duration larger than 2^32 seconds",
            )
        ]
    return []


class TokenIssuer:
    """Serves TokenRequests against the store's ServiceAccounts."""

    def __init__(
        self, api: Api, authenticator: TokenAuthenticator, clock: Callable[[], datetime]
    ) -> None:
        self.api = api
        self.authenticator = authenticator
        self.clock = clock

    def issue(
        self, namespace: str, name: str, spec: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A TokenRequest answered: the request's spec (defaulted) with `status.token`."""
        rt = self.api.store.registry.resolve("serviceaccounts")
        account = self.api.get(rt, namespace, name)  # NotFound names the ServiceAccount
        spec = dict(spec or {})
        errors = _spec_errors(spec)
        if errors:
            raise Invalid(_TokenRequestKind(), name, errors)
        seconds = int(spec.get("expirationSeconds", DEFAULT_EXPIRATION))
        now = self.clock()
        expires = now + timedelta(seconds=seconds)
        token = self.authenticator.issue(BoundToken(namespace, name, account.uid, expires))
        return {
            "kind": "TokenRequest",
            "apiVersion": API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": {
                "audiences": list(spec.get("audiences") or DEFAULT_AUDIENCES),
                "expirationSeconds": seconds,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {"token": token, "expirationTimestamp": timefmt.rfc3339(expires)},
        }

    def serve(self, request: Request, info: RequestInfo) -> Response:
        body = request.json_body()
        if not isinstance(body, Mapping):
            raise BadRequest("the request body must be a TokenRequest object")
        spec = body.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise BadRequest("spec: must be an object")
        return Response.json(201, self.issue(info.namespace or "", info.name, spec))

"""Questions a client asks about itself, and acting as someone else.

- `SelfSubjectAccessReview` (authorization.k8s.io/v1, what `kubectl auth can-i` sends): may the
  caller do this? Answered by the same authorizer that guards every request.
- `SelfSubjectReview` (authentication.k8s.io/v1, `kubectl auth whoami`): who is the caller?
- Impersonation (`Impersonate-User` and `Impersonate-Group` headers, `kubectl --as` and
  `--as-group`): the request runs as that user once the caller is authorized to `impersonate`
  the ServiceAccount (`system:serviceaccount:<ns>:<name>`), user or groups, as the API server's
  impersonation filter decides; a ServiceAccount username gets the ServiceAccount groups.

Both reviews are open to every authenticated caller, as the bootstrap ClusterRole
`system:basic-user` grants in a real cluster; they are never stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from certlc_dev.kubesim.auth import (
    SERVICE_ACCOUNT_PREFIX,
    Attributes,
    Authorizer,
    Identity,
    forbidden_error,
    service_account_identity,
)
from certlc_dev.kubesim.errors import BadRequest
from certlc_dev.kubesim.routing import RequestInfo
from certlc_dev.kubesim.wire import Request, Response

AUTHENTICATED = "system:authenticated"


def _service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a ServiceAccount username, None for any other user."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, _, name = username.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    return (namespace, name) if namespace and name and ":" not in name else None


def impersonated(
    caller: Identity, user: str, groups: tuple[str, ...], authorizer: Authorizer
) -> Identity:
    """The identity `caller` asks to act as; raises Forbidden unless it may impersonate it."""
    account = _service_account(user)
    if account is not None:
        namespace, name = account
        wanted = Attributes("impersonate", "", "serviceaccounts", namespace, name)
        target = service_account_identity(namespace, name)
    else:
        wanted = Attributes("impersonate", "", "users", "", user)
        target = Identity(user, ())
    if not authorizer(caller, wanted):
        raise forbidden_error(caller, wanted)
    for group in groups:
        asked = Attributes("impersonate", "", "groups", "", group)
        if not authorizer(caller, asked):
            raise forbidden_error(caller, asked)
    every = [*target.groups, *groups]
    if AUTHENTICATED not in every:
        every.append(AUTHENTICATED)
    return Identity(target.username, tuple(dict.fromkeys(every)))


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{what}: must be an object")
    return value


class Reviews:
    """Answers SelfSubjectAccessReviews and SelfSubjectReviews."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def serve(self, request: Request, info: RequestInfo, identity: Identity) -> Response:
        body = _mapping(request.json_body(), "the request body")
        if info.rt.kind == "SelfSubjectReview":
            return Response.json(201, self.whoami(identity))
        return Response.json(201, self.access(identity, _mapping(body.get("spec"), "spec")))

    def whoami(self, identity: Identity) -> dict[str, Any]:
        return {
            "kind": "SelfSubjectReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "status": {
                "userInfo": {"username": identity.username, "groups": list(identity.groups)}
            },
        }

    def access(self, identity: Identity, spec: Mapping[str, Any]) -> dict[str, Any]:
        resource = _mapping(spec.get("resourceAttributes"), "spec.resourceAttributes")
        non_resource = _mapping(spec.get("nonResourceAttributes"), "spec.nonResourceAttributes")
        if bool(resource) == bool(non_resource):
            raise BadRequest(
                "spec: exactly one of resourceAttributes and nonResourceAttributes must be set"
            )
        status: dict[str, Any]
        if non_resource:  # not authorized by this server: every authenticated caller may
            status = {"allowed": True, "reason": "non-resource URLs are open to every user"}
        else:
            attrs = Attributes(
                str(resource.get("verb", "")),
                str(resource.get("group", "")),
                str(resource.get("resource", "")),
                str(resource.get("namespace", "")),
                str(resource.get("name", "")),
                str(resource.get("subresource", "")),
            )
            status = {"allowed": bool(self.authorizer(identity, attrs))}
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": dict(spec),
            "status": status,
        }

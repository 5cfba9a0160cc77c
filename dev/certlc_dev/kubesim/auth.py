"""Bearer-token authentication, the authorization hook, and client kubeconfigs.

Each token maps to an identity (a user name and groups); a request without a known token gets
401 `Unauthorized`, as kube-apiserver with anonymous auth disabled. Static tokens name users;
ServiceAccount tokens (issued through the TokenRequest API, `tokens.py`) authenticate as
`system:serviceaccount:<namespace>:<name>` with the `system:serviceaccounts` groups, until they
expire or their ServiceAccount is deleted, as bound tokens do. `Authorizer` decides what an
identity may do: `allow_all`, or RBAC (`rbac.py`); a denial is the API server's 403 message.
The kubeconfig handed to clients (kubectl, the Python client) carries a token and, over HTTPS,
the CA as `certificate-authority-data`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from certlc_dev.kubesim.errors import Forbidden, Unauthorized

ADMIN_USER = "kubesim-admin"
SYSTEM_USER = "system:kube-sim"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who made a request."""

    username: str
    groups: tuple[str, ...] = ("system:authenticated",)


SYSTEM = Identity(SYSTEM_USER, ("system:masters",))
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_identity(namespace: str, name: str) -> Identity:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    return Identity(service_account_username(namespace, name), (*groups, "system:authenticated"))


@dataclass(frozen=True, slots=True)
class BoundToken:
    """A ServiceAccount token: whose, which ServiceAccount object (uid), until when."""

    namespace: str
    name: str
    uid: str
    expires: datetime


# Whether the ServiceAccount `namespace/name` still exists with this uid.
AccountCheck = Callable[[str, str, str], bool]
ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request wants to do, as RBAC sees it."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str
    subresource: str = ""


Authorizer = Callable[[Identity, Attributes], bool]


def allow_all(identity: Identity, attributes: Attributes) -> bool:
    return True


def forbidden_error(identity: Identity, attrs: Attributes) -> Forbidden:
    """kube-apiserver's RBAC denial message."""
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    what = f'{attrs.resource} "{attrs.name}"' if attrs.name else attrs.resource
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    message = (
        f'{what} is forbidden: User "{identity.username}" cannot {attrs.verb} resource '
        f'"{resource}" in API group "{attrs.group}"{where}'
    )
    details: dict[str, str] = {"name": attrs.name} if attrs.name else {}
    if attrs.group:
        details["group"] = attrs.group
    details["kind"] = attrs.resource
    return Forbidden(message, details=dict(details))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenAuthenticator:
    """Maps bearer tokens to identities; constant-time comparison for static tokens, digests
    for ServiceAccount tokens (only their SHA-256 is kept)."""

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        account_exists: AccountCheck | None = None,
    ) -> None:
        if tokens is None:
            tokens = {secrets.token_urlsafe(24): ADMIN_USER}
        self._tokens = dict(tokens)
        self._bound: dict[bytes, BoundToken] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.account_exists = account_exists

    def issue(self, bound: BoundToken) -> str:
        """A new ServiceAccount token for `bound`."""
        token = "kubesim-sa." + secrets.token_urlsafe(32)
        with self._lock:
            self._bound[_digest(token)] = bound
        return token

    def _service_account(self, presented: str) -> Identity | None:
        with self._lock:
            bound = self._bound.get(_digest(presented))
        if bound is None:
            return None
        if self._clock is not None and self._clock() >= bound.expires:
            return None
        if self.account_exists is not None and not self.account_exists(
            bound.namespace, bound.name, bound.uid
        ):
            return None
        return service_account_identity(bound.namespace, bound.name)

    @property
    def tokens(self) -> dict[str, str]:
        """token -> username."""
        return dict(self._tokens)

    def add(self, token: str, username: str) -> None:
        self._tokens[token] = username

    def first_token(self) -> str:
        return next(iter(self._tokens))

    def authenticate(self, authorization: str | None) -> Identity:
        """The identity for an `Authorization` header value; raises `Unauthorized`."""
        if not authorization:
            raise Unauthorized()
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized()
        presented = presented.strip()
        account = self._service_account(presented)
        if account is not None:
            return account
        for token, username in self._tokens.items():
            if hmac.compare_digest(token.encode(), presented.encode()):
                groups = (
                    ("system:masters", "system:authenticated")
                    if username == ADMIN_USER
                    else ("system:authenticated",)
                )
                return Identity(username, groups)
        raise Unauthorized()


# ---------------------------------------------------------------- kubeconfig

CLUSTER = "kube-sim"
USER = "kube-sim-admin"
CONTEXT = "kube-sim"


def kubeconfig_dict(
    url: str, token: str, ca_cert_pem: bytes | None, *, namespace: str = "default"
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": url}
    if ca_cert_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_cert_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": USER, "user": {"token": token}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CLUSTER, "user": USER, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
    }


def render_kubeconfig(
    url: str, token: str, ca_cert_pem: bytes | None, *, namespace: str = "default"
) -> str:
    """YAML text of the kubeconfig."""
    document = kubeconfig_dict(url, token, ca_cert_pem, namespace=namespace)
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text

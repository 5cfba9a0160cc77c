"""Kubeconfig files of a TenantControlPlane: rendering, and parsing the current context.

Decides the shape of the kubeconfigs Kamaji keeps (admin.conf and, as Kamaji HEAD writes them,
admin.svc, super-admin.conf and super-admin.svc; controller-manager, scheduler, konnectivity):
cluster named like the TCP with the CA embedded, user named like the client certificate's CN
with the certificate and key embedded, context `<CN>@<tcp>` current, and the `server` each
profile entry names (`endpoint_url`).
Parsing extracts the current context's credentials and fails with a `KubeconfigError` that says
which part is missing; key material is never part of a message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from libs.pki.errors import KubeconfigError
from libs.pki.profiles import PROFILES, Endpoint, SecretKind
from libs.pki.tcp import TcpSpec

# libyaml's C implementations when PyYAML has them (about 15x faster), the same safe subset.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def endpoint_url(endpoint: Endpoint, tcp: TcpSpec) -> str:
    """The server URL of `endpoint` for `tcp`.

    PUBLIC is `TcpSpec.public_endpoint` (kubeadm's controlPlaneEndpoint as Kamaji sets it in
    internal/resources/kubeadm_config.go: the ingress or gateway hostname, else
    `advertiseAddress`, else the address); SERVICE the in-cluster Service
    `<tcp>.<namespace>.svc` (internal/resources/kubeconfig.go).
    """
    if endpoint is Endpoint.PUBLIC:
        host, port = tcp.public_endpoint
        return f"https://{_host_port(host, port)}"
    host = {
        Endpoint.SERVICE: f"{tcp.name}.{tcp.namespace}.svc",
        Endpoint.LOOPBACK: "127.0.0.1",
        Endpoint.LOCALHOST: "localhost",
    }[endpoint]
    return f"https://{_host_port(host, tcp.port)}"


def kubeconfig_server(kind: SecretKind, tcp: TcpSpec, key: str | None = None) -> str:
    """The server URL of kubeconfig data key `key` (default: the kind's required one)."""
    prof = PROFILES[kind]
    if not prof.kubeconfigs:
        raise ValueError(f"{kind.value} is not a kubeconfig kind")
    try:
        entry = prof.kubeconfig_entry(key or prof.kubeconfigs[0].key)
    except KeyError:
        raise ValueError(f"{kind.value} has no kubeconfig key {key!r}") from None
    return endpoint_url(entry.endpoint, tcp)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def render_kubeconfig(
    *,
    cluster_name: str,
    server: str,
    ca_pem: bytes,
    user: str,
    client_cert_pem: bytes,
    client_key_pem: bytes,
) -> bytes:
    """A kubeconfig with one cluster, one user and the current context `<user>@<cluster>`."""
    context = f"{user}@{cluster_name}"
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"certificate-authority-data": _b64(ca_pem), "server": server},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client_cert_pem),
                    "client-key-data": _b64(client_key_pem),
                },
            }
        ],
    }
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False, default_flow_style=False).encode()


@dataclass(frozen=True, slots=True)
class KubeconfigCredentials:
    """The current context of a kubeconfig, decoded; the key never appears in repr or str."""

    context: str
    cluster_name: str
    server: str
    user_name: str
    ca_pem: bytes
    client_cert_pem: bytes
    client_key_pem: bytes = field(repr=False)


def _named(entries: object, section: str, name: str) -> Mapping[str, Any]:
    if not isinstance(entries, list):
        raise KubeconfigError(f"kubeconfig has no {section} list")
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            body = entry.get(section[:-1])
            if not isinstance(body, Mapping):
                raise KubeconfigError(f"kubeconfig {section[:-1]} {name!r} has no body")
            return body
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _decode(body: Mapping[str, Any], key: str, owner: str) -> bytes:
    value = body.get(key)
    if not value:
        file_key = key.removesuffix("-data")
        if body.get(file_key):
            raise KubeconfigError(f"{owner} refers to the file {file_key!r}; embedded {key} needed")
        raise KubeconfigError(f"{owner} has no {key}")
    if not isinstance(value, str):
        raise KubeconfigError(f"{owner} {key} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"{owner} {key} is not valid base64") from None


def parse_kubeconfig(raw: bytes) -> KubeconfigCredentials:
    """Extract the current context's cluster CA, server, client certificate and key."""
    try:
        document = yaml.load(raw, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        raise KubeconfigError("kubeconfig is not valid YAML") from None
    if not isinstance(document, Mapping):
        raise KubeconfigError("kubeconfig is not a YAML mapping")
    context_name = document.get("current-context")
    if not context_name or not isinstance(context_name, str):
        raise KubeconfigError("kubeconfig has no current-context")
    context = _named(document.get("contexts"), "contexts", context_name)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or not isinstance(user_name, str):
        raise KubeconfigError(f"context {context_name!r} lacks a cluster or a user")
    cluster = _named(document.get("clusters"), "clusters", cluster_name)
    user = _named(document.get("users"), "users", user_name)
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"cluster {cluster_name!r} has no server")
    return KubeconfigCredentials(
        context=context_name,
        cluster_name=cluster_name,
        server=server,
        user_name=user_name,
        ca_pem=_decode(cluster, "certificate-authority-data", f"cluster {cluster_name!r}"),
        client_cert_pem=_decode(user, "client-certificate-data", f"user {user_name!r}"),
        client_key_pem=_decode(user, "client-key-data", f"user {user_name!r}"),
    )

"""Reads what a rotate command needs from the Kubernetes API: the TCP, its Secrets and its
DataStore with the TLS material the DataStore references. All reads, no decisions."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from libs.bus.errors import PermanentError
from libs.contracts.messages import RotateCommand
from libs.kube import aio
from libs.kube.client import KubeClient
from libs.kube.errors import NotFound
from libs.pki import PkiError, SecretKind, TcpSpec, secret_name
from libs.pki.errors import SpecError
from libs.pki.tcp import SecretKeyRef, datastore_refs
from services.issuer.plan import DataStoreFacts, Existing, Gathered

DATASTORE_KINDS = frozenset({SecretKind.DATASTORE_CERTIFICATE, SecretKind.DATASTORE_CONFIG})


def _decode(data: Mapping[str, Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in data.items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            out[key] = b""  # broken base64 reads as empty: the plan re-issues it
    return out


def existing_of(obj: Mapping[str, Any]) -> Existing:
    meta = obj.get("metadata") or {}
    return Existing(
        resource_version=str(meta.get("resourceVersion") or ""),
        data=_decode(obj.get("data") or {}),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        secret_type=str(obj.get("type") or "Opaque"),
    )


async def _get_secret(kube: KubeClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return await aio.call(kube.get_secret, namespace, name)
    except NotFound:
        return None


async def _ref(kube: KubeClient, ref: SecretKeyRef | None) -> bytes | None:
    """The bytes a DataStore reference points at (None: no reference, or nothing there)."""
    if ref is None:
        return None
    obj = await _get_secret(kube, ref.namespace, ref.name)
    if obj is None:
        return None
    return _decode(obj.get("data") or {}).get(ref.key)


async def datastore_facts(kube: KubeClient, name: str) -> DataStoreFacts | None:
    try:
        ds = await aio.call(kube.get_datastore, name)
    except NotFound:
        return None
    spec = ds.get("spec") or {}
    try:
        refs = datastore_refs(ds)
    except SpecError as exc:
        raise PermanentError(f"DataStore {name}: {exc}") from None
    return DataStoreFacts(
        name=name,
        driver=str(spec.get("driver") or "etcd"),
        endpoints=tuple(str(e) for e in spec.get("endpoints") or ()),
        ca_cert=await _ref(kube, refs.ca_cert),
        ca_key=await _ref(kube, refs.ca_key),
        client_cert=await _ref(kube, refs.client_cert),
        client_key=await _ref(kube, refs.client_key),
    )


class Gone(Exception):
    """The rotation can never happen: its TCP is gone or was replaced, or the command names a
    Secret kind that does not exist. Final, unlike every other failure."""


async def gather(kube: KubeClient, cmd: RotateCommand) -> Gathered:
    """Everything `plan` needs. `Gone` when the TCP is gone or replaced; PermanentError when
    its spec cannot be read (retried after the backoff: the operator may fix it)."""
    where = f"{cmd.namespace}/{cmd.tcp}"
    try:
        tcp_obj = await aio.call(kube.get_tcp, cmd.namespace, cmd.tcp)
    except NotFound:
        raise Gone(f"TenantControlPlane {where} no longer exists") from None
    meta = tcp_obj.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    if cmd.tcp_uid and uid != cmd.tcp_uid:
        raise Gone(f"TenantControlPlane {where} was replaced (uid {uid})")
    try:
        tcp = TcpSpec.from_resource(tcp_obj)
    except PkiError as exc:
        raise PermanentError(f"TenantControlPlane {where}: {exc}") from None
    try:
        kinds = {SecretKind(k) for k in cmd.secrets}
    except ValueError as exc:
        raise Gone(f"rotate command {cmd.id}: {exc}") from None
    wanted = kinds | {SecretKind.CA, SecretKind.FRONT_PROXY_CA}
    secrets: dict[SecretKind, Existing] = {}
    for kind in sorted(wanted):
        obj = await _get_secret(kube, tcp.namespace, secret_name(tcp.name, kind))
        if obj is not None:
            secrets[kind] = existing_of(obj)
    datastore = await datastore_facts(kube, tcp.datastore) if kinds & DATASTORE_KINDS else None
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    return Gathered(
        tcp=tcp, tcp_uid=uid, secrets=secrets, datastore=datastore, annotations=annotations
    )

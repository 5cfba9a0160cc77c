"""The objects of a demo or test cluster: TenantControlPlanes as Kamaji would create them (the
TCP, its control-plane Deployment), DataStores (etcd with its CA, PostgreSQL with an external
client certificate) and the Secrets those DataStores reference.

These are plain JSON objects; the caller creates them through the API of its choice.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from libs.pki import SecretKind, TcpSpec, mint_secret_data, signer_from_secret_data

Obj = dict[str, Any]
DATASTORE_NAMESPACE = "kamaji-system"
CONTAINERS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "konnectivity-server")


def _b64(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _ref(name: str, key: str) -> Obj:
    return {"secretReference": {"name": name, "namespace": DATASTORE_NAMESPACE, "keyPath": key}}


def tcp_object(
    name: str,
    namespace: str = "default",
    *,
    address: str = "172.18.255.200",
    port: int = 6443,
    datastore: str = "default",
    konnectivity: bool = True,
    replicas: int = 2,
    version: str = "v1.26.0",
) -> Obj:
    spec: Obj = {
        "dataStore": datastore,
        "controlPlane": {
            "deployment": {"replicas": replicas},
            "service": {"serviceType": "LoadBalancer"},
        },
        "kubernetes": {"version": version, "kubelet": {"cgroupfs": "systemd"}},
        "networkProfile": {"address": address, "port": port, "serviceCidr": "10.96.0.0/16"},
        "addons": {"konnectivity": {"server": {"port": 8132}}} if konnectivity else {},
    }
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def tcp_status(
    name: str,
    *,
    address: str = "172.18.255.200",
    port: int = 6443,
    datastore: str = "default",
    driver: str = "etcd",
) -> Obj:
    """What Kamaji's own reconciler reports once the TCP is provisioned."""
    return {
        "controlPlaneEndpoint": f"{address}:{port}",
        "storage": {"driver": driver, "dataStoreName": datastore},
        "kubernetesResources": {"version": {"version": "v1.26.0", "status": "Ready"}},
    }


def deployment_object(
    name: str, namespace: str = "default", *, replicas: int = 2, konnectivity: bool = True
) -> Obj:
    containers = [c for c in CONTAINERS if konnectivity or c != "konnectivity-server"]
    labels = {"kamaji.clastix.io/name": name, "kamaji.clastix.io/component": "deployment"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"kamaji.clastix.io/name": name}},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {"name": c, "image": f"registry.k8s.io/{c}:v1.26.0"} for c in containers
                    ]
                },
            },
        },
    }


def _secret(name: str, data: dict[str, bytes]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": DATASTORE_NAMESPACE},
        "type": "Opaque",
        "data": _b64(data),
    }


def etcd_datastore(name: str = "default", *, now: datetime | None = None) -> list[Obj]:
    """An etcd DataStore and the Secret with its CA (Kamaji signs client certificates with it)."""
    now = now or datetime.now(UTC)
    placeholder = TcpSpec(name="datastore", namespace=DATASTORE_NAMESPACE, address="127.0.0.1")
    ca = mint_secret_data(SecretKind.CA, placeholder, now=now)
    certs = f"{name}-etcd-certs"
    datastore = {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": name},
        "spec": {
            "driver": "etcd",
            "endpoints": [f"etcd-0.etcd.{DATASTORE_NAMESPACE}.svc:2379"],
            "tlsConfig": {
                "certificateAuthority": {
                    "certificate": _ref(certs, "ca.crt"),
                    "privateKey": _ref(certs, "ca.key"),
                },
            },
        },
    }
    return [_secret(certs, {"ca.crt": ca["ca.crt"], "ca.key": ca["ca.key"]}), datastore]


def postgres_datastore(
    name: str = "postgres", *, now: datetime | None = None, client_validity: timedelta | None = None
) -> list[Obj]:
    """A PostgreSQL DataStore whose PKI is external: a CA and a client certificate in Secrets."""
    now = now or datetime.now(UTC)
    placeholder = TcpSpec(name="datastore", namespace=DATASTORE_NAMESPACE, address="127.0.0.1")
    ca = mint_secret_data(SecretKind.CA, placeholder, now=now)
    client = mint_secret_data(
        SecretKind.DATASTORE_CERTIFICATE,
        placeholder,
        now=now,
        signer=signer_from_secret_data(SecretKind.CA, ca),
        validity=client_validity,
    )
    certs = f"{name}-pki"
    datastore = {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": name},
        "spec": {
            "driver": "PostgreSQL",
            "endpoints": [f"postgres.{DATASTORE_NAMESPACE}.svc:5432"],
            "basicAuth": {
                "username": {"content": "cG9zdGdyZXM="},
                "password": _ref(certs, "password"),
            },
            "tlsConfig": {
                "certificateAuthority": {"certificate": _ref(certs, "ca.crt")},
                "clientCertificate": {
                    "certificate": _ref(certs, "tls.crt"),
                    "privateKey": _ref(certs, "tls.key"),
                },
            },
        },
    }
    data = {
        "ca.crt": ca["ca.crt"],
        "tls.crt": client["server.crt"],
        "tls.key": client["server.key"],
        "password": b"demo",
    }
    return [_secret(certs, data), datastore]

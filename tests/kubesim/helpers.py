"""Shared builders for the stand-in's conformance tests (plain dicts, as the wire carries)."""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import watch
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim

TCP_API = ("kamaji.clastix.io", "v1alpha1")


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def secret(
    name: str,
    data: dict[str, str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    type_: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "data": {k: b64(v) for k, v in (data or {}).items()},
    }
    if type_:
        body["type"] = type_
    body.update(extra)
    return body


def tcp(name: str, version: str = "v1.30.0", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "metadata": {"name": name},
        "spec": {
            "kubernetes": {"version": version},
            "dataStore": "default",
            "networkProfile": {"address": "10.0.0.5", "port": 6443},
            **spec,
        },
    }


def tcp_status(name: str, status: str = "Ready") -> dict[str, Any]:
    return {
        "kubernetesResources": {"version": {"status": status, "version": "v1.30.0"}},
        "controlPlaneEndpoint": "10.0.0.5:6443",
        "kubeconfig": {"admin": {"secretName": f"{name}-admin-kubeconfig"}},
        "storage": {"driver": "etcd", "dataStoreName": "default"},
    }


def datastore(name: str, driver: str = "etcd") -> dict[str, Any]:
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "DataStore",
        "metadata": {"name": name},
        "spec": {"driver": driver, "endpoints": ["etcd-0:2379"]},
    }


def deployment(
    name: str, *, replicas: int = 2, containers: int = 4, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    names = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "konnectivity-server"][
        :containers
    ]
    pod_labels = {"kamaji.clastix.io/name": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"kamaji.clastix.io/name": name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {"name": n, "image": f"registry.k8s.io/{n}:v1.30.0"} for n in names
                    ]
                },
            },
        },
    }


def status_of(error: ApiException) -> dict[str, Any]:
    """The `Status` body of an ApiException."""
    body: dict[str, Any] = json.loads(error.body)
    return body


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@contextlib.contextmanager
def watching(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[Iterator[Any]]:
    """A `Watch().stream(...)` that is stopped and closed when the block ends.

    Closing the generator releases its connection while the ApiClient is still open, instead
    of whenever the garbage collector gets to it.
    """
    w = watch.Watch()
    stream = w.stream(func, *args, **kwargs)
    try:
        yield stream
    finally:
        w.stop()
        stream.close()


def admin(
    sim: KubeSim,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Call the stand-in's admin API the way an out-of-process test would."""
    context = ssl.create_default_context(cadata=(sim.ca_cert_pem or b"").decode())
    request = urllib.request.Request(
        sim.url + path,
        method=method,
        data=json.dumps(body).encode() if body else None,
        headers={
            "Authorization": f"Bearer {token or sim.token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())

"""Every container of every overlay: probes, requests and limits, the restricted security
context; the certlc Deployments: image, command, replicas, settings, metrics Service."""

from __future__ import annotations

import re
import tomllib
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest

from libs.bus.auth import AuthMethod
from libs.runtime.config import Settings
from libs.runtime.settings import load_settings
from tests.deploy.expected import CREDENTIALS_SECRET, SERVER_AUTH_SECRET
from tests.deploy.manifests import (
    NAMESPACE,
    OVERLAYS,
    REPO,
    SERVICES,
    containers,
    env_of,
    generated,
    named,
    of_kind,
    overlay,
    pod_spec,
    workloads,
)

CERTLC_UID = 10001
HEALTH_PORT = 8080
REPLICAS = {"watcher": 1, "lifecycle": 1, "issuer": 2, "rollout": 2}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti)?$")
_FACTORS = {None: 1.0, "m": 0.001, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}


def quantity(text: str | int) -> float:
    match = _QUANTITY.match(str(text))
    assert match, f"unexpected quantity {text!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


def all_containers(name: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container of an overlay."""
    return [
        (w["metadata"]["name"], pod_spec(w), c)
        for w in workloads(overlay(name))
        for c in containers(w)
    ]


def container_ids() -> list[tuple[str, str, str]]:
    return [
        (name, workload, container["name"])
        for name in OVERLAYS
        for workload, _, container in all_containers(name)
    ]


def find(name: str, workload: str, container: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for w, pod, c in all_containers(name):
        if (w, c["name"]) == (workload, container):
            return pod, c
    raise AssertionError(f"{workload}/{container} not in {name}")


@pytest.mark.parametrize(("name", "workload", "container"), container_ids())
def test_probes_on_the_health_endpoints(name: str, workload: str, container: str) -> None:
    _, c = find(name, workload, container)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe in c, f"{workload}/{container} has no {probe}"
        get = c[probe]["httpGet"]
        assert get["port"] in ports or isinstance(get["port"], int)
    if workload.startswith("certlc-"):
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert ports[c["livenessProbe"]["httpGet"]["port"]] == HEALTH_PORT


@pytest.mark.parametrize(("name", "workload", "container"), container_ids())
def test_requests_and_limits(name: str, workload: str, container: str) -> None:
    _, c = find(name, workload, container)
    resources = c["resources"]
    for resource in ("cpu", "memory"):
        request = quantity(resources["requests"][resource])
        limit = quantity(resources["limits"][resource])
        assert 0 < request <= limit, f"{workload}/{container} {resource}"


@pytest.mark.parametrize(("name", "workload", "container"), container_ids())
def test_restricted_security_context(name: str, workload: str, container: str) -> None:
    pod, c = find(name, workload, container)
    ctx = c["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx.get("privileged", False) is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(host), f"{workload}: {host}"
    for volume in pod.get("volumes", []):
        assert "hostPath" not in volume, f"{workload}: hostPath volume {volume['name']}"
    if workload.startswith("certlc-"):
        assert ctx["runAsUser"] == pod["securityContext"]["runAsUser"] == CERTLC_UID


@pytest.mark.parametrize("name", OVERLAYS)
def test_objects_are_namespaced_and_unique(name: str) -> None:
    seen = set()
    for obj in overlay(name):
        meta = obj["metadata"]
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in meta, f"{obj['kind']} {meta['name']}"
        else:
            assert meta.get("namespace") == NAMESPACE, f"{obj['kind']} {meta['name']}"
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
    namespace = named(overlay(name), "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def console_scripts() -> dict[str, str]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        scripts: dict[str, str] = tomllib.load(fh)["project"]["scripts"]
    return scripts


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_certlc_deployment(name: str, service: str) -> None:
    deployment = named(overlay(name), "Deployment", f"certlc-{service}")
    assert deployment["spec"]["replicas"] == REPLICAS[service]
    (c,) = containers(deployment)
    image, _, tag = c["image"].rpartition(":")
    assert image.endswith("certlc")
    assert tag
    assert tag != "latest"
    assert c["command"] == [f"certlc-{service}"]
    assert console_scripts()[f"certlc-{service}"] == f"services.{service}.__main__:run"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable path with a read-only root filesystem


def resolved_env(name: str, service: str) -> dict[str, str]:
    """The container's environment as the kubelet builds it (with dummy secret values)."""
    objects = overlay(name)
    (c,) = containers(named(objects, "Deployment", f"certlc-{service}"))
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        (config,) = [m for m in of_kind(objects, "ConfigMap") if m["metadata"]["name"] == ref]
        env.update(config["data"])
    for entry in c.get("env", []):
        if "value" in entry:
            # $(VAR) refers to variables defined before it, as Kubernetes expands them.
            env[entry["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), entry["value"]
            )
            continue
        source = entry["valueFrom"]
        if "secretKeyRef" in source:
            env[entry["name"]] = f"secret-{source['secretKeyRef']['key']}"
        else:
            ref = source["configMapKeyRef"]
            (config,) = [
                m for m in of_kind(objects, "ConfigMap") if m["metadata"]["name"] == ref["name"]
            ]
            env[entry["name"]] = config["data"][ref["key"]]
    return env


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_settings_load_as_the_service_loads_them(name: str, service: str) -> None:
    env = resolved_env(name, service)
    settings = load_settings(Settings, env)  # unknown CERTLC_* or a bad value raises
    url = urlsplit(settings.nats_url)
    assert "$(" not in settings.nats_url, "an env variable is used before it is defined"
    assert url.scheme in ("nats", "tls")
    server = generated(overlay(name), "ConfigMap", "certlc-nats")["data"]["server"]
    assert url.netloc == server, "no credentials in the URL"
    auth = settings.nats_auth()
    assert auth.method is AuthMethod.PASSWORD
    assert auth.user == f"certlc-{service}"
    assert auth.password_file is not None
    assert settings.health_port == HEALTH_PORT
    assert settings.kubeconfig == ""  # in-cluster service account


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_the_nats_password_is_a_read_only_file_never_a_variable(name: str, service: str) -> None:
    deployment = named(overlay(name), "Deployment", f"certlc-{service}")
    pod = pod_spec(deployment)
    (c,) = containers(deployment)
    # No environment variable takes a value from a Secret, nor holds a credential.
    for entry in c.get("env", []):
        assert "secretKeyRef" not in entry.get("valueFrom", {}), entry["name"]
    for key, value in resolved_env(name, service).items():
        assert "@" not in value, f"{key} carries credentials"
    assert not [s for s in c.get("envFrom", []) if "secretRef" in s]
    # The password file is the service's key of the Secret, mounted read-only.
    password_file = PurePosixPath(env_of(c)["CERTLC_NATS_PASSWORD_FILE"]["value"])
    (mount,) = [
        m for m in c["volumeMounts"] if PurePosixPath(m["mountPath"]) == password_file.parent
    ]
    assert mount["readOnly"] is True
    assert "subPath" not in mount  # a subPath mount would never see a rotated Secret
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = volume["secret"]
    assert secret["secretName"] == "certlc-nats-credentials"
    assert secret["items"] == [{"key": service, "path": password_file.name}]
    assert secret.get("optional", False) is False  # no start without the Secret
    # Readable by the owner and the pod's group only (the files belong to root, group fsGroup).
    mode = secret["defaultMode"]
    assert mode in (0o400, 0o440)
    if mode == 0o440:
        assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]
    # Mounted read-only where nothing else is mounted.
    others = [m for m in c["volumeMounts"] if m is not mount]
    assert all(
        not PurePosixPath(m["mountPath"]).is_relative_to(password_file.parent) for m in others
    )


@pytest.mark.parametrize("name", ["default", "cluster"])
def test_services_reach_the_bundled_nats(name: str) -> None:
    objects = overlay(name)
    server = generated(objects, "ConfigMap", "certlc-nats")["data"]["server"]
    host, _, port = server.rpartition(":")
    service = named(objects, "Service", "nats")
    assert host in (f"nats.{NAMESPACE}.svc", f"nats.{NAMESPACE}.svc.cluster.local")
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_service_selects_pods_and_named_ports(name: str) -> None:
    objects = overlay(name)
    pods = [(pod_spec(w), w["spec"]["template"]["metadata"]["labels"]) for w in workloads(objects)]
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        matching = [spec for spec, labels in pods if selector.items() <= labels.items()]
        assert matching, f"Service {service['metadata']['name']} selects no pod"
        names = {p["name"] for spec in matching for c in spec["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, f"{service['metadata']['name']}: {port}"


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES)
def test_a_metrics_service_per_certlc_service(name: str, service: str) -> None:
    svc = named(overlay(name), "Service", f"certlc-{service}")
    assert svc["spec"]["ports"] == [
        {"name": "metrics", "port": HEALTH_PORT, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": f"certlc-{service}"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_config_references_resolve(name: str) -> None:
    """ConfigMaps and ServiceAccounts referenced by pods exist in the same render. The only
    Secrets referenced are those of deploy/nats-credentials.sh: the services' password files come
    from the plaintext one, the NATS server's password variables from the bcrypt hashes (and the
    server references nothing else: it never holds a plaintext password)."""
    objects = overlay(name)
    referenced: dict[str, set[str]] = {}
    configmaps = {m["metadata"]["name"] for m in of_kind(objects, "ConfigMap")}
    accounts = {a["metadata"]["name"] for a in of_kind(objects, "ServiceAccount")}
    for workload in workloads(objects):
        pod = pod_spec(workload)
        if "serviceAccountName" in pod:
            assert pod["serviceAccountName"] in accounts
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps
            if "secret" in volume:
                assert volume["secret"]["secretName"] == CREDENTIALS_SECRET
                referenced.setdefault(workload["metadata"]["name"], set()).add(CREDENTIALS_SECRET)
        for c in containers(workload):
            for source in c.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps
            for entry in env_of(c).values():
                source = entry.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    (config,) = [
                        m
                        for m in of_kind(objects, "ConfigMap")
                        if m["metadata"]["name"] == ref["name"]
                    ]
                    assert ref["key"] in config["data"]
                if "secretKeyRef" in source:
                    assert workload["kind"] == "StatefulSet", "only NATS reads Secrets as variables"
                    assert source["secretKeyRef"]["name"] == SERVER_AUTH_SECRET
                    referenced.setdefault(workload["metadata"]["name"], set()).add(
                        SERVER_AUTH_SECRET
                    )
    services = {f"certlc-{service}": {CREDENTIALS_SECRET} for service in SERVICES}
    nats = {"nats": {SERVER_AUTH_SECRET}} if of_kind(objects, "StatefulSet") else {}
    assert referenced == services | nats
    assert not of_kind(objects, "Secret"), "no Secret (and no password) is rendered"

"""compose.yaml: valid against the Compose Specification schema, files it names exist, and the
services are wired as in Kubernetes (commands, settings, kubeconfig, health, non-root)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from libs.bus.auth import AuthMethod, url_has_credentials
from libs.runtime.config import Settings
from libs.runtime.settings import load_settings
from tests.deploy.manifests import REPO, SERVICES

COMPOSE = REPO / "compose.yaml"
SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
K3S_SERVICES = {"k3s", "k3s-kubeconfig"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with an empty environment."""
    return _VARIABLE.sub(lambda m: m.group(2) or "", value)


def volume(spec: str) -> tuple[str, str, str]:
    """(source, target, mode) of a short-syntax volume."""
    parts = interpolate(spec).split(":")
    source, target = parts[0], parts[1]
    return source, target, parts[2] if len(parts) > 2 else "rw"


def service(name: str) -> dict[str, Any]:
    svc: dict[str, Any] = compose()["services"][name]
    return svc


def test_compose_validates_against_the_compose_specification() -> None:
    jsonschema: Any = pytest.importorskip(
        "jsonschema", reason="jsonschema comes with the dev dependency kubernetes-validate"
    )
    spec = json.loads(SCHEMA.read_text())
    # Its "$schema" names draft 2019-09 by a URI jsonschema does not recognise (http, with a
    # trailing "#"); it uses no keyword whose meaning differs between drafts 7 and 2019-09.
    validator = jsonschema.Draft7Validator(spec)
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())
    ]
    assert errors == []
    # The schema really checks: an unknown service key is an error.
    broken = compose()
    broken["services"]["watcher"]["comand"] = ["certlc-watcher"]
    assert list(validator.iter_errors(broken))


def test_the_image_is_built_from_deploy_dockerfile() -> None:
    for name in SERVICES:
        build = service(name)["build"]
        assert (REPO / build["context"]).resolve() == REPO
        assert (REPO / build["context"] / build["dockerfile"]).is_file()
        assert service(name)["image"] == service("watcher")["image"]


def test_files_and_volumes_it_names_exist() -> None:
    data = compose()
    declared = set(data.get("volumes") or {})
    ignored = (REPO / ".gitignore").read_text().split()
    for name, svc in data["services"].items():
        for spec in svc.get("volumes", []):
            source, _, _ = volume(spec)
            if source.startswith((".", "/", "~")):
                path = (REPO / source).resolve()
                if path.is_relative_to(REPO / ".demo"):
                    assert "/.demo/" in ignored  # runtime state, created on first use
                else:
                    assert path.exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


@pytest.mark.parametrize("name", SERVICES)
def test_certlc_service(name: str) -> None:
    svc = service(name)
    assert svc["command"] == [f"certlc-{name}"]
    with (REPO / "pyproject.toml").open("rb") as fh:
        assert f"certlc-{name}" in tomllib.load(fh)["project"]["scripts"]
    env = {key: interpolate(str(value)) for key, value in svc["environment"].items()}
    settings = load_settings(Settings, env)  # unknown CERTLC_* or a bad value raises
    assert settings.nats_url == "nats://nats:4222"
    # a NATS without users: no credentials anywhere, in the URL or as a file method
    assert not url_has_credentials(settings.nats_url)
    assert settings.nats_auth().method is AuthMethod.NONE
    assert svc["depends_on"]["nats"] == {"condition": "service_healthy"}
    assert not svc.get("profiles")
    # as in Kubernetes: the image's non-root user, read-only root, /tmp writable
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)[-1]
    assert svc["user"] == user == "10001:10001"
    assert svc["read_only"] is True
    assert svc["tmpfs"] == ["/tmp"]
    assert svc["cap_drop"] == ["ALL"]
    # health: the readiness endpoint on the configured port
    check = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{settings.health_port}/readyz" in check
    if name == "lifecycle":  # talks only to NATS
        assert settings.kubeconfig == ""
        assert not svc.get("volumes")
        return
    mounts = {target: (source, mode) for source, target, mode in map(volume, svc["volumes"])}
    kube_dir = str(Path(settings.kubeconfig).parent)
    assert mounts[kube_dir][1] == "ro", "the kubeconfig is mounted read-only"


def test_nats_has_jetstream_on_a_volume() -> None:
    nats = service("nats")
    command = nats["command"]
    assert command[:3] == ["-js", "-sd", "/data"]
    assert nats["image"].startswith("nats:2.9")
    assert ("nats-data", "/data", "rw") in [volume(v) for v in nats["volumes"]]
    assert "/healthz" in " ".join(nats["healthcheck"]["test"])
    monitor = command[command.index("-m") + 1]
    assert f"127.0.0.1:{monitor}/healthz" in " ".join(nats["healthcheck"]["test"])


def test_k3s_profile_is_a_local_cluster_feeding_the_kubeconfig() -> None:
    data = compose()
    profiled = {name for name, svc in data["services"].items() if svc.get("profiles")}
    assert profiled == K3S_SERVICES
    for name in K3S_SERVICES:
        assert service(name)["profiles"] == ["k3s"]
    k3s = service("k3s")
    assert k3s["image"].startswith("rancher/k3s:")
    assert k3s["privileged"] is True
    assert service("k3s-kubeconfig")["depends_on"]["k3s"] == {"condition": "service_healthy"}
    # k3s writes its kubeconfig to a volume the copier reads...
    output = k3s["environment"]["K3S_KUBECONFIG_OUTPUT"]
    k3s_volumes = [volume(v) for v in k3s["volumes"]]
    (shared,) = [src for src, dst, _ in k3s_volumes if output.startswith(dst + "/")]
    copier = [volume(v) for v in service("k3s-kubeconfig")["volumes"]]
    assert any(src == shared for src, _, _ in copier)
    # ...which writes it where the services read it, addressed to the k3s container.
    script = " ".join(service("k3s-kubeconfig")["command"])
    watcher = service("watcher")
    kubeconfig = watcher["environment"]["CERTLC_KUBECONFIG"]
    (kube_source,) = [s for s, t, _ in map(volume, watcher["volumes"]) if t == "/kube"]
    (copier_target,) = [t for s, t, _ in copier if s == kube_source]
    assert copier_target == str(Path(kubeconfig).parent)
    assert f"mv {copier_target}/config.new {kubeconfig}" in script
    assert "https://k3s:6443" in script
    assert "--tls-san=k3s" in k3s["command"]
    # Kamaji's CRDs are applied by k3s itself.
    manifests = [s for s, t, _ in k3s_volumes if "/server/manifests/" in t]
    assert sorted(Path(s).name for s in manifests) == [
        "datastores.yaml",
        "tenantcontrolplanes.yaml",
    ]


def shell_command(name: str) -> list[str]:
    """The words of a service's healthcheck, a CMD-SHELL (one string for /bin/sh -c): Docker
    Compose and podman-compose 1.0 both run that form as written (the latter garbles CMD)."""
    kind, *rest = service(name)["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    assert len(rest) == 1
    return shlex.split(rest[0])


def test_healthcheck_commands_exist_in_their_images() -> None:
    """The certlc image has python (no curl); the nats alpine image has busybox wget."""
    for name in SERVICES:
        assert shell_command(name)[:2] == ["python", "-c"]
    assert shell_command("nats")[0] == "wget"
    assert shell_command("k3s")[0] == "kubectl"

"""Rendering deploy/ with `kubectl kustomize` and walking the objects it produces."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = ("default", "cluster", "existing-nats")
NAMESPACE = "certlc-system"
SERVICES = ("watcher", "lifecycle", "issuer", "rollout")
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")
# kustomize v5 (kubectl >= 1.27) reads `labels:`; older embedded versions do not.
KUBECTL_MIN_MINOR = 27

Obj = dict[str, Any]


@functools.cache
def kubectl() -> str:
    """The kubectl binary; fails the test (not skip) when it is missing or too old."""
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail(
            "kubectl is not on PATH: tests/deploy render deploy/ with `kubectl kustomize`; "
            f"install kubectl >= 1.{KUBECTL_MIN_MINOR} (its embedded kustomize v5 is needed)",
            pytrace=False,
        )
    done = subprocess.run(
        [path, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"`kubectl version --client` failed: {done.stderr.strip()}", pytrace=False)
    version = json.loads(done.stdout)["clientVersion"]
    minor = int("".join(ch for ch in str(version["minor"]) if ch.isdigit()))
    if (int(version["major"]), minor) < (1, KUBECTL_MIN_MINOR):
        pytest.fail(
            f"kubectl {version['gitVersion']} is too old for deploy/ "
            f"(kustomize v5 needs kubectl >= 1.{KUBECTL_MIN_MINOR})",
            pytrace=False,
        )
    return path


@functools.cache
def render(directory: str) -> tuple[Obj, ...]:
    """`kubectl kustomize deploy/<directory>` as a tuple of objects (cached per directory)."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"kubectl kustomize deploy/{directory} failed:\n{done.stderr}", pytrace=False)
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def overlay(name: str) -> tuple[Obj, ...]:
    return render(f"overlays/{name}")


def of_kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") == kind]


def named(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def generated(objects: tuple[Obj, ...], kind: str, prefix: str) -> Obj:
    """A kustomize-generated object (name `<prefix>-<hash>`)."""
    found = [
        obj for obj in of_kind(objects, kind) if obj["metadata"]["name"].rsplit("-", 1)[0] == prefix
    ]
    assert len(found) == 1, f"expected one generated {kind} {prefix}-*, found {len(found)}"
    return found[0]


def workloads(objects: tuple[Obj, ...]) -> list[Obj]:
    return [obj for obj in objects if obj.get("kind") in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers") or []
    yield from spec["containers"]


def env_of(container: Obj) -> dict[str, Obj]:
    return {entry["name"]: entry for entry in container.get("env") or []}

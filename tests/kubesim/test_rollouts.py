"""Rolling updates as the deployment controller runs them, seen through the official client
(a pod watch checks the strategy's bounds at every step) and kubectl (`rollout status`,
`pause`, `resume`, `restart`)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim.helpers import deployment, wait_for

NEVER_READY_IMAGE = "registry.invalid/kube-apiserver:v0"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class PodCensus:
    """Every state of a Deployment's pods a watch saw: (pods, ready) after each event."""

    seen: list[tuple[int, int]] = field(default_factory=list)
    templates_together: bool = False
    error: Exception | None = None

    @property
    def most_pods(self) -> int:
        return max(n for n, _ in self.seen)

    @property
    def fewest_ready(self) -> int:
        return min(r for _, r in self.seen)


@contextmanager
def census(core: client.CoreV1Api, name: str) -> Iterator[PodCensus]:
    result = PodCensus()
    pods: dict[str, tuple[str, bool]] = {}
    listing = core.list_namespaced_pod("default", label_selector=f"kamaji.clastix.io/name={name}")
    for pod in listing.items:
        pods[pod.metadata.name] = (pod.metadata.labels["pod-template-hash"], _ready(pod))
    stop = threading.Event()
    w = watch.Watch()

    def follow() -> None:
        try:
            watch_pods()
        except Exception as exc:  # after stop(): the closed connection; before: a failure
            if not stop.is_set():
                result.error = exc

    def watch_pods() -> None:
        for event in w.stream(
            core.list_namespaced_pod,
            "default",
            label_selector=f"kamaji.clastix.io/name={name}",
            resource_version=listing.metadata.resource_version,
            timeout_seconds=60,
        ):
            pod = event["object"]
            if event["type"] == "DELETED":
                pods.pop(pod.metadata.name, None)
            else:
                pods[pod.metadata.name] = (pod.metadata.labels["pod-template-hash"], _ready(pod))
            result.seen.append((len(pods), sum(1 for _, ready in pods.values() if ready)))
            if len({h for h, _ in pods.values()}) > 1:
                result.templates_together = True
            if stop.is_set():
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        w.stop()
        thread.join(timeout=65)
    assert result.error is None, f"the pod watch failed: {result.error!r}"


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _create(apps: client.AppsV1Api, name: str, replicas: int, **spec: Any) -> None:
    body = deployment(name, replicas=replicas)
    body["spec"].update(spec)
    apps.create_namespaced_deployment("default", body)


def _set_image(apps: client.AppsV1Api, name: str, image: str) -> None:
    """Read, change, replace; again on a conflict, as client-go's RetryOnConflict does: the
    deployment controller may write the object's status between the read and the replace."""
    for _ in range(10):
        d = apps.read_namespaced_deployment(name, "default")
        d.spec.template.spec.containers[0].image = image
        try:
            apps.replace_namespaced_deployment(name, "default", d)
            return
        except ApiException as e:
            if e.status != 409:
                raise
    raise AssertionError(f"deployment {name} kept conflicting")


def _progressing(apps: client.AppsV1Api, name: str) -> client.V1DeploymentCondition:
    status = apps.read_namespaced_deployment_status(name, "default").status
    return next(c for c in status.conditions if c.type == "Progressing")


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "most", "fewest"),
    [
        (2, None, None, 3, 2),  # defaults 25%/25%: surge rounds up to 1, unavailable down to 0
        (4, 1, 1, 5, 3),
        (4, "50%", 0, 6, 4),
        (3, 0, 1, 3, 2),
    ],
)
def test_a_rolling_update_stays_within_max_surge_and_max_unavailable(
    apps: client.AppsV1Api,
    core: client.CoreV1Api,
    kubectl: Kubectl,
    replicas: int,
    surge: int | str | None,
    unavailable: int | str | None,
    most: int,
    fewest: int,
) -> None:
    rolling = {
        k: v for k, v in (("maxSurge", surge), ("maxUnavailable", unavailable)) if v is not None
    }
    strategy = {"type": "RollingUpdate", **({"rollingUpdate": rolling} if rolling else {})}
    _create(apps, "roll", replicas, strategy=strategy)
    kubectl("rollout", "status", "deployment/roll", "--timeout=60s")
    with census(core, "roll") as seen:
        _set_image(apps, "roll", "registry.k8s.io/kube-apiserver:v1.31.0")
        out = kubectl("rollout", "status", "deployment/roll", "--timeout=60s").stdout
        assert 'deployment "roll" successfully rolled out' in out
    assert seen.templates_together, "a rolling update has old and new pods side by side"
    assert seen.most_pods == most, seen.seen
    assert seen.fewest_ready == fewest, seen.seen
    done = apps.read_namespaced_deployment("roll", "default")
    assert done.status.updated_replicas == done.status.ready_replicas == replicas
    assert done.status.replicas == replicas
    assert _progressing(apps, "roll").reason == "NewReplicaSetAvailable"


def test_recreate_removes_every_old_pod_before_the_new_ones(
    apps: client.AppsV1Api, core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    _create(apps, "recreate", 3, strategy={"type": "Recreate"})
    kubectl("rollout", "status", "deployment/recreate", "--timeout=60s")
    with census(core, "recreate") as seen:
        _set_image(apps, "recreate", "registry.k8s.io/kube-apiserver:v1.31.0")
        kubectl("rollout", "status", "deployment/recreate", "--timeout=60s")
    assert not seen.templates_together, "Recreate never runs old and new pods together"
    assert (0, 0) in seen.seen
    assert seen.most_pods == 3


def test_a_paused_deployment_does_not_roll_out_until_resumed(
    apps: client.AppsV1Api, kubectl: Kubectl
) -> None:
    _create(apps, "paused", 2)
    kubectl("rollout", "status", "deployment/paused", "--timeout=60s")
    kubectl("rollout", "pause", "deployment/paused")
    _set_image(apps, "paused", "registry.k8s.io/kube-apiserver:v1.31.0")
    condition = wait_for(
        lambda: (c := _progressing(apps, "paused")).reason == "DeploymentPaused" and c
    )
    assert condition.status == "Unknown"
    (rs,) = apps.list_namespaced_replica_set("default").items  # no new ReplicaSet while paused
    assert rs.spec.template.spec.containers[0].image.endswith(":v1.30.0")
    kubectl("rollout", "resume", "deployment/paused")
    kubectl("rollout", "status", "deployment/paused", "--timeout=60s")
    images = {
        rs.spec.template.spec.containers[0].image: rs.spec.replicas
        for rs in apps.list_namespaced_replica_set("default").items
    }
    assert images == {
        "registry.k8s.io/kube-apiserver:v1.30.0": 0,
        "registry.k8s.io/kube-apiserver:v1.31.0": 2,
    }


def test_a_rollout_that_makes_no_progress_exceeds_its_deadline(
    apps: client.AppsV1Api, core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    _create(apps, "stuck", 2, progressDeadlineSeconds=2)
    kubectl("rollout", "status", "deployment/stuck", "--timeout=60s")
    _set_image(apps, "stuck", NEVER_READY_IMAGE)
    condition = wait_for(
        lambda: (c := _progressing(apps, "stuck")).reason == "ProgressDeadlineExceeded" and c,
        timeout=20,
    )
    assert condition.status == "False"
    result = kubectl("rollout", "status", "deployment/stuck", "--timeout=30s", check=False)
    assert result.returncode != 0
    assert 'deployment "stuck" exceeded its progress deadline' in result.stderr
    # The old pods stay available (maxUnavailable 0); the new one waits for its image.
    status = apps.read_namespaced_deployment_status("stuck", "default").status
    assert status.available_replicas == 2
    assert status.updated_replicas == 1
    new = [
        p
        for p in core.list_namespaced_pod("default").items
        if p.spec.containers[0].image == NEVER_READY_IMAGE
    ]
    assert [p.status.container_statuses[0].state.waiting.reason for p in new] == [
        "ImagePullBackOff"
    ]
    # A fixed image makes progress again.
    _set_image(apps, "stuck", "registry.k8s.io/kube-apiserver:v1.31.0")
    kubectl("rollout", "status", "deployment/stuck", "--timeout=60s")


def test_a_shorter_progress_deadline_set_after_creation_takes_effect(
    apps: client.AppsV1Api,
) -> None:
    _create(apps, "late", 1)  # the default deadline: 600 s
    _set_image(apps, "late", NEVER_READY_IMAGE)
    wait_for(lambda: _progressing(apps, "late").reason == "ReplicaSetUpdated", timeout=10)
    apps.patch_namespaced_deployment("late", "default", {"spec": {"progressDeadlineSeconds": 1}})
    condition = wait_for(
        lambda: (c := _progressing(apps, "late")).reason == "ProgressDeadlineExceeded" and c,
        timeout=15,
    )
    assert condition.status == "False"


def test_kubectl_rollout_restart_rolls_every_pod(
    apps: client.AppsV1Api, core: client.CoreV1Api, kubectl: Kubectl
) -> None:
    _create(apps, "restarted", 2)
    kubectl("rollout", "status", "deployment/restarted", "--timeout=60s")
    before = {p.metadata.name for p in core.list_namespaced_pod("default").items}
    kubectl("rollout", "restart", "deployment/restarted")
    kubectl("rollout", "status", "deployment/restarted", "--timeout=60s")
    after = {p.metadata.name for p in core.list_namespaced_pod("default").items}
    assert len(after) == 2
    assert not before & after

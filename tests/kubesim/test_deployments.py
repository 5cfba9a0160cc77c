"""Deployments and the simulated deployment controller, through AppsV1Api and CoreV1Api."""

from __future__ import annotations

import re
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from certlc_dev.kubesim import KubeSim
from certlc_dev.kubesim.workloads import pod_template_hash
from tests.fixtures.kube import api_client
from tests.kubesim.helpers import deployment, status_of, wait_for

HASH = r"[bcdfghjklmnpqrstvwxz2456789]{10}"


def _rolled_out(apps: client.AppsV1Api, name: str, replicas: int) -> client.V1Deployment:
    def done() -> client.V1Deployment | None:
        d = apps.read_namespaced_deployment(name, "default")
        status = d.status
        if (
            status.observed_generation == d.metadata.generation
            and status.updated_replicas == replicas
            and status.ready_replicas == replicas
            and status.replicas == replicas
        ):
            return d
        return None

    result: client.V1Deployment = wait_for(done)
    return result


def _hash(apps: client.AppsV1Api, template: client.V1PodTemplateSpec) -> str:
    return pod_template_hash(apps.api_client.sanitize_for_serialization(template))


def _pods(core: client.CoreV1Api, selector: str = "") -> list[client.V1Pod]:
    items: list[client.V1Pod] = core.list_namespaced_pod("default", label_selector=selector).items
    return items


def test_a_new_deployment_gets_a_replica_set_and_ready_pods(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    created = apps.create_namespaced_deployment("default", deployment("k8s-126", replicas=2))
    assert created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"  # defaulted
    assert created.spec.revision_history_limit == 10
    assert created.spec.progress_deadline_seconds == 600
    assert created.spec.template.spec.restart_policy == "Always"
    assert created.spec.template.spec.containers[0].termination_message_path == (
        "/dev/termination-log"
    )
    done = _rolled_out(apps, "k8s-126", 2)
    assert done.status.available_replicas == 2
    assert done.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    conditions = {c.type: c for c in done.status.conditions}
    assert conditions["Available"].status == "True"
    assert conditions["Available"].reason == "MinimumReplicasAvailable"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    (rs,) = apps.list_namespaced_replica_set("default").items
    template_hash = _hash(apps, created.spec.template)
    assert rs.metadata.name == f"k8s-126-{template_hash}"
    assert re.fullmatch(f"k8s-126-{HASH}", rs.metadata.name)
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.owner_references[0].uid == created.metadata.uid
    assert rs.spec.selector.match_labels["pod-template-hash"] == template_hash
    pods = _pods(core)
    assert len(pods) == 2
    for pod in pods:
        assert re.fullmatch(
            f"{rs.metadata.name}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod.metadata.name
        )
        assert pod.metadata.labels["pod-template-hash"] == template_hash
        assert pod.metadata.labels["kamaji.clastix.io/name"] == "k8s-126"
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        assert pod.status.phase == "Running"
        assert [c.ready for c in pod.status.container_statuses] == [True] * 4
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
    running = core.list_namespaced_pod(
        "default", field_selector="spec.nodeName=kube-sim-node,status.phase=Running"
    )
    assert len(running.items) == 2


def test_pods_start_pending_and_become_ready_after_the_delay(
    kube_sim_factory: Any, tmp_path: Any
) -> None:
    sim: KubeSim = kube_sim_factory(ready_delay=2.0)
    api = api_client(sim.write_kubeconfig(tmp_path / "kc"))
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
        pod = wait_for(lambda: _pods(core) and _pods(core)[0])
        assert pod.status.phase == "Pending"
        assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
        assert apps.read_namespaced_deployment("cp", "default").status.ready_replicas is None
        _rolled_out(apps, "cp", 1)
    finally:
        api.close()


def test_a_template_change_rolls_out_a_new_replica_set(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=2))
    first = _rolled_out(apps, "cp", 2)
    old_pods = {p.metadata.name for p in _pods(core)}
    patched = apps.patch_namespaced_deployment(
        "cp",
        "default",
        {
            "spec": {
                "template": {
                    "metadata": {
                        "labels": {"component.kamaji.clastix.io/api-server-certificate": "abc"}
                    }
                }
            }
        },
    )
    assert patched.metadata.generation == 2
    done = _rolled_out(apps, "cp", 2)
    assert done.status.observed_generation == 2
    assert done.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    sets = {rs.metadata.name: rs for rs in apps.list_namespaced_replica_set("default").items}
    assert len(sets) == 2
    new_name = f"cp-{_hash(apps, done.spec.template)}"
    assert sets[new_name].spec.replicas == 2
    (old_name,) = set(sets) - {new_name}
    assert sets[old_name].spec.replicas == 0
    wait_for(lambda: old_pods.isdisjoint(p.metadata.name for p in _pods(core)))
    assert all(p.metadata.name.startswith(new_name) for p in _pods(core))
    assert first.metadata.uid == done.metadata.uid


def test_an_unchanged_template_creates_no_replica_set(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
    _rolled_out(apps, "cp", 1)
    annotated = apps.patch_namespaced_deployment(
        "cp", "default", {"metadata": {"annotations": {"note": "x"}}}
    )
    assert annotated.metadata.generation == 2  # annotations count for Deployments
    scaled = apps.patch_namespaced_deployment("cp", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 3
    _rolled_out(apps, "cp", 3)
    (rs,) = apps.list_namespaced_replica_set("default").items
    assert rs.spec.replicas == 3


def test_a_deleted_pod_is_replaced(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=2))
    _rolled_out(apps, "cp", 2)
    victim = _pods(core)[0].metadata.name
    deleted = core.delete_namespaced_pod(victim, "default")
    assert deleted.metadata.name == victim  # pods return the deleted object
    wait_for(lambda: len(_pods(core)) == 2 and victim not in {p.metadata.name for p in _pods(core)})
    _rolled_out(apps, "cp", 2)


def test_status_writes_do_not_bump_generation(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
    done = _rolled_out(apps, "cp", 1)
    assert done.metadata.generation == 1
    patched = apps.patch_namespaced_deployment_status(
        "cp", "default", {"status": {"conditions": []}, "spec": {"replicas": 9}}
    )
    assert patched.spec.replicas == 1
    assert patched.metadata.generation == 1


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["spec"].pop("selector"), "spec.selector: Required value"),
        (
            lambda d: d["spec"]["template"]["metadata"].update(labels={"other": "x"}),
            "`selector` does not match template `labels`",
        ),
        (
            lambda d: d["spec"]["template"]["spec"].update(containers=[]),
            "spec.template.spec.containers: Required value",
        ),
    ],
)
def test_invalid_deployments_are_rejected(
    apps: client.AppsV1Api, mutate: Any, message: str
) -> None:
    body = deployment("bad")
    mutate(body)
    # AppsV1Api validates bodies client-side; the generic client sends them as they are
    generic = client.CustomObjectsApi(apps.api_client)
    with pytest.raises(ApiException) as caught:
        generic.create_namespaced_custom_object("apps", "v1", "default", "deployments", body)
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["message"].startswith('Deployment.apps "bad" is invalid: ')
    assert message in status["message"]
    assert status["details"]["group"] == "apps"


def test_the_selector_is_immutable(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            "cp",
            "default",
            {
                "spec": {
                    "selector": {"matchLabels": {"x": "y"}},
                    "template": {"metadata": {"labels": {"x": "y"}}},
                }
            },
        )
    assert caught.value.status == 422
    assert "field is immutable" in status_of(caught.value)["message"]


def test_pods_are_read_only_for_clients(core: client.CoreV1Api) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod("default", pod)
    assert caught.value.status == 405
    assert status_of(caught.value)["reason"] == "MethodNotAllowed"


def test_garbage_collector_deletes_dependents_when_enabled(
    kube_sim_factory: Any, tmp_path: Any
) -> None:
    sim: KubeSim = kube_sim_factory(gc=True)
    api = api_client(sim.write_kubeconfig(tmp_path / "kc"))
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        apps.create_namespaced_deployment("default", deployment("cp", replicas=2))
        _rolled_out(apps, "cp", 2)
        apps.delete_namespaced_deployment("cp", "default")
        wait_for(lambda: not apps.list_namespaced_replica_set("default").items and not _pods(core))
    finally:
        api.close()


def test_without_the_garbage_collector_dependents_stay(
    apps: client.AppsV1Api, core: client.CoreV1Api
) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
    _rolled_out(apps, "cp", 1)
    apps.delete_namespaced_deployment("cp", "default")
    assert len(apps.list_namespaced_replica_set("default").items) == 1
    assert len(_pods(core)) == 1


def test_scale_subresource(apps: client.AppsV1Api, kube_sim: KubeSim) -> None:
    apps.create_namespaced_deployment("default", deployment("cp", replicas=1))
    kube_sim.wait_for_rollout("cp")
    scale = apps.read_namespaced_deployment_scale("cp", "default")
    assert scale.spec.replicas == 1
    assert scale.status.replicas == 1
    assert scale.status.selector == "kamaji.clastix.io/name=cp"
    patched = apps.patch_namespaced_deployment_scale("cp", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    done = kube_sim.wait_for_rollout("cp")
    assert done["status"]["readyReplicas"] == 3
    assert done["metadata"]["generation"] == 2
    stale = scale
    stale.spec.replicas = 5
    with pytest.raises(ApiException) as caught:
        apps.replace_namespaced_deployment_scale("cp", "default", stale)
    assert caught.value.status == 409


def test_tenant_control_plane_scale_follows_the_kamaji_paths(kube_api: Any) -> None:
    generic = client.CustomObjectsApi(kube_api)
    generic.create_namespaced_custom_object(
        "kamaji.clastix.io",
        "v1alpha1",
        "default",
        "tenantcontrolplanes",
        {
            "apiVersion": "kamaji.clastix.io/v1alpha1",
            "kind": "TenantControlPlane",
            "metadata": {"name": "t"},
            "spec": {"controlPlane": {"deployment": {"replicas": 2}}},
        },
    )
    scale = generic.get_namespaced_custom_object_scale(
        "kamaji.clastix.io", "v1alpha1", "default", "tenantcontrolplanes", "t"
    )
    assert scale["spec"] == {"replicas": 2}
    generic.patch_namespaced_custom_object_scale(
        "kamaji.clastix.io",
        "v1alpha1",
        "default",
        "tenantcontrolplanes",
        "t",
        {"spec": {"replicas": 3}},
    )
    tcp = generic.get_namespaced_custom_object(
        "kamaji.clastix.io", "v1alpha1", "default", "tenantcontrolplanes", "t"
    )
    assert tcp["spec"]["controlPlane"]["deployment"]["replicas"] == 3
    assert tcp["metadata"]["generation"] == 2

"""The simulated deployment controller (the part of kube-controller-manager we need).

For each Deployment: one ReplicaSet per pod-template hash (`<deployment>-<hash>`), created
when the template is new; the new ReplicaSet is scaled up and the old ones down one step per
sync along the Deployment's strategy (`workloads.plan_rollout`). Pods (`<rs>-<5 chars>`) start
Pending with `ContainerCreating` and become Running/Ready after `ready_delay` seconds.
Deployment and ReplicaSet status follow (observedGeneration, replica counts,
Available/Progressing).

It runs on one thread that blocks on its store subscription, with a timeout equal to the next
due timer (a pod to make ready, a Deployment to re-check at its progress deadline): no
polling. Reconciling is idempotent (an unchanged template creates nothing, an unchanged status
writes nothing), so its own writes coming back are harmless.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from certlc_dev.kubesim import workloads
from certlc_dev.kubesim.api import Api
from certlc_dev.kubesim.errors import ApiError, NotFound
from certlc_dev.kubesim.events import Change, Stored
from certlc_dev.kubesim.store import thaw

log = logging.getLogger("kubesim.deployments")

K = TypeVar("K", bound=Hashable)
TimerKey = tuple[str, str, str]  # (kind, namespace, name): "pod" to make ready, "deployment"


class Timers(Generic[K]):
    """Keys due at monotonic times, earliest first. Scheduling a pending key again keeps the
    earlier of its two times, so a change that needs an earlier look (a shorter progress
    deadline) is never held back by a later one already pending."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()

    def schedule(self, key: K, due: float) -> bool:
        """Whether `due` is now the key's time (False: an earlier one was pending)."""
        pending = self._due.get(key)
        if pending is not None and pending <= due:
            return False
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        return True

    def pending(self, key: K) -> bool:
        return key in self._due

    def next_due(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded by an earlier time that already fired
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[K]:
        """The keys due at `now`, earliest first; they are no longer pending."""
        due: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            when, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == when:
                del self._due[key]
                due.append(key)
        return due


class DeploymentController:
    """Reconciles Deployments into ReplicaSets and Pods."""

    def __init__(self, api: Api, *, ready_delay: float = 0.2) -> None:
        self.api = api
        self.store = api.store
        self.ready_delay = ready_delay
        registry = api.registry
        self.deployments = registry.resolve("deployments")
        self.replicasets = registry.resolve("replicasets")
        self.pods = registry.resolve("pods")
        self._sub = self.store.subscribe_all([self.deployments, self.replicasets, self.pods])
        self._timers: Timers[TimerKey] = Timers()
        self._ips = itertools.count(2)
        self._thread = threading.Thread(target=self._run, name="kubesim-deployments", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._sub.close("stopped")
        self.store.unsubscribe(self._sub)
        if self._thread.is_alive():
            self._thread.join()

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        pending = {(s.namespace, s.name) for s in self.store.objects(self.deployments)[0]}
        while True:
            for key in sorted(pending):
                self._safely(key)
            timeout = None
            due = self._timers.next_due()
            if due is not None:
                timeout = max(0.0, due - time.monotonic())
            batch = self._sub.take(timeout)
            if self._sub.closed is not None:
                return
            pending = set()
            for change in batch:
                found = self._deployment_of(change)
                if found is not None:
                    pending.add(found)
            pending |= self._fire_timers()

    def _safely(self, key: tuple[str, str]) -> None:
        try:
            self.reconcile(*key)
        except ApiError as error:  # a conflict with a client write: the next event retries
            log.debug("reconcile %s/%s: %s", key[0], key[1], error.message)
        except Exception:  # a bug must not stop the controller thread
            log.exception("reconcile %s/%s failed", key[0], key[1])

    def _deployment_of(self, change: Change) -> tuple[str, str] | None:
        obj = change.new
        if change.rt is self.deployments:
            return obj.namespace, obj.name
        if change.rt is self.pods:
            owner = workloads.controller_uid(obj.obj)
            found = self.store.by_uid(owner) if owner else None
            if found is None:
                return None
            obj = found[1]
        owner = workloads.controller_uid(obj.obj)
        found = self.store.by_uid(owner) if owner else None
        if found is None or found[0] is not self.deployments:
            return None
        return found[1].namespace, found[1].name

    def _fire_timers(self) -> set[tuple[str, str]]:
        keys: set[tuple[str, str]] = set()
        for kind, namespace, name in self._timers.pop_due(time.monotonic()):
            if kind == "deployment":
                keys.add((namespace, name))
                continue
            pod = self.store.get(self.pods, namespace, name)
            if pod is None or workloads.pod_ready(pod.obj):
                continue
            body = thaw(pod)
            if workloads.never_ready(body):
                body["status"] = workloads.image_pull_backoff(body)
            else:
                body["status"] = workloads.ready_status(
                    body, self.api.now(), f"10.244.0.{next(self._ips) % 250 + 2}"
                )
            try:
                self.api.update(self.pods, namespace, name, body, subresource="status")
            except NotFound:
                continue
            # the MODIFIED event brings the owning Deployment back for a status update
        return keys

    def _schedule(self, pod: Stored) -> None:
        key = ("pod", pod.namespace, pod.name)
        if self._timers.pending(key) or workloads.pod_ready(pod.obj):
            return
        if workloads.never_ready(pod.obj) and "ImagePullBackOff" in str(pod.obj.get("status")):
            return
        self._timers.schedule(key, time.monotonic() + self.ready_delay)

    def _schedule_deployment(self, namespace: str, name: str, delay: float) -> None:
        """Re-check the Deployment in `delay` seconds, or earlier if that is already due."""
        self._timers.schedule(("deployment", namespace, name), time.monotonic() + delay)

    # ------------------------------------------------------------------ reconcile

    def _owned(self, kind: Any, namespace: str, owner_uid: str) -> list[Stored]:
        items, _ = self.store.objects(kind, namespace)
        return [
            s
            for s in items
            if workloads.controller_uid(s.obj) == owner_uid
            and not s.metadata.get("deletionTimestamp")
        ]

    def reconcile(self, namespace: str, name: str) -> None:
        """One sync of a Deployment: its ReplicaSets scaled one step along its strategy
        (`workloads.plan_rollout`), their pods converged, its status written."""
        with self.store.lock:
            deployment = self.store.get(self.deployments, namespace, name)
            if deployment is None or deployment.metadata.get("deletionTimestamp"):
                return
            spec = deployment.obj.get("spec") or {}
            owned = self._owned(self.replicasets, namespace, deployment.uid)
            template_hash = workloads.pod_template_hash(spec.get("template") or {})
            current = next(
                (rs for rs in owned if rs.name == f"{deployment.name}-{template_hash}"), None
            )
            created = False
            if current is None and not spec.get("paused"):  # paused: no new ReplicaSet
                current, created = self._new_replica_set(deployment, owned), True
            old = [rs for rs in owned if current is None or rs.uid != current.uid]
            if current is not None and not spec.get("paused"):
                pods_of = {rs.uid: self._owned(self.pods, namespace, rs.uid) for rs in owned}
                pods_of.setdefault(current.uid, [])
                new_target, old_targets = workloads.plan_rollout(
                    spec, self._state(current, pods_of), [self._state(rs, pods_of) for rs in old]
                )
                revision = self._revision(owned)
                for rs, target in zip(old, old_targets, strict=True):
                    if int(rs.obj["spec"].get("replicas", 0)) != target:
                        self._scale(rs, target, None)
                current = self._scale(current, new_target, revision)
            all_pods: list[Stored] = []
            new_pods: list[Stored] = []
            for rs in [*old, *([current] if current is not None else [])]:
                fresh = self.store.get(self.replicasets, namespace, rs.name) or rs
                pods = self._converge_pods(fresh, int(fresh.obj["spec"].get("replicas", 0)))
                all_pods += pods
                if current is not None and rs.uid == current.uid:
                    new_pods = pods
            self._report(namespace, name, current, created, all_pods, len(new_pods))

    @staticmethod
    def _state(rs: Stored, pods_of: dict[str, list[Stored]]) -> workloads.SetState:
        pods = pods_of.get(rs.uid, [])
        return workloads.SetState(
            replicas=int((rs.obj.get("spec") or {}).get("replicas", 0)),
            pods=len(pods),
            ready=sum(1 for p in pods if workloads.pod_ready(p.obj)),
        )

    @staticmethod
    def _revision(owned: list[Stored]) -> int:
        return max(
            (int(rs.metadata.get("annotations", {}).get(workloads.REVISION, 0)) for rs in owned),
            default=0,
        )

    def _new_replica_set(self, deployment: Stored, owned: list[Stored]) -> Stored:
        """The ReplicaSet of a new pod template, created with no replicas (the rollout scales
        it up within the strategy's bounds)."""
        template = (deployment.obj.get("spec") or {}).get("template") or {}
        template_hash = workloads.pod_template_hash(template)
        body = workloads.replica_set(deployment.obj, template_hash, self._revision(owned) + 1)
        body["spec"]["replicas"] = 0
        return self.api.create(self.replicasets, deployment.namespace, body, keep_status=True)

    def _converge_pods(self, rs: Stored, desired: int) -> list[Stored]:
        """Create or delete pods of `rs` until there are `desired` (not-ready ones deleted
        first); schedule readiness."""
        pods = self._owned(self.pods, rs.namespace, rs.uid)
        pods.sort(key=lambda p: workloads.pod_ready(p.obj))
        while len(pods) > desired:
            pod = pods.pop(0)
            self.api.delete(self.pods, pod.namespace, pod.name)
        while len(pods) < desired:
            body = workloads.pending_pod(rs.obj, self.api.now())
            pods.append(self.api.create(self.pods, rs.namespace, body, keep_status=True))
        for pod in pods:
            self._schedule(pod)
        status = workloads.replica_set_status(rs.obj, [p.obj for p in pods])
        self._write_status(self.replicasets, rs, status)
        return pods

    def _report(
        self,
        namespace: str,
        name: str,
        current: Stored | None,
        created: bool,
        pods: list[Stored],
        new_pods: int,
    ) -> None:
        """Copy the revision annotation and write the Deployment status (both via /status);
        while the rollout is unfinished, come back at its progress deadline."""
        latest = self.store.get(self.deployments, namespace, name)
        if latest is None:
            return
        if current is not None:
            revision = current.metadata.get("annotations", {}).get(workloads.REVISION)
            if latest.metadata.get("annotations", {}).get(workloads.REVISION) != revision:
                body = thaw(latest)
                body["metadata"].setdefault("annotations", {})[workloads.REVISION] = revision
                latest = self.api.update(
                    self.deployments, namespace, name, body, subresource="status"
                )
        status = workloads.deployment_status(
            latest.obj,
            None if current is None else current.name,
            created,
            [p.obj for p in pods],
            new_pods,
            self.api.now(),
        )
        self._write_status(self.deployments, latest, status)
        progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
        if progressing["status"] == "True" and progressing["reason"] != "NewReplicaSetAvailable":
            deadline = workloads.progress_deadline(latest.obj.get("spec") or {})
            self._schedule_deployment(namespace, name, deadline + 1.0)

    def _scale(self, rs: Stored, replicas: int, revision: int | None) -> Stored:
        body = thaw(rs)
        body["spec"]["replicas"] = replicas
        annotations = body["metadata"].setdefault("annotations", {})
        if replicas:
            annotations["deployment.kubernetes.io/desired-replicas"] = str(replicas)
            annotations["deployment.kubernetes.io/max-replicas"] = str(replicas + 1)
        if revision is not None and int(annotations.get(workloads.REVISION, 0)) < revision:
            annotations[workloads.REVISION] = str(revision + 1)
        stored = self.api.update(self.replicasets, rs.namespace, rs.name, body)
        if replicas == 0:
            self._write_status(
                self.replicasets, stored, workloads.replica_set_status(stored.obj, [])
            )
        return self.store.get(self.replicasets, rs.namespace, rs.name) or stored

    def _write_status(self, kind: Any, stored: Stored, status: dict[str, Any]) -> Stored:
        if stored.obj.get("status") == status:
            return stored
        body = thaw(stored)
        body["status"] = status
        return self.api.update(kind, stored.namespace, stored.name, body, subresource="status")

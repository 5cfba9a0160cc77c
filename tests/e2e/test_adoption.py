"""Adoption end to end: TCPs whose Secrets Kamaji made are left alone by certlc.

Three TCPs are loaded into the stand-in as Kamaji would have left them (tests/fixtures/kamaji):
an etcd and a PostgreSQL one in Kamaji HEAD's formats, and an etcd one in the seed's older
formats. Each is created paused, its DataStore, Deployment and thirteen Secrets are loaded,
the watcher is seen to publish every Secret's facts, and the pause is lifted: from then on,
for 30 seconds, no Secret is written and nothing rolls out. Then one requested rotation of
admin-kubeconfig proves lifecycle was deciding for the TCP all along, and that the re-issued
Secret has all four of Kamaji's kubeconfigs, each readable by the official loader and each
with the identity openssl expects.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from certlc_dev.devenv import seed
from libs.contracts.names import encode_token
from tests.e2e.harness import Stack, wait_for
from tests.fixtures.kamaji import Flavour, KamajiSet, kamaji_set

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OBSERVATION = 30.0  # seconds without a write or a rollout
PAUSED = "kamaji.clastix.io/paused"
CASES = (
    ("kamaji-etcd", "etcd", Flavour.HEAD),
    ("kamaji-pg", "PostgreSQL", Flavour.HEAD),
    ("kamaji-seed", "etcd", Flavour.SEED),
)
ADMIN = {  # key: (subject, server)
    "admin.conf": ("CN=kubernetes-admin,O=kubeadm:cluster-admins", "https://172.18.255.200:6443"),
    "admin.svc": ("CN=kubernetes-admin,O=kubeadm:cluster-admins", "https://{tcp}.default.svc:6443"),
    "super-admin.conf": ("CN=kubernetes-super-admin,O=system:masters", "https://172.18.255.200:6443"),
    "super-admin.svc": ("CN=kubernetes-super-admin,O=system:masters", "https://{tcp}.default.svc:6443"),
}  # fmt: skip


@dataclass(frozen=True)
class Snapshot:
    """What must not change: every Secret's resourceVersion, the ReplicaSets, the template."""

    secrets: dict[str, str]
    replicasets: list[str]
    generation: int

    @classmethod
    def of(cls, stack: Stack, tcp: str) -> Snapshot:
        deployment = stack.sim.get("deployments", tcp)
        return cls(
            {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets(tcp).items()},
            stack.replicasets(tcp),
            int(deployment["metadata"]["generation"]),
        )


def load(stack: Stack, name: str, driver: str, flavour: Flavour) -> KamajiSet:
    """The TCP, paused, then everything Kamaji would have made for it."""
    shape = kamaji_set(name, now=datetime.now(UTC), driver=driver, flavour=flavour)
    tcp = {**shape.tcp, "metadata": {"name": name, "namespace": "default"}}
    tcp["metadata"]["annotations"] = {PAUSED: ""}
    uid = stack.sim.create(tcp)["metadata"]["uid"]
    made = kamaji_set(
        name,
        now=datetime.now(UTC) - timedelta(days=30),
        driver=driver,
        flavour=flavour,
        uid=uid,
        datastore=name,
    )
    stack.sim.patch("tenantcontrolplanes", name, {"spec": made.tcp["spec"]})
    stack.sim.update_status("tenantcontrolplanes", name, made.tcp["status"])
    for obj in made.datastore_objects:
        stack.sim.create(obj)
    stack.sim.create(seed.deployment_object(name))
    for secret in made.secrets.values():
        stack.sim.create(secret)
    return made


def facts_published(stack: Stack, tcp: str) -> bool:
    prefix = f"certlc.events.secret.default.{encode_token(tcp)}."
    return len({s for s, _, _ in list(stack.tap.messages) if s.startswith(prefix)}) == 13


def commands_and_writes(stack: Stack, tcp: str) -> list[str]:
    token = encode_token(tcp)
    wanted = (f"certlc.rotate.default.{token}", f"certlc.issued.default.{token}")
    return [s for s, _, _ in list(stack.tap.messages) if s in wanted]


def openssl(*args: str) -> str:
    out = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_kamaji_made_secrets_are_adopted_without_a_write_or_a_rollout(
    stack: Stack, tmp_path: Path
) -> None:
    sets = {name: load(stack, name, driver, flavour) for name, driver, flavour in CASES}
    for name in sets:
        wait_for(lambda n=name: facts_published(stack, n), 30, f"the facts of {name}'s Secrets")
        wait_for(lambda n=name: stack.replicasets(n), 30, f"the first ReplicaSet of {name}")
    before = {name: Snapshot.of(stack, name) for name in sets}
    for name in sets:
        stack.sim.patch("tenantcontrolplanes", name, {"metadata": {"annotations": {PAUSED: None}}})

    deadline = time.monotonic() + OBSERVATION
    while time.monotonic() < deadline:
        for name, snapshot in before.items():
            assert Snapshot.of(stack, name) == snapshot, f"{name} was written or rolled out"
            assert commands_and_writes(stack, name) == [], f"certlc acted on {name}"
        time.sleep(0.5)

    # lifecycle was deciding all along: a requested rotation is carried out at once
    name = "kamaji-etcd"
    completed = stack.rollouts_completed(name)
    stack.kubectl(
        "annotate", "secret", f"{name}-admin-kubeconfig", "certs.kamaji.clastix.io/rotate="
    )
    old = before[name].secrets[f"{name}-admin-kubeconfig"]
    wait_for(
        lambda: (
            stack.secrets(name)[f"{name}-admin-kubeconfig"]["metadata"]["resourceVersion"] != old
        ),
        30,
        "admin-kubeconfig re-issued",
    )
    stack.next_rollout(name, completed)
    data = stack.data(stack.secrets(name)[f"{name}-admin-kubeconfig"])
    assert set(data) == set(ADMIN)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(stack.data(stack.secrets(name)[f"{name}-ca"])["ca.crt"])
    for key, (subject, server) in ADMIN.items():
        assert data[key] != sets[name].data("admin-kubeconfig")[key]
        path = tmp_path / key
        path.write_bytes(data[key])
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(path), client_configuration=cfg)
        assert cfg.host == server.format(tcp=name)
        assert openssl("verify", "-CAfile", str(ca_file), cfg.cert_file).endswith(": OK")
        got = openssl("x509", "-in", cfg.cert_file, "-noout", "-subject", "-nameopt", "RFC2253")
        assert got == f"subject={subject}"
    untouched: dict[str, Any] = {
        n: v for n, v in Snapshot.of(stack, name).secrets.items() if "admin-kubeconfig" not in n
    }
    assert untouched == {
        n: v for n, v in before[name].secrets.items() if "admin-kubeconfig" not in n
    }

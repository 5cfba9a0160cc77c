"""A change of a TCP's spec re-issues exactly what depends on it, with one rollout: the API
server certificate for a new SAN (certSANs, address, advertiseAddress, ingress or gateway
hostname), and every kubeconfig whose server follows the changed address or port. Checked with
openssl (SANs) and the official kubeconfig loader (servers)."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from tests.e2e.harness import Stack, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

_names = itertools.count(1)
APISERVER = "api-server-certificate"
ADMIN = "admin-kubeconfig"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-spec")), kube_serving):
        seed_datastores(s.sim, postgres=False)
        yield s


@pytest.fixture
def tenant(stack: Stack) -> str:
    name = f"spec-{next(_names)}"
    seed_tenant(stack.sim, name)
    stack.first_issued(name, timeout=60)
    stack.quiet(name)
    return name


def sans(stack: Stack, tcp: str) -> str:
    cert = stack.data(stack.secrets(tcp)[f"{tcp}-{APISERVER}"])["apiserver.crt"]
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-ext", "subjectAltName"],
        input=cert,
        capture_output=True,
        check=True,
    )
    return out.stdout.decode()


def server(stack: Stack, tcp: str, suffix: str, key: str) -> str:
    """The server of kubeconfig `key` of Secret `<tcp>-<suffix>`, as the official loader reads
    it."""
    path = stack.workdir / f"{tcp}-{key}"
    path.write_bytes(stack.data(stack.secrets(tcp)[f"{tcp}-{suffix}"])[key])
    loaded = client.Configuration()
    config.load_kube_config(
        config_file=str(path), client_configuration=loaded, persist_config=False
    )
    return str(loaded.host)


def versions(stack: Stack, tcp: str) -> dict[str, str]:
    return {
        name.removeprefix(f"{tcp}-"): s["metadata"]["resourceVersion"]
        for name, s in stack.secrets(tcp).items()
    }


# (spec patch, Secrets re-issued, rollouts, what the result must show)
CASES: dict[str, tuple[dict[str, Any], set[str], int]] = {
    "certSANs": (
        {"networkProfile": {"certSANs": ["api.example.com"]}},
        {APISERVER},
        1,
    ),
    "address": (
        {"networkProfile": {"address": "172.18.255.201"}},
        {APISERVER, ADMIN},
        1,
    ),
    "advertiseAddress": (
        {"networkProfile": {"advertiseAddress": "10.1.2.3"}},
        {APISERVER, ADMIN},
        1,
    ),
    "port": (
        {"networkProfile": {"port": 6444}},
        {ADMIN, "controller-manager-kubeconfig", "scheduler-kubeconfig",
         "konnectivity-kubeconfig"},
        1,
    ),
    "ingress": (
        {"controlPlane": {"ingress": {"hostname": "k8s.example.com"}}},
        {APISERVER, ADMIN},
        1,
    ),
    "gateway": (
        {"controlPlane": {"gateway": {"hostname": "gw.example.com:443"}}},
        {APISERVER, ADMIN},
        1,
    ),
}  # fmt: skip
SHOWN = {
    "certSANs": ("DNS:api.example.com", None),
    "address": ("IP Address:172.18.255.201", "https://172.18.255.201:6443"),
    "advertiseAddress": ("IP Address:10.1.2.3", "https://10.1.2.3:6443"),
    "port": (None, "https://172.18.255.200:6444"),
    "ingress": ("DNS:k8s.example.com", "https://k8s.example.com:6443"),
    "gateway": ("DNS:gw.example.com", "https://gw.example.com:443"),
}


@pytest.mark.parametrize("field", sorted(CASES))
def test_a_spec_change_re_issues_what_depends_on_it_with_one_rollout(
    stack: Stack, tenant: str, field: str
) -> None:
    patch, reissued, rollouts = CASES[field]
    san, admin_server = SHOWN[field]
    before = versions(stack, tenant)
    completed = stack.rollouts_completed(tenant)
    stack.sim.patch("tenantcontrolplanes", tenant, {"spec": patch})

    def changed() -> set[str]:
        now = versions(stack, tenant)
        return {k for k, v in now.items() if before.get(k) != v}

    wait_for(lambda: reissued <= changed(), 30, f"the Secrets that follow {field}")
    stack.next_rollout(tenant, completed, timeout=30)
    wait_for(lambda: stack.rotations_done(tenant), 30, "the rotation completed")
    stack.quiet(tenant)
    assert changed() == reissued
    assert stack.rollouts_completed(tenant) - completed == rollouts
    if san is not None:
        assert san in sans(stack, tenant)
    if admin_server is not None:
        for key in ("admin.conf", "super-admin.conf"):
            assert server(stack, tenant, ADMIN, key) == admin_server
        port = 6444 if field == "port" else 6443
        assert server(stack, tenant, ADMIN, "admin.svc") == f"https://{tenant}.default.svc:{port}"

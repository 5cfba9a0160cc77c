"""`certlc status` against the stack: healthy TCPs, then a paused TCP with a missing and an
invalid Secret, unknown TCPs and an unreachable cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from libs.pki import SecretKind, managed_kinds, secret_name
from libs.pki.tcp import TcpSpec
from tests.cli.conftest import Result, certlc_run
from tests.e2e.harness import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Cli = Callable[..., Result]
HEADER = ["NAMESPACE/TCP", "SECRET", "EXPIRES", "RESIDUAL TIME", "SIGNER", "STATUS"]


def rows(out: str, tcp: str) -> dict[str, str]:
    """SECRET -> the rest of its table line, for the rows of `tcp`."""
    found = {}
    for line in out.splitlines():
        if line.startswith(f"default/{tcp} "):
            cells = line.split()
            found[cells[1]] = line
    return found


def expected_names(stack: Stack, tcp: str) -> set[str]:
    spec = TcpSpec.from_resource(stack.sim.get("tenantcontrolplanes", tcp))
    return {secret_name(tcp, k) for k in managed_kinds(spec)}


def test_a_healthy_tcp_is_all_valid(stack: Stack, tenant: str, cli: Cli) -> None:
    result = cli("status", tenant, "--kubeconfig", str(stack.kubeconfig))
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].split("   ")[0] == "NAMESPACE/TCP"
    for column in HEADER:
        assert column in lines[0]
    table = rows(result.out, tenant)
    names = expected_names(stack, tenant)
    assert names <= set(table), table
    # the CA rows are there (kubeadm's second table), the DataStore CA by its Secret
    assert f"{tenant}-ca" in table
    assert f"{tenant}-front-proxy-ca-certificate" in table
    assert "kamaji-system/default-etcd-certs" in table
    for name, line in table.items():
        assert line.rstrip().endswith("valid"), line
        if name not in (f"{tenant}-datastore-config", f"{tenant}-sa-certificate"):
            assert " UTC " in line  # EXPIRES
    assert "364d" in table[f"{tenant}-api-server-certificate"]  # RESIDUAL TIME
    assert " ca " in table[f"{tenant}-api-server-certificate"]  # SIGNER
    assert " front-proxy-ca " in table[f"{tenant}-front-proxy-client-certificate"]
    assert "9y" in table[f"{tenant}-ca"]
    assert result.err == ""


def test_json_and_yaml(stack: Stack, tenant: str, cli: Cli) -> None:
    for fmt, load in (("json", json.loads), ("yaml", yaml.safe_load)):
        result = cli(
            "status", f"default/{tenant}", "-o", fmt, "--kubeconfig", str(stack.kubeconfig)
        )
        assert result.code == 0, result
        data = load(result.out)
        assert data["ok"] is True
        assert data["deadlineSeconds"] == 86400
        [tcp] = data["tenantControlPlanes"]
        assert (tcp["namespace"], tcp["name"], tcp["ok"]) == ("default", tenant, True)
        certs = {c["secret"]: c for c in tcp["certificates"]}
        assert expected_names(stack, tenant) <= set(certs)
        assert {c["status"] for c in certs.values()} == {"valid"}
        apiserver = certs[f"{tenant}-api-server-certificate"]
        assert apiserver["kind"] == "api-server-certificate"
        assert apiserver["ca"] is False
        assert apiserver["signer"] == "ca"
        assert apiserver["expires"].endswith("Z")
        assert apiserver["residualSeconds"] > 360 * 86400
        assert certs[f"{tenant}-ca"]["ca"] is True
        assert certs[f"{tenant}-sa-certificate"]["expires"] is None


def test_namespaces_and_all(
    stack: Stack, tenant: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(stack.kubeconfig))  # the kubeconfig from the environment
    everything = cli("status", "-A")
    assert rows(everything.out, tenant)
    in_default = cli("status", "-n", "default")
    assert rows(in_default.out, tenant)
    assert rows(cli("status").out, tenant)  # the default namespace is `default`
    empty = cli("status", "-n", "kube-public")
    assert empty.code == 0
    assert "No TenantControlPlanes found" in empty.out
    one = cli("status", "-A", tenant, "-o", "json")
    assert [t["name"] for t in json.loads(one.out)["tenantControlPlanes"]] == [tenant]


def planned(cli: Cli, stack: Stack, tenant: str) -> list[dict[str, object]]:
    """The renewals lifecycle has scheduled for the TCP within 400 days (its certificates last a
    year): none once it knows the TCP is paused."""
    out = cli(
        "plan", f"default/{tenant}", "--until", "400d", "-o", "json", "--nats-url", stack.nats.url
    )
    assert out.code == 0, out
    rollouts: list[dict[str, object]] = json.loads(out.out)["rollouts"]
    return rollouts


def test_missing_and_invalid_secrets_exit_1(stack: Stack, tenant: str, cli: Cli) -> None:
    kubeconfig = str(stack.kubeconfig)
    # Pause the TCP so that certlc leaves what we break alone; its schedule is empty once
    # lifecycle knows (asking without effect: a rotate request would rotate until then).
    stack.sim.patch(
        "tenantcontrolplanes",
        tenant,
        {"metadata": {"annotations": {"kamaji.clastix.io/paused": ""}}},
    )
    wait_for(lambda: not planned(cli, stack, tenant), 15, "lifecycle to see the pause")
    missing = secret_name(tenant, SecretKind.APISERVER_KUBELET_CLIENT)
    broken = secret_name(tenant, SecretKind.APISERVER)
    stack.sim.delete("secrets", missing)
    other = stack.sim.get("secrets", secret_name(tenant, SecretKind.FRONT_PROXY_CLIENT))
    stack.sim.patch(
        "secrets", broken, {"data": {"apiserver.crt": other["data"]["front-proxy-client.crt"]}}
    )
    result = cli("status", tenant, "--kubeconfig", kubeconfig)
    assert result.code == 1, result
    table = rows(result.out, tenant)
    # the TCP is paused: every row says so, with what it is beside it
    assert table[missing].rstrip().endswith("paused (missing)")
    assert "paused (invalid: " in table[broken]
    assert "key-mismatch" in table[broken]
    assert "wrong-signer" in table[broken]
    assert table[f"{tenant}-ca"].rstrip().endswith(" paused")
    assert f"- default/{tenant}: paused (kamaji.clastix.io/paused)" in result.out
    assert (
        f"- default/{tenant}: api-server-kubelet-client-certificate: Secret {missing} not found"
        in (result.out)
    )
    data = json.loads(cli("status", tenant, "-o", "json", "--kubeconfig", kubeconfig).out)
    assert data["ok"] is False
    certs = {c["secret"]: c for c in data["tenantControlPlanes"][0]["certificates"]}
    assert certs[missing]["status"] == "missing"
    assert certs[missing]["paused"] is True
    assert certs[broken]["status"] == "invalid"
    assert data["tenantControlPlanes"][0]["paused"] is True
    assert "key-mismatch" in certs[broken]["reasons"]
    # expiring: with a deadline beyond a year, every leaf certificate is inside it
    far = json.loads(
        cli("status", tenant, "-o", "json", "--deadline", "400d", "--kubeconfig", kubeconfig).out
    )
    statuses = {c["secret"]: c["status"] for c in far["tenantControlPlanes"][0]["certificates"]}
    assert statuses[f"{tenant}-admin-kubeconfig"] == "expiring"
    assert statuses[f"{tenant}-ca"] == "valid"


def test_unknown_tcp_is_exit_3(stack: Stack, cli: Cli) -> None:
    result = cli("status", "no-such-tcp", "--kubeconfig", str(stack.kubeconfig))
    assert result.code == 3
    assert result.err == "error: TenantControlPlane default/no-such-tcp not found\n"
    assert cli("status", "-A", "no-such-tcp", "--kubeconfig", str(stack.kubeconfig)).code == 3


def test_unknown_namespace_is_exit_3_and_an_empty_one_is_not(stack: Stack, cli: Cli) -> None:
    kubeconfig = str(stack.kubeconfig)
    typo = cli("status", "-n", "defualt", "--kubeconfig", kubeconfig)
    assert typo.code == 3, typo
    assert typo.err == "error: namespace defualt not found\n"
    assert typo.out == ""
    assert cli("status", "defualt/x", "--kubeconfig", kubeconfig).code == 3
    empty = cli("status", "-n", "kube-public", "--kubeconfig", kubeconfig)
    assert (empty.code, empty.out) == (0, "No TenantControlPlanes found.\n")


def test_a_paused_secret_shows_paused(stack: Stack, tenant: str, cli: Cli) -> None:
    name = secret_name(tenant, SecretKind.ADMIN_KUBECONFIG)
    stack.sim.patch(
        "secrets", name, {"metadata": {"annotations": {"kamaji.clastix.io/paused": ""}}}
    )
    result = cli("status", tenant, "--kubeconfig", str(stack.kubeconfig))
    assert result.code == 0, result
    table = rows(result.out, tenant)
    assert table[name].rstrip().endswith(" paused")
    assert table[f"{tenant}-ca"].rstrip().endswith(" valid")
    assert f"- default/{tenant}: {name}: paused (kamaji.clastix.io/paused on the Secret)" in (
        result.out
    )


def test_the_kubectl_plugin(stack: Stack, tenant: str, tmp_path: Path) -> None:
    """`kubectl certlc status`: kubectl finds kubectl-certlc on PATH and runs it."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "kubectl-certlc").is_file(), "pip install -e . installs kubectl-certlc"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(stack.kubeconfig),
    }
    listed = subprocess.run(
        ["kubectl", "plugin", "list"], capture_output=True, text=True, env=env, check=False
    )
    assert str(bin_dir / "kubectl-certlc") in listed.stdout, listed
    done = subprocess.run(
        ["kubectl", "certlc", "status", tenant],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"default/{tenant} " in done.stdout
    usage = subprocess.run(
        ["kubectl", "certlc", "--help"], capture_output=True, text=True, env=env, check=False
    )
    assert usage.stdout.startswith("usage: kubectl certlc ")


def test_bad_usage_is_exit_2(stack: Stack, cli: Cli) -> None:
    assert cli("status", "Not_A_Name", "--kubeconfig", str(stack.kubeconfig)).code == 2
    assert cli("status", "--deadline", "soon").code == 2
    assert cli("status", "-n", "a", "-A").code == 2


def test_unreachable_cluster_is_exit_6(tmp_path: Path, closed_port: int) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": f"https://127.0.0.1:{closed_port}",
                            "insecure-skip-tls-verify": True,
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    result = certlc_run("status", "--kubeconfig", str(kubeconfig))
    assert result.code == 6
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: cannot reach the Kubernetes API")
    assert "Traceback" not in result.err
    missing = certlc_run("status", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.code == 6
    assert "not found" in missing.err

"""`certlc rotate` against the stack: every target kind, with and without --wait, --dry-run,
the error codes, a wait that times out, and an unreachable NATS."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from libs.pki import SecretKind, secret_name
from tests.cli.conftest import Result, certlc_run
from tests.e2e.harness import Stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

Cli = Callable[..., Result]
X509 = (
    "api-server-certificate",
    "api-server-kubelet-client-certificate",
    "front-proxy-client-certificate",
    "konnectivity-certificate",
)
KUBECONFIGS = (
    "admin-kubeconfig",
    "controller-manager-kubeconfig",
    "scheduler-kubeconfig",
    "konnectivity-kubeconfig",
)


def versions(stack: Stack, tcp: str) -> dict[str, str]:
    return {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets(tcp).items()}


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n, v in after.items() if before.get(n) != v}


def requested_events(stack: Stack, tcp: str) -> int:
    return len(stack.tap.audit(tcp, "rotation-requested"))


def test_rotate_x509_without_wait(stack: Stack, tenant: str, cli: Cli) -> None:
    before = versions(stack, tenant)
    result = cli("rotate", f"default/{tenant}", "x509", "--nats-url", stack.nats.url)
    assert result.code == 0, result
    first, second = result.out.splitlines()
    assert first.startswith("rotation ")
    assert first.endswith(f"accepted for default/{tenant}")
    assert second == "re-issuing 4 Secret(s): " + ", ".join(f"{tenant}-{s}" for s in X509)
    wanted = {f"{tenant}-{s}" for s in X509}
    wait_for(lambda: changed(before, versions(stack, tenant)) >= wanted, 20, "x509 re-issued")
    assert changed(before, versions(stack, tenant)) == wanted


def test_rotate_kubeconfig_waits_for_the_rollout(stack: Stack, tenant: str, cli: Cli) -> None:
    before, replicasets = versions(stack, tenant), stack.replicasets(tenant)
    result = cli(
        "rotate",
        f"default/{tenant}",
        "kubeconfig",
        "--wait",
        "--reason",
        "quarterly",
        "--requester",
        "ops-bot",
        "--nats-url",
        stack.nats.url,
    )
    assert result.code == 0, result
    out = result.out
    for name in KUBECONFIGS:
        assert f"secret written       {tenant}-{name} (replaced)" in out
    assert "rollout started      deployment " + tenant in out
    assert "rollout completed    deployment " + tenant in out
    assert out.splitlines()[-1] == "rollout completed"
    assert changed(before, versions(stack, tenant)) == {f"{tenant}-{n}" for n in KUBECONFIGS}
    assert stack.deployment_done(tenant)
    assert len(stack.replicasets(tenant)) == len(replicasets) + 1, (  # rolled out exactly once
        out,
        [d.decode()[:300] for d in stack.tap.audit(tenant)],
    )
    requested = stack.tap.audit(tenant, "rotation-requested")[-1].decode()
    assert '"requester":"ops-bot"' in requested
    assert '"detail":"quarterly"' in requested


def test_rotate_ca_waits_for_the_ca_rotation(stack: Stack, tenant: str, cli: Cli) -> None:
    before = versions(stack, tenant)
    result = cli("rotate", f"default/{tenant}", "ca", "--wait", "--nats-url", stack.nats.url)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].endswith("(CA rotation)")
    assert any("CA rotation started" in line for line in lines)
    assert any("rollout completed" in line for line in lines)
    assert lines[-2].endswith("CA rotation completed")
    assert lines[-1] == "CA rotation completed"
    assert f"{tenant}-ca" in changed(before, versions(stack, tenant))
    assert stack.phase(tenant) == "Ready"
    assert cli("status", tenant, "--kubeconfig", str(stack.kubeconfig)).code == 0


def test_rotate_one_secret_by_name_and_by_suffix(stack: Stack, tenant: str, cli: Cli) -> None:
    url = stack.nats.url
    before = versions(stack, tenant)
    admin = secret_name(tenant, SecretKind.ADMIN_KUBECONFIG)
    result = cli("rotate", f"default/{tenant}", admin, "--wait", "--nats-url", url)
    assert result.code == 0, result
    assert f"re-issuing 1 Secret(s): {admin}" in result.out
    assert result.out.splitlines()[-1] == "every Secret written; none is mounted: no rollout"
    assert changed(before, versions(stack, tenant)) == {admin}
    before = versions(stack, tenant)
    result = cli("rotate", tenant, "api-server-certificate", "--wait", "--nats-url", url)
    assert result.code == 0, result
    assert result.out.splitlines()[-1] == "rollout completed"
    assert changed(before, versions(stack, tenant)) == {f"{tenant}-api-server-certificate"}
    assert "warning" not in result.err
    # the service-account key: done as asked, with a warning about the tokens it invalidates
    before = versions(stack, tenant)
    result = cli("rotate", tenant, "sa-certificate", "--wait", "--nats-url", url)
    assert result.code == 0, result
    assert result.err.startswith(f"warning: {tenant}-sa-certificate holds the service-account")
    assert "every ServiceAccount token issued before is refused" in result.err
    assert changed(before, versions(stack, tenant)) == {f"{tenant}-sa-certificate"}


def test_dry_run_changes_nothing(stack: Stack, tenant: str, cli: Cli) -> None:
    kubeconfig = str(stack.kubeconfig)
    before, events = versions(stack, tenant), requested_events(stack, tenant)
    replicasets = stack.replicasets(tenant)
    result = cli("rotate", f"default/{tenant}", "x509", "--dry-run", "--kubeconfig", kubeconfig)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0] == f"dry run: rotate default/{tenant} x509 (nothing is published)"
    assert lines[1] == "would re-issue 4 Secret(s):"
    for name in X509:
        assert any(f"{tenant}-{name}" in line and "mounted: rolls out" in line for line in lines)
    assert (
        lines[-1] == f"would roll out Deployment default/{tenant} once (4 mounted Secret(s) change)"
    )
    admin = cli("rotate", tenant, "admin-kubeconfig", "--dry-run", "--kubeconfig", kubeconfig)
    assert admin.code == 0
    assert "not mounted" in admin.out
    assert admin.out.splitlines()[-1].startswith("would not roll out")
    ca = cli("rotate", tenant, "ca", "--dry-run", "--kubeconfig", kubeconfig)
    assert "would re-issue 8 Secret(s):" in ca.out
    assert "ServiceAccount token" not in ca.out  # the CA signs no token
    sa = cli("rotate", tenant, "sa-certificate", "--dry-run", "--kubeconfig", kubeconfig)
    assert sa.code == 0, sa
    assert f"warning: {tenant}-sa-certificate holds the service-account signing key" in sa.out
    assert "pods' projected tokens, until the kubelet requests new ones" in sa.out
    assert "legacy token Secrets (type kubernetes.io/service-account-token)" in sa.out
    # a missing Secret would be created; nothing published, so certlc leaves it... re-created
    unknown = cli("rotate", "default/nope", "x509", "--dry-run", "--kubeconfig", kubeconfig)
    assert unknown.code == 3
    assert unknown.err == "error: TenantControlPlane default/nope not found\n"
    stack.quiet(tenant, 1.5)
    assert versions(stack, tenant) == before
    assert requested_events(stack, tenant) == events
    assert stack.replicasets(tenant) == replicasets


def test_rotate_errors(stack: Stack, tenant: str, cli: Cli) -> None:
    url = stack.nats.url
    unknown = cli("rotate", "default/no-such-tcp", "x509", "--nats-url", url)
    assert unknown.code == 3
    assert unknown.err == "error: 404 unknown TenantControlPlane default/no-such-tcp\n"
    bad = cli("rotate", f"default/{tenant}", "everything", "--nats-url", url)
    assert bad.code == 2
    assert bad.err.startswith("error: unknown target 'everything': use x509, kubeconfig, ca")
    assert bad.err.count("\n") == 1
    assert cli("rotate", f"default/{tenant}", "other-admin-kubeconfig", "--nats-url", url).code == 2
    assert cli("rotate", "Bad_Name", "x509", "--nats-url", url).code == 2
    assert cli("rotate", f"default/{tenant}", "x509", "--timeout", "soon").code == 2
    for never in ("0", "0s", "-5", "nan"):
        refused = cli("rotate", f"default/{tenant}", "x509", "--wait", "--timeout", never)
        assert refused.code == 2, never
        assert "invalid timeout" in refused.err, refused.err
    stack.sim.patch(
        "tenantcontrolplanes",
        tenant,
        {"metadata": {"annotations": {"kamaji.clastix.io/paused": ""}}},
    )
    paused = wait_for(
        lambda: (
            r if (r := cli("rotate", tenant, "kubeconfig", "--nats-url", url)).code == 4 else None
        ),
        15,
        "423 for the paused TCP",
    )
    assert paused.err == f"error: 423 TenantControlPlane default/{tenant} is paused\n"
    dry = cli("rotate", tenant, "kubeconfig", "--dry-run", "--kubeconfig", str(stack.kubeconfig))
    assert dry.code == 4
    assert "would be refused: 423" in dry.out


def test_a_bare_timeout_is_seconds_and_the_reason_is_shown(
    stack: Stack, tenant: str, cli: Cli
) -> None:
    result = cli(
        "rotate",
        tenant,
        "admin-kubeconfig",
        "--wait",
        "--timeout",
        "60",
        "--reason",
        "ticket OPS-42",
        "--nats-url",
        stack.nats.url,
    )
    assert result.code == 0, result
    assert "\nreason: ticket OPS-42\n" in result.out
    dry = cli(
        "rotate",
        tenant,
        "x509",
        "--dry-run",
        "--reason",
        "ticket OPS-43",
        "--kubeconfig",
        str(stack.kubeconfig),
    )
    assert "reason: ticket OPS-43" in dry.out
    stack.quiet(tenant)


def test_a_wait_that_times_out_is_exit_7(stack: Stack, tenant: str, cli: Cli) -> None:
    # rollout waits CERTLC_ROLLOUT_SETTLE (1s) before rolling out: 1s is never enough
    result = cli(
        "rotate", tenant, "x509", "--wait", "--timeout", "1s", "--nats-url", stack.nats.url
    )
    assert result.code == 7, result
    assert result.err.startswith("error: rotation ")
    assert "not finished after 1s" in result.err
    stack.quiet(tenant)


def test_nats_url_from_the_environment(
    stack: Stack, tenant: str, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NATS_URL", raising=False)
    monkeypatch.setenv("CERTLC_NATS_URL", stack.nats.url)
    assert cli("rotate", tenant, "admin-kubeconfig").code == 0
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:1")  # NATS_URL wins over CERTLC_NATS_URL
    assert cli("rotate", tenant, "admin-kubeconfig").code == 5


def test_unreachable_nats_is_exit_5(closed_port: int) -> None:
    for args in (
        ("rotate", "default/k8s-126", "x509", "--nats-url", f"nats://127.0.0.1:{closed_port}"),
        (
            "rotate",
            "default/k8s-126",
            "ca",
            "--wait",
            "--nats-url",
            f"nats://127.0.0.1:{closed_port}",
        ),
    ):
        result = certlc_run(*args)
        assert result.code == 5, result
        assert result.out == ""
        assert result.err == (
            f"error: cannot reach NATS at nats://127.0.0.1:{closed_port} (no answer within 2s)\n"
        )
    env = {"NATS_URL": f"nats://ops:s3cret@127.0.0.1:{closed_port}"}
    from_env = certlc_run("rotate", "k8s-126", "x509", env=env)
    assert from_env.code == 5
    assert from_env.err == (
        f"error: cannot reach NATS at nats://127.0.0.1:{closed_port} (no answer within 2s)\n"
    )


def test_no_lifecycle_answering_is_exit_5(nats_server_module: object, cli: Cli) -> None:
    url = nats_server_module.url  # type: ignore[attr-defined]
    result = cli("rotate", "k8s-126", "x509", "--nats-url", url)
    assert result.code == 5
    assert (
        result.err
        == "error: no certlc lifecycle answers on certlc.api.v1.rotate (is it running?)\n"
    )


def test_a_retried_request_is_followed_to_its_end(stack: Stack, tenant: str, cli: Cli) -> None:
    args = ("rotate", tenant, "kubeconfig", "--request-id", "retry-1", "--nats-url", stack.nats.url)
    first = cli(*args, "--wait")
    assert first.code == 0, first
    before = versions(stack, tenant)
    again = cli(*args, "--wait", "--timeout", "30s")  # the same rotation: nothing new happens
    assert again.code == 0, again
    assert again.out.splitlines()[0] == first.out.splitlines()[0]
    assert again.out.splitlines()[-1] == "rollout completed"
    assert versions(stack, tenant) == before

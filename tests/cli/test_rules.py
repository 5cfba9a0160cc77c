"""The CLI's own rules, without the stack: targets (kept equal to lifecycle's), the dry run,
following a rotation, audit summaries, argument parsing. Which Secrets are mounted is one list,
`libs.pki.MOUNTED_KINDS`, shared with rollout."""

from __future__ import annotations

import argparse
import ast
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certlc_dev.devenv import seed
from libs.cli._audit import detail, header_line, table_line
from libs.cli._opsutil import CliError, Exit, parse_since, shown_url, tcp_ref
from libs.cli._rotate import (
    Outcome,
    RotationWatch,
    TargetError,
    TargetSpec,
    parse_target,
    plan_dry_run,
    render_dry_run,
    spec_kinds,
)
from libs.contracts import api
from libs.contracts.api import RotateAccepted, RotateRequest, Target
from libs.contracts.messages import Reason
from libs.pki import SecretKind, TcpSpec, managed_kinds
from services.lifecycle.requests import Rejected, _targets

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TCP = "k8s-126"


@pytest.mark.parametrize("konnectivity", [True, False])
@pytest.mark.parametrize(
    "target",
    ["x509", "kubeconfig", "ca", *(k.value for k in SecretKind), f"{TCP}-admin-kubeconfig"],
)
def test_the_dry_run_and_lifecycle_resolve_a_target_alike(target: str, konnectivity: bool) -> None:
    spec = parse_target(TCP, target)
    present = managed_kinds(
        TcpSpec(name=TCP, namespace="default", address="10.0.0.1", konnectivity=konnectivity)
    )
    request = RotateRequest(namespace="default", tcp=TCP, target=spec.target, secret=spec.secret)
    theirs = _targets(request, present)
    ours = spec_kinds(spec, present)
    if isinstance(theirs, Rejected):
        assert ours == ()
        assert spec.kind is not None
        assert spec.kind not in present
    else:
        assert ours == theirs
        assert ours, "every target of a present Secret re-issues something"


def test_parse_target() -> None:
    assert parse_target(TCP, "x509") == TargetSpec(Target.X509)
    assert parse_target(TCP, "ca") == TargetSpec(Target.CA)
    admin = TargetSpec(Target.SECRET, f"{TCP}-admin-kubeconfig", SecretKind.ADMIN_KUBECONFIG)
    assert parse_target(TCP, "admin-kubeconfig") == admin
    assert parse_target(TCP, f"{TCP}-admin-kubeconfig") == admin
    for bad in ("secret", "all", "other-admin-kubeconfig", "", "X509"):
        with pytest.raises(TargetError, match="unknown target"):
            parse_target(TCP, bad)


def test_dry_run_plan_and_refusals() -> None:
    tcp = seed.tcp_object(TCP, konnectivity=False)
    deployment = seed.deployment_object(TCP, konnectivity=False)
    secrets = {f"{TCP}-api-server-certificate": {"metadata": {"name": "x"}}}
    plan = plan_dry_run(parse_target(TCP, "x509"), tcp, secrets, deployment)
    assert [s.kind for s in plan.secrets] == [
        SecretKind.APISERVER,
        SecretKind.APISERVER_KUBELET_CLIENT,
        SecretKind.FRONT_PROXY_CLIENT,
    ]
    assert [s.exists for s in plan.secrets] == [True, False, False]
    assert all(s.mounted for s in plan.secrets)
    assert plan.refusal is None
    text = render_dry_run(plan)
    assert "create" in text[3]
    assert text[-1] == f"would roll out Deployment default/{TCP} once (3 mounted Secret(s) change)"
    no_deployment = render_dry_run(plan_dry_run(parse_target(TCP, "x509"), tcp, {}, None))
    assert no_deployment[-1].endswith("has no control-plane Deployment")
    absent = plan_dry_run(parse_target(TCP, "konnectivity-certificate"), tcp, {}, deployment)
    assert absent.refusal is not None
    assert absent.refusal[0] == 404
    paused_secret = {
        f"{TCP}-admin-kubeconfig": {
            "metadata": {"annotations": {"kamaji.clastix.io/paused": "true"}}
        }
    }
    refused = plan_dry_run(parse_target(TCP, "kubeconfig"), tcp, paused_secret, deployment)
    assert refused.refusal == (423, f"Secret {TCP}-admin-kubeconfig is paused")
    rotating = {
        **tcp,
        "status": {"kubernetesResources": {"version": {"status": "CertificateAuthorityRotating"}}},
    }
    assert plan_dry_run(parse_target(TCP, "ca"), rotating, {}, deployment).refusal == (
        409,
        f"a CA rotation of default/{TCP} is in progress; try again later",
    )
    # a phased CA rotation (its CA Secret holds the next CA): leaves go on, the CA is refused
    phased = {f"{TCP}-ca": {"metadata": {"name": f"{TCP}-ca"}, "data": {"certlc-next.key": "eA=="}}}
    assert plan_dry_run(parse_target(TCP, "x509"), rotating, phased, deployment).refusal is None
    assert plan_dry_run(parse_target(TCP, "ca"), rotating, phased, deployment).refusal == (
        409,
        f"{TCP}-ca is being rotated in phases; move that rotation on with --complete (or --abort)",
    )


def accepted(*secrets: str, ca: bool = False) -> RotateAccepted:
    return RotateAccepted(id="r1", namespace="default", tcp=TCP, secrets=secrets, ca_rotation=ca)


def written(kind: str, rid: str = "r1") -> api.SecretWrittenEvent:
    return api.SecretWrittenEvent(
        namespace="default",
        tcp=TCP,
        rotation_id=rid,
        at=AT,
        secret=f"{TCP}-{kind}",
        kind=kind,
        checksum="c",
        resource_version="1",
        action="replaced",
    )


def started(rid: str, *secrets: str) -> api.RolloutStarted:
    return api.RolloutStarted(
        namespace="default", tcp=TCP, rotation_id=rid, at=AT, deployment=TCP, secrets=secrets
    )


def completed(rid: str) -> api.RolloutCompleted:
    return api.RolloutCompleted(
        namespace="default", tcp=TCP, rotation_id=rid, at=AT, deployment=TCP, duration_seconds=1
    )


def test_watch_ends_on_its_rollout() -> None:
    watch = RotationWatch(accepted("api-server-certificate"))
    assert watch.observe(written("api-server-certificate", "other"))[1] is None
    lines, done = watch.observe(written("api-server-certificate"))
    assert lines == [f"03:04:05  secret written       {TCP}-api-server-certificate (replaced)"]
    assert done is None
    assert watch.observe(completed("r1")) == ([], None)  # not started yet: not ours
    assert watch.observe(started("r1", "api-server-certificate"))[1] is None
    other_tcp = api.RolloutCompleted(
        namespace="default", tcp="x", rotation_id="r1", at=AT, deployment="x", duration_seconds=1
    )
    assert watch.observe(other_tcp) == ([], None)
    assert watch.observe(completed("r1"))[1] == Outcome(True, "rollout completed")


def test_watch_adopts_a_rollout_that_carries_its_secrets() -> None:
    watch = RotationWatch(accepted("scheduler-kubeconfig", "admin-kubeconfig"))
    assert watch.observe(started("earlier", "scheduler-kubeconfig")) == ([], None)  # before ours
    watch.observe(written("scheduler-kubeconfig"))
    watch.observe(written("admin-kubeconfig"))
    assert watch.observe(started("unrelated", "api-server-certificate")) == ([], None)
    assert watch.observe(started("merged", "scheduler-kubeconfig"))[0]
    assert watch.observe(completed("merged"))[1] == Outcome(True, "rollout completed")


def test_watch_without_a_mounted_secret_ends_when_written() -> None:
    watch = RotationWatch(accepted("admin-kubeconfig"))
    outcome = watch.observe(written("admin-kubeconfig"))[1]
    assert outcome is not None
    assert outcome.ok


def test_watch_ca_rotation_and_failures() -> None:
    watch = RotationWatch(accepted("ca", "admin-kubeconfig", ca=True))
    watch.observe(api.CaRotationStarted(namespace="default", tcp=TCP, rotation_id="r1", at=AT))
    watch.observe(written("ca"))
    watch.observe(started("r1", "ca"))
    assert watch.observe(completed("r1"))[1] is None  # a CA rotation ends after the rollout
    done = watch.observe(
        api.CaRotationCompleted(namespace="default", tcp=TCP, rotation_id="r1", at=AT)
    )
    assert done[1] == Outcome(True, "CA rotation completed")

    failing = RotationWatch(accepted("api-server-certificate"))
    retry = api.RotationFailed(
        namespace="default", tcp=TCP, rotation_id="r1", at=AT, message="429", retryable=True
    )
    assert failing.observe(retry) == (["03:04:05  rotation failed      429 (retrying)"], None)
    final = api.RotationFailed(
        namespace="default", tcp=TCP, rotation_id="r1", at=AT, message="no", retryable=False
    )
    outcome = failing.observe(final)[1]
    assert outcome is not None
    assert not outcome.ok
    failing.observe(started("r1", "api-server-certificate"))
    rollout_failed = api.RolloutFailed(
        namespace="default", tcp=TCP, rotation_id="r1", at=AT, deployment=TCP, message="slow"
    )
    # A rollout past its deadline ends nothing: rollout keeps watching it, and its completion
    # ends the wait.
    lines, outcome = failing.observe(rollout_failed)
    assert outcome is None
    assert lines == [
        "03:04:05  rollout failed       deployment k8s-126: slow (certlc keeps watching it)"
    ]
    assert failing.observe(completed("r1"))[1] == Outcome(True, "rollout completed")


def test_every_audit_event_has_a_summary() -> None:
    members = typing.get_args(api.Audit)
    samples: dict[str, object] = {
        "secrets": ("ca",),
        "reason": Reason.REQUESTED,
        "code": 404,
        "message": "m",
        "secret": f"{TCP}-ca",
        "kind": "ca",
        "serial": "ab",
        "not_before": AT,
        "not_after": AT + timedelta(days=1),
        "fingerprint_sha256": "f",
        "checksum": "c",
        "resource_version": "1",
        "action": "created",
        "deployment": TCP,
        "duration_seconds": 1.5,
        "issued": 3,
        "window_seconds": 60.0,
        "datastore": "default",
        "annotation": "certlc.kamaji.clastix.io/key-algorithm",
        "value": "DSA-1024",
        "step": "prepare",
    }
    for member in members:
        fields = {f: samples[f] for f in member.__struct_fields__ if f in samples}
        event = member(
            namespace="default", tcp=TCP, rotation_id="abcdef0123456789", at=AT, **fields
        )
        line = table_line(event)
        assert line.startswith("2026-01-02T03:04:05Z  default/k8s-126")
        assert " abcdef012345" in line
        if member is not api.CaRotationCompleted:
            assert detail(event), member
    assert header_line().split() == ["TIME", "NAMESPACE/TCP", "EVENT", "ROTATION", "DETAIL"]


def test_tcp_refs_and_since() -> None:
    assert tcp_ref("prod/cp.team-a") == ("prod", "cp.team-a")
    assert tcp_ref("k8s-126") == ("default", "k8s-126")
    assert tcp_ref("k8s-126", "prod") == ("prod", "k8s-126")
    for bad in ("a/b/c", "UPPER", "x/", "/x"):
        with pytest.raises(CliError) as caught:
            tcp_ref(bad)
        assert caught.value.code is Exit.USAGE
    with pytest.raises(CliError):
        tcp_ref("prod/x", "dev")
    before = datetime.now(UTC)
    hour_ago = before - timedelta(hours=1)
    assert hour_ago - timedelta(seconds=5) < parse_since("1h") < hour_ago + timedelta(seconds=5)
    assert parse_since("2026-01-02T03:04:05Z") == AT
    assert parse_since("2026-01-02T03:04:05") == AT
    with pytest.raises(argparse.ArgumentTypeError):
        parse_since("yesterday")


def test_the_operator_commands_import_no_client_library() -> None:
    """libs.cli is outside the import-linter contracts: check the operator modules here."""
    root = Path(__file__).resolve().parents[2] / "libs" / "cli"
    forbidden = {"nats", "kubernetes", "cryptography", "services"}
    for path in [root / "ops.py", *sorted(root.glob("_*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_nats_urls_are_shown_without_credentials() -> None:
    assert shown_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"
    assert shown_url("nats://me:secret@a:4222, tls://tok@b:4222") == "nats://a:4222,tls://b:4222"


def test_a_service_account_key_dry_run_says_which_tokens_it_invalidates() -> None:
    tcp = seed.tcp_object(TCP, konnectivity=False)
    deployment = seed.deployment_object(TCP, konnectivity=False)
    secrets = {f"{TCP}-sa-certificate": {"metadata": {"name": f"{TCP}-sa-certificate"}}}
    text = render_dry_run(
        plan_dry_run(parse_target(TCP, "sa-certificate"), tcp, secrets, deployment)
    )
    assert text[-3].startswith(f"warning: {TCP}-sa-certificate holds the service-account signing")
    assert "with no overlap" in text[-3]
    assert text[-2].startswith("  - pods' projected tokens")
    assert text[-1].startswith("  - legacy token Secrets")
    x509 = render_dry_run(plan_dry_run(parse_target(TCP, "x509"), tcp, secrets, deployment))
    assert not any("ServiceAccount token" in line for line in x509)

"""The dry run of a phased rotation: each step, what it re-issues, when the next starts, and
for the SA key which tokens stop verifying when."""

from __future__ import annotations

from datetime import timedelta

from libs.cli._rotate import parse_target, phased_kind, render_phased_dry_run
from libs.pki import SecretKind, TcpSpec

TCP = TcpSpec(name="k8s-126", namespace="default", address="172.18.255.200", konnectivity=True)


def test_targets_that_rotate_in_phases() -> None:
    assert phased_kind(parse_target("k8s-126", "ca")) is SecretKind.CA
    assert phased_kind(parse_target("k8s-126", "sa")) is SecretKind.SA
    assert phased_kind(parse_target("k8s-126", "front-proxy-ca-certificate")) is (
        SecretKind.FRONT_PROXY_CA
    )
    assert phased_kind(parse_target("k8s-126", "k8s-126-sa-certificate")) is SecretKind.SA
    assert phased_kind(parse_target("k8s-126", "x509")) is None
    assert phased_kind(parse_target("k8s-126", "admin-kubeconfig")) is None


def test_a_ca_dry_run_names_each_step_and_waits_for_the_operator() -> None:
    lines = render_phased_dry_run("default", TCP, SecretKind.CA, None)
    text = "\n".join(lines)
    assert lines[0] == "dry run: rotate default/k8s-126 ca in phases (nothing is published)"
    assert "prepare: a new CA is trusted beside the old one, which still signs" in text
    assert "swap starts on `certlc rotate default/k8s-126 ca --complete`" in text
    [swap] = [line for line in lines if line.startswith("swap:")]
    assert "k8s-126-api-server-kubelet-client-certificate" in swap
    [prepare] = [line for line in lines if line.startswith("prepare:")]
    assert "k8s-126-api-server-certificate" not in prepare
    assert "tokens" not in text


def test_an_sa_dry_run_says_which_tokens_stop_verifying_when() -> None:
    text = "\n".join(render_phased_dry_run("default", TCP, SecretKind.SA, None))
    assert "swap starts at once" in text
    assert "complete starts by itself after CERTLC_SA_OVERLAP (48h by default)" in text
    assert "keeps verifying until complete, CERTLC_SA_OVERLAP (48h) after the swap" in text
    assert "legacy token Secrets" in text
    assert "warning" not in text
    short = "\n".join(render_phased_dry_run("default", TCP, SecretKind.SA, timedelta(hours=2)))
    assert "complete starts by itself 2h later" in short
    assert "warning: an overlap of 2h is shorter than the kubelet's 24 h refresh" in short

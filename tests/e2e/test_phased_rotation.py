"""Phased CA and service-account key rotation end to end, checked with OpenSSL.

Two TCPs rotate at once: the TCP CA of one, the front-proxy CA of the other, each step moved on
by the operator (`certlc rotate ... --complete`). Before prepare, after prepare, after swap and
after complete, `openssl s_server` runs with the TCP's current API server certificate and its
current client-CA bundle (client certificates required), and `openssl s_client` connects as
every kubeconfig and the kubelet client certificate, both as they were before the rotation and
as they are now, verifying the server with that credential's own CA data. Every handshake
succeeds, except after complete those of the credentials signed by the old CA. The same for the
front-proxy pair. Then the SA key: a token signed by the old key verifies against `sa.pub` until
complete, one signed by the new key from the swap on (openssl dgst, RS256 as kube-apiserver
checks it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Stack, start_with_tenants, wait_for
from tests.e2e.phased import (
    api_server,
    certificates_in,
    client_credentials,
    fingerprints,
    front_proxy_credential,
    rotation_id,
    secret_data,
    sign_token,
    verifies,
    wait_step,
)
from tests.e2e.tls import Credential, handshakes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CA_TCP, FP_TCP = "phased-ca", "phased-fp"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("e2e-phased"))
    yield from start_with_tenants(workdir, kube_serving, (CA_TCP, FP_TCP))


def check_ca(stack: Stack, workdir: Path, creds: list[Credential]) -> dict[str, bool]:
    return handshakes(workdir, api_server(stack, CA_TCP), creds)


def check_fp(stack: Stack, workdir: Path, creds: list[Credential]) -> dict[str, bool]:
    return handshakes(workdir, api_server(stack, FP_TCP, "front-proxy-ca-certificate"), creds)


def test_phased_ca_rotations_keep_mtls_working_at_every_step(stack: Stack, tmp_path: Path) -> None:
    before = client_credentials(stack, CA_TCP, "before")
    fp_before = front_proxy_credential(stack, FP_TCP, "before")
    fp_tcp_ca = secret_data(stack, FP_TCP, "ca")["ca.crt"]
    ca_tcp_front_proxy = secret_data(stack, CA_TCP, "front-proxy-ca-certificate")
    assert len(before) == 5  # admin, controller-manager, scheduler, konnectivity, kubelet client
    assert all(check_ca(stack, tmp_path, before).values())
    assert check_fp(stack, tmp_path, [fp_before]) == {"before:front-proxy-client": True}

    # prepare, both TCPs at once
    ca_rid = rotation_id(stack.certlc("rotate", f"default/{CA_TCP}", "ca", "--phased", kube=False))
    fp_rid = rotation_id(
        stack.certlc(
            "rotate", f"default/{FP_TCP}", "front-proxy-ca-certificate", "--phased", kube=False
        )
    )
    wait_step(stack, CA_TCP, ca_rid, "prepare")
    wait_step(stack, FP_TCP, fp_rid, "prepare")
    assert certificates_in(secret_data(stack, CA_TCP, "ca")["ca.crt"]) == 2
    assert stack.phase(CA_TCP) == "CertificateAuthorityRotating"
    status = stack.certlc("status", f"default/{CA_TCP}")
    assert "swap waits for the operator" in status, status
    assert f"certlc rotate default/{CA_TCP} ca --complete" in status, status
    after_prepare = client_credentials(stack, CA_TCP, "now")
    results = check_ca(stack, tmp_path, before + after_prepare)
    assert all(results.values()), results
    fp_now = front_proxy_credential(stack, FP_TCP, "now")
    assert all(check_fp(stack, tmp_path, [fp_before, fp_now]).values())

    # swap
    for tcp, target in ((CA_TCP, "ca"), (FP_TCP, "front-proxy-ca-certificate")):
        out = stack.certlc("rotate", f"default/{tcp}", target, "--complete", kube=False)
        assert "step swap" in out, out
    wait_step(stack, CA_TCP, ca_rid, "swap")
    wait_step(stack, FP_TCP, fp_rid, "swap")
    after_swap = client_credentials(stack, CA_TCP, "now")
    results = check_ca(stack, tmp_path, before + after_swap)
    assert all(results.values()), results
    fp_now = front_proxy_credential(stack, FP_TCP, "now")
    assert all(check_fp(stack, tmp_path, [fp_before, fp_now]).values())
    assert stack.phase(CA_TCP) == "CertificateAuthorityRotating"

    # complete
    for tcp, target in ((CA_TCP, "ca"), (FP_TCP, "front-proxy-ca-certificate")):
        stack.certlc("rotate", f"default/{tcp}", target, "--complete", kube=False)
    wait_step(stack, CA_TCP, ca_rid, "complete", "completed")
    wait_step(stack, FP_TCP, fp_rid, "complete", "completed")
    assert certificates_in(secret_data(stack, CA_TCP, "ca")["ca.crt"]) == 1
    now = client_credentials(stack, CA_TCP, "now")
    results = check_ca(stack, tmp_path, before + now)
    assert results == {c.name: c.name.startswith("now:") for c in before + now}, results
    fp_now = front_proxy_credential(stack, FP_TCP, "now")
    assert check_fp(stack, tmp_path, [fp_before, fp_now]) == {
        "before:front-proxy-client": False,
        "now:front-proxy-client": True,
    }
    wait_for(lambda: stack.phase(CA_TCP) == "Ready", 60, "the TCP Ready again")

    # one audit event per step done, per TCP
    for tcp, rid in ((CA_TCP, ca_rid), (FP_TCP, fp_rid)):
        done = [json.loads(e) for e in stack.tap.audit(tcp, "rotation-step-done")]
        assert [e["step"] for e in done if e["rotation_id"] == rid] == [
            "prepare",
            "swap",
            "complete",
        ]
    # the front-proxy rotation left the TCP CA of its TCP alone, and the other way round
    assert secret_data(stack, FP_TCP, "ca")["ca.crt"] == fp_tcp_ca
    assert secret_data(stack, CA_TCP, "front-proxy-ca-certificate") == ca_tcp_front_proxy


def test_sa_key_rotation_keeps_old_tokens_valid_until_complete(
    stack: Stack, tmp_path: Path
) -> None:
    tcp = CA_TCP
    before = secret_data(stack, tcp, "sa-certificate")
    old_token = sign_token(tmp_path, before["sa.key"], "system:serviceaccount:kube-system:coredns")
    assert verifies(tmp_path, before["sa.pub"], old_token)
    dry = stack.certlc("rotate", f"default/{tcp}", "sa", "--dry-run")
    assert "keeps verifying until complete" in dry, dry
    assert "legacy token Secrets" in dry, dry
    assert secret_data(stack, tcp, "sa-certificate") == before  # a dry run changes nothing
    rid = rotation_id(stack.certlc("rotate", f"default/{tcp}", "sa", kube=False))
    # prepare goes on to swap by itself; then it holds for the overlap (48 h by default)
    wait_step(stack, tcp, rid, "swap")
    swapped = secret_data(stack, tcp, "sa-certificate")
    assert swapped["sa.key"] != before["sa.key"]
    new_token = sign_token(tmp_path, swapped["sa.key"], "system:serviceaccount:default:app")
    assert verifies(tmp_path, swapped["sa.pub"], old_token)
    assert verifies(tmp_path, swapped["sa.pub"], new_token)
    status = stack.certlc("status", f"default/{tcp}")
    assert "complete starts in " in status, status
    stack.certlc("rotate", f"default/{tcp}", "sa", "--complete", kube=False)
    wait_step(stack, tcp, rid, "complete", "completed")
    done = secret_data(stack, tcp, "sa-certificate")
    assert not verifies(tmp_path, done["sa.pub"], old_token)
    assert verifies(tmp_path, done["sa.pub"], new_token)
    assert done["sa.key"] == swapped["sa.key"]


def test_an_aborted_phased_ca_rotation_leaves_the_old_ca_in_charge(
    stack: Stack, tmp_path: Path
) -> None:
    tcp = FP_TCP
    old_bundle = secret_data(stack, tcp, "ca")["ca.crt"]
    before = client_credentials(stack, tcp, "before")

    def check() -> dict[str, bool]:
        now = client_credentials(stack, tcp, "now")
        return handshakes(tmp_path, api_server(stack, tcp), before + now)

    # abort after prepare: the new CA leaves the bundles; nothing was signed by it
    rid = rotation_id(stack.certlc("rotate", f"default/{tcp}", "ca", "--phased", kube=False))
    wait_step(stack, tcp, rid, "prepare")
    assert "step complete" in stack.certlc("rotate", f"default/{tcp}", "ca", "--abort", kube=False)
    wait_step(stack, tcp, rid, "complete", "completed")
    assert fingerprints(secret_data(stack, tcp, "ca")["ca.crt"]) == fingerprints(old_bundle)
    results = check()
    assert all(results.values()), results
    wait_for(lambda: stack.phase(tcp) == "Ready", 60, "the TCP Ready again")

    # abort after swap: the old CA signs again (revert), then the new one is dropped
    rid = rotation_id(stack.certlc("rotate", f"default/{tcp}", "ca", "--phased", kube=False))
    wait_step(stack, tcp, rid, "prepare")
    stack.certlc("rotate", f"default/{tcp}", "ca", "--complete", kube=False)
    wait_step(stack, tcp, rid, "swap")
    assert "step revert" in stack.certlc("rotate", f"default/{tcp}", "ca", "--abort", kube=False)
    wait_step(stack, tcp, rid, "revert")
    reverted = secret_data(stack, tcp, "ca")["ca.crt"]
    assert fingerprints(reverted)[0] == fingerprints(old_bundle)[0]
    assert len(fingerprints(reverted)) == 2
    results = check()
    assert all(results.values()), results
    status = stack.certlc("status", f"default/{tcp}")
    assert "--abort to back out" in status, status
    stack.certlc("rotate", f"default/{tcp}", "ca", "--abort", kube=False)
    wait_step(stack, tcp, rid, "complete", "completed")
    assert fingerprints(secret_data(stack, tcp, "ca")["ca.crt"]) == fingerprints(old_bundle)
    results = check()
    assert all(results.values()), results  # the old CA signs everything again
    wait_for(lambda: stack.phase(tcp) == "Ready", 60, "the TCP Ready again")
    record = stack.tap.records(tcp)[rid]
    assert record["aborted"] is True


def test_deleting_the_ca_during_a_phased_rotation_replaces_it_at_once(
    stack: Stack, tmp_path: Path
) -> None:
    tcp = CA_TCP
    rid = rotation_id(stack.certlc("rotate", f"default/{tcp}", "ca", "--phased", kube=False))
    wait_step(stack, tcp, rid, "prepare")
    prepared = secret_data(stack, tcp, "ca")["ca.crt"]
    stack.kubectl("delete", "secret", "-n", "default", f"{tcp}-ca")
    wait_step(stack, tcp, rid, "prepare", "completed")  # given up
    record = stack.tap.records(tcp)[rid]
    assert record["aborted"] is True
    assert "replaced at once" in record["last_error"]
    # the seed's immediate rotation: a new CA, everything re-issued by it, the TCP Ready
    wait_for(lambda: stack.rotations_done(tcp) and stack.deployment_done(tcp), 90, "the rotation")
    wait_for(lambda: stack.phase(tcp) == "Ready", 60, "the TCP Ready again")
    bundle = secret_data(stack, tcp, "ca")["ca.crt"]
    assert certificates_in(bundle) == 1
    assert fingerprints(bundle)[0] not in fingerprints(prepared)
    results = handshakes(tmp_path, api_server(stack, tcp), client_credentials(stack, tcp, "now"))
    assert all(results.values()), results

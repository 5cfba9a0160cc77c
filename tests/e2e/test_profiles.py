"""Per-TCP certificate profiles end to end: a TCP's annotations choose its key algorithm and
validity (checked with openssl), a bad value is a Warning Event and the defaults apply, and a
change of profile re-issues nothing until the next renewal or an asked rotation."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores
from libs.pki.overrides import (
    KEY_ALGORITHM_ANNOTATION,
    LEAF_VALIDITY_ANNOTATION,
    RENEW_BEFORE_PERCENTAGE_ANNOTATION,
)
from libs.pki.profiles import BACKDATE
from tests.e2e.harness import Stack, create_tenant, start_stack, tcp_warnings, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LEAF_KEYS = {
    "api-server-certificate": "apiserver.crt",
    "api-server-kubelet-client-certificate": "apiserver-kubelet-client.crt",
    "front-proxy-client-certificate": "front-proxy-client.crt",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("e2e-profiles"))
    for s in start_stack(workdir, kube_serving):
        seed_datastores(s.sim, postgres=False)
        yield s


def openssl_text(stack: Stack, pem: bytes) -> str:
    path = stack.workdir / "profile-cert.pem"
    path.write_bytes(pem)
    result = subprocess.run(
        ["openssl", "x509", "-noout", "-text", "-in", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def lifetime(text: str) -> timedelta:
    """NotAfter - NotBefore as openssl prints them."""

    def moment(label: str) -> datetime:
        match = re.search(rf"{label}\s*:\s*(.+? GMT)", text)
        assert match, text
        return datetime.strptime(match.group(1), "%b %d %H:%M:%S %Y %Z")

    return moment("Not After") - moment("Not Before")


def cert_of(stack: Stack, tcp: str, suffix: str) -> bytes:
    secret = stack.secrets(tcp)[f"{tcp}-{suffix}"]
    return stack.data(secret)[LEAF_KEYS[suffix]]


def test_a_tcp_gets_the_key_algorithm_and_validity_of_its_annotations(stack: Stack) -> None:
    create_tenant(
        stack,
        "prof-ec",
        {KEY_ALGORITHM_ANNOTATION: "ECDSA-P256", LEAF_VALIDITY_ANNOTATION: "720h"},
    )
    stack.first_issued("prof-ec", timeout=60)
    for suffix in LEAF_KEYS:
        text = openssl_text(stack, cert_of(stack, "prof-ec", suffix))
        assert "id-ecPublicKey" in text, text
        assert "prime256v1" in text or "P-256" in text, text
        # NotBefore is backdated by BACKDATE against clock skew; NotAfter is issue + 720h
        assert lifetime(text) == timedelta(hours=720) + BACKDATE, text
    assert not stack.tap.audit("prof-ec", "annotation-rejected")


def test_a_bad_value_is_a_warning_event_and_the_defaults_apply(stack: Stack) -> None:
    create_tenant(stack, "prof-bad", {KEY_ALGORITHM_ANNOTATION: "DSA-1024"})
    stack.first_issued("prof-bad", timeout=60)
    text = openssl_text(stack, cert_of(stack, "prof-bad", "api-server-certificate"))
    assert "rsaEncryption" in text, text
    assert "2048 bit" in text, text
    assert lifetime(text) == timedelta(hours=8760) + BACKDATE, text
    warnings = wait_for(
        lambda: tcp_warnings(stack, "prof-bad", "AnnotationRejected"),
        30,
        "the AnnotationRejected Warning Event",
    )
    assert len(warnings) == 1
    assert KEY_ALGORITHM_ANNOTATION in warnings[0].message
    assert "DSA-1024" in warnings[0].message


def test_a_profile_change_reissues_nothing_until_a_rotation_is_asked(stack: Stack) -> None:
    name = "prof-change"
    create_tenant(stack, name, {})
    before = {n: s["metadata"]["resourceVersion"] for n, s in stack.first_issued(name).items()}
    requested = len(stack.tap.audit(name, "rotation-requested"))
    # A new profile, with one bad annotation as the witness that lifecycle decided on it.
    stack.sim.patch(
        "tenantcontrolplanes",
        name,
        {
            "metadata": {
                "annotations": {
                    KEY_ALGORITHM_ANNOTATION: "ECDSA-P384",
                    LEAF_VALIDITY_ANNOTATION: "720h",
                    RENEW_BEFORE_PERCENTAGE_ANNOTATION: "150",
                }
            }
        },
    )
    wait_for(
        lambda: stack.tap.audit(name, "annotation-rejected"), 30, "lifecycle saw the new profile"
    )
    # Bounded observation: lifecycle has decided on the new profile; for a while after that
    # (a re-decision included: the settle period is 300ms) no rotation is asked, nothing written.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert len(stack.tap.audit(name, "rotation-requested")) == requested
        now = {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets(name).items()}
        assert now == before
        time.sleep(0.2)
    # An asked rotation applies the new profile.
    completed = stack.rollouts_completed(name)
    stack.kubectl(
        "annotate", "secret", f"{name}-api-server-certificate", "certs.kamaji.clastix.io/rotate="
    )
    stack.next_rollout(name, completed)
    text = openssl_text(stack, cert_of(stack, name, "api-server-certificate"))
    assert "id-ecPublicKey" in text, text
    assert "secp384r1" in text or "P-384" in text, text
    assert lifetime(text) == timedelta(hours=720) + BACKDATE, text
    # the other Secrets keep their RSA certificates until their own renewal
    other = openssl_text(stack, cert_of(stack, name, "front-proxy-client-certificate"))
    assert "rsaEncryption" in other, other

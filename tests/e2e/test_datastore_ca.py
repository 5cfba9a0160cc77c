"""A DataStore CA rotation reaches its TCPs (Kamaji #1200): when the CA Secret an etcd DataStore
references is replaced, the datastore certificate of every TCP on that DataStore is re-issued,
signed by the new CA (openssl), with one rollout per TCP; a TCP on another DataStore is left
alone. Kamaji does not label that Secret, so the watcher reads it (CERTLC_DATASTORE_POLL)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv import seed
from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.pki import SecretKind, TcpSpec, mint_secret_data, signer_from_secret_data
from tests.e2e.harness import Stack, openssl_verify, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ON_DEFAULT = ("ds-a", "ds-b")
CERT = "datastore-certificate"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {"CERTLC_DATASTORE_POLL": "2s"}
    for s in start_stack(Path(tmp_path_factory.mktemp("e2e-ds-ca")), kube_serving, settings):
        seed_datastores(s.sim)
        for obj in seed.etcd_datastore("other"):
            s.sim.create(obj)
        for name in ON_DEFAULT:
            seed_tenant(s.sim, name)
        seed_tenant(s.sim, "ds-other", datastore="other")
        for name in (*ON_DEFAULT, "ds-other"):
            s.first_issued(name, timeout=60)
            s.quiet(name)
        yield s


def test_a_new_datastore_ca_re_issues_the_datastore_certificate_of_each_of_its_tcps(
    stack: Stack,
) -> None:
    uids = {
        t: stack.secrets(t)[f"{t}-{CERT}"]["metadata"]["uid"] for t in (*ON_DEFAULT, "ds-other")
    }
    versions = {t: stack.secrets(t)[f"{t}-{CERT}"]["metadata"]["resourceVersion"] for t in uids}
    rollouts = {t: stack.rollouts_completed(t) for t in uids}
    placeholder = TcpSpec(name="datastore", namespace=seed.DATASTORE_NAMESPACE, address="127.0.0.1")
    new_ca = mint_secret_data(SecretKind.CA, placeholder, now=datetime.now(UTC))
    stack.sim.patch(
        "secrets",
        "default-etcd-certs",
        {"data": {k: base64.b64encode(new_ca[k]).decode() for k in ("ca.crt", "ca.key")}},
        namespace=seed.DATASTORE_NAMESPACE,
    )

    def reissued(tcp: str) -> bool:
        meta = stack.secrets(tcp)[f"{tcp}-{CERT}"]["metadata"]
        return meta["resourceVersion"] != versions[tcp]

    for tcp in ON_DEFAULT:
        wait_for(lambda tcp=tcp: reissued(tcp), 30, f"the datastore certificate of {tcp}")
        stack.next_rollout(tcp, rollouts[tcp], timeout=30)
    for tcp in ON_DEFAULT:
        wait_for(lambda tcp=tcp: stack.rotations_done(tcp), 30, f"the rotation of {tcp}")
        stack.quiet(tcp)
        data = stack.data(stack.secrets(tcp)[f"{tcp}-{CERT}"])
        openssl_verify(stack.workdir, new_ca["ca.crt"], data["server.crt"])
        assert stack.rollouts_completed(tcp) - rollouts[tcp] == 1
    # The TCP on the other DataStore is untouched.
    assert not reissued("ds-other")
    assert stack.rollouts_completed("ds-other") == rollouts["ds-other"]


def test_a_replaced_external_client_certificate_is_copied_to_its_tcp_and_rolled_out(
    stack: Stack,
) -> None:
    seed_tenant(stack.sim, "ds-pg", datastore="postgres", driver="PostgreSQL")
    stack.first_issued("ds-pg", timeout=60)
    stack.quiet("ds-pg")
    before = stack.secrets("ds-pg")["ds-pg-datastore-certificate"]["metadata"]["resourceVersion"]
    rollouts = stack.rollouts_completed("ds-pg")
    # The database's PKI is renewed outside certlc: a new CA and a client certificate of it.
    placeholder = TcpSpec(name="datastore", namespace=seed.DATASTORE_NAMESPACE, address="127.0.0.1")
    now = datetime.now(UTC)
    ca = mint_secret_data(SecretKind.CA, placeholder, now=now)
    client = mint_secret_data(
        SecretKind.DATASTORE_CERTIFICATE,
        placeholder,
        now=now,
        signer=signer_from_secret_data(SecretKind.CA, ca),
    )
    stack.sim.patch(
        "secrets",
        "postgres-pki",
        {
            "data": {
                "ca.crt": base64.b64encode(ca["ca.crt"]).decode(),
                "tls.crt": base64.b64encode(client["server.crt"]).decode(),
                "tls.key": base64.b64encode(client["server.key"]).decode(),
            }
        },
        namespace=seed.DATASTORE_NAMESPACE,
    )
    wait_for(
        lambda: (
            stack.secrets("ds-pg")["ds-pg-datastore-certificate"]["metadata"]["resourceVersion"]
            != before
        ),
        30,
        "the new client certificate copied",
    )
    stack.next_rollout("ds-pg", rollouts, timeout=30)
    wait_for(lambda: stack.rotations_done("ds-pg"), 30, "the rotation completed")
    copied = stack.data(stack.secrets("ds-pg")["ds-pg-datastore-certificate"])
    assert copied["server.crt"].strip() == client["server.crt"].strip()
    assert copied["server.key"].strip() == client["server.key"].strip()
    assert copied["ca.crt"].strip() == ca["ca.crt"].strip()
    assert stack.rollouts_completed("ds-pg") - rollouts == 1

"""A DataStore CA rotation reaches its TCPs (Kamaji #1200): when the CA Secret an etcd DataStore
references is replaced, the datastore certificate of every TCP on that DataStore is re-issued,
signed by the new CA (openssl), with one rollout per TCP and, under a rollout budget of one, one
TCP at a time (no storm across the fleet); a TCP on another DataStore is left alone. Kamaji does
not label that Secret, so the watcher reads it (CERTLC_DATASTORE_POLL)."""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from certlc_dev.devenv import seed
from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.contracts.api import ExternalCertificateExpiring
from libs.pki import SecretKind, TcpSpec, mint_secret_data, signer_from_secret_data
from tests.e2e.harness import Stack, openssl_verify, start_stack, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ON_DEFAULT = ("ds-a", "ds-b")
CERT = "datastore-certificate"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    settings = {"CERTLC_DATASTORE_POLL": "2s", "CERTLC_ROLLOUT_BUDGET": "1"}
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
    # One at a time: the second rollout started after the first completed.
    (first, second) = sorted(ON_DEFAULT, key=lambda t: last_audit(stack, t, "rollout-started"))
    assert last_audit(stack, first, "rollout-completed") < last_audit(
        stack, second, "rollout-started"
    ), "the two TCPs rolled out at once under a budget of one"
    # The TCP on the other DataStore is untouched.
    assert not reissued("ds-other")
    assert stack.rollouts_completed("ds-other") == rollouts["ds-other"]


def last_audit(stack: Stack, tcp: str, event: str) -> int:
    """Where, in the order the bus carried them, the last `event` audit message of `tcp` is."""
    subject = f"certlc.audit.default.{tcp}.{event}"
    found = [i for i, (s, _, _) in enumerate(list(stack.tap.messages)) if s == subject]
    assert found, f"no {event} audit event for {tcp}"
    return found[-1]


def renew_postgres_pki(
    stack: Stack, validity: timedelta | None = None, datastore: str = "postgres"
) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The database's PKI renewed outside certlc: a new CA and a client certificate of it,
    written to the Secret the PostgreSQL DataStore references; (CA data, client data)."""
    placeholder = TcpSpec(name="datastore", namespace=seed.DATASTORE_NAMESPACE, address="127.0.0.1")
    now = datetime.now(UTC)
    ca = mint_secret_data(SecretKind.CA, placeholder, now=now)
    client = mint_secret_data(
        SecretKind.DATASTORE_CERTIFICATE,
        placeholder,
        now=now,
        signer=signer_from_secret_data(SecretKind.CA, ca),
        validity=validity,
    )
    stack.sim.patch(
        "secrets",
        f"{datastore}-pki",
        {
            "data": {
                "ca.crt": base64.b64encode(ca["ca.crt"]).decode(),
                "tls.crt": base64.b64encode(client["server.crt"]).decode(),
                "tls.key": base64.b64encode(client["server.key"]).decode(),
            }
        },
        namespace=seed.DATASTORE_NAMESPACE,
    )
    return ca, client


def postgres_tenant(stack: Stack) -> str:
    if "ds-pg-datastore-certificate" not in stack.secrets("ds-pg"):
        seed_tenant(stack.sim, "ds-pg", datastore="postgres", driver="PostgreSQL")
        stack.first_issued("ds-pg", timeout=60)
    stack.quiet("ds-pg")
    return "ds-pg"


def copied_version(stack: Stack, tcp: str) -> str | None:
    """The resourceVersion of the TCP's datastore certificate; None while it is absent: a copied
    certificate is replaced by a delete and a create, so a listing may fall between the two."""
    secret = stack.secrets(tcp).get(f"{tcp}-{CERT}")
    return None if secret is None else str(secret["metadata"]["resourceVersion"])


def test_a_replaced_external_client_certificate_is_copied_to_its_tcp_and_rolled_out(
    stack: Stack,
) -> None:
    postgres_tenant(stack)
    before = stack.secrets("ds-pg")["ds-pg-datastore-certificate"]["metadata"]["resourceVersion"]
    rollouts = stack.rollouts_completed("ds-pg")
    ca, client = renew_postgres_pki(stack)
    wait_for(
        lambda: copied_version(stack, "ds-pg") not in (None, before),
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


def warning_events(stack: Stack, tcp: str, reason: str) -> list[dict[str, Any]]:
    listed = json.loads(stack.kubectl("get", "events", "-n", "default", "-o", "json"))["items"]
    return [
        e
        for e in listed
        if e["involvedObject"].get("name") == tcp
        and e.get("reason") == reason
        and e.get("type") == "Warning"
    ]


def datastore_expiry(stack: Stack, datastore: str) -> float | None:
    """The client-certificate NotAfter lifecycle exports for `datastore`, from its /metrics."""
    (lifecycle,) = stack.services.by_name("lifecycle")
    with urllib.request.urlopen(f"http://127.0.0.1:{lifecycle.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    name = "certlc_datastore_client_certificate_expiration_timestamp_seconds"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("datastore") == datastore:
                return float(sample.value)
    return None


def test_an_expiring_external_client_certificate_is_reported_and_not_renewed_in_a_loop(
    stack: Stack,
) -> None:
    # A DataStore of its own, so that the loop guard's count is this test's alone.
    tcp, store = "ds-pg-exp", "postgres-exp"
    for obj in seed.postgres_datastore(store):
        stack.sim.create(obj)
    seed_tenant(stack.sim, tcp, datastore=store, driver="PostgreSQL")
    stack.first_issued(tcp, timeout=60)
    stack.quiet(tcp)
    rollouts = stack.rollouts_completed(tcp)
    # The database's PKI issues a certificate that is already within the renewal deadline.
    _, client = renew_postgres_pki(stack, validity=timedelta(hours=2), datastore=store)
    wait_for(
        lambda: (
            (secret := stack.secrets(tcp).get(f"{tcp}-{CERT}")) is not None
            and stack.data(secret)["server.crt"].strip() == client["server.crt"].strip()
        ),
        30,
        "the short-lived client certificate copied",
    )
    stack.next_rollout(tcp, rollouts, timeout=30)
    wait_for(lambda: stack.rotations_done(tcp), 30, "the copy's rotation completed")
    (event,) = wait_for(
        lambda: warning_events(stack, tcp, "ExternalCertificateExpiring"), 30, "the Warning Event"
    )
    assert f"DataStore {store}" in event["message"]
    assert "own PKI" in event["message"]
    audited = [
        msgspec.json.decode(d, type=ExternalCertificateExpiring)
        for d in stack.tap.audit(tcp, "datastore-external-certificate-expiring")
    ]
    assert audited, "no datastore.external-certificate-expiring audit event"
    summary = summarize_client(client)
    assert {a.not_after for a in audited} == {summary}
    assert {a.datastore for a in audited} == {store}
    expiry = wait_for(lambda: datastore_expiry(stack, store), 30, "the expiry gauge")
    assert expiry == summary.timestamp()
    # Not renewed again and again: a new copy would be as old. One rollout for the copy, and
    # nothing more while the DataStore keeps the certificate (the watcher re-reads it every 2 s).
    stack.quiet(tcp, seconds=6)
    assert stack.rollouts_completed(tcp) - rollouts == 1
    assert len(warning_events(stack, tcp, "ExternalCertificateExpiring")) == 1
    # The PKI renews it for real: the copy follows, and the warning is not repeated.
    rollouts = stack.rollouts_completed(tcp)
    renew_postgres_pki(stack, datastore=store)
    stack.next_rollout(tcp, rollouts, timeout=30)
    wait_for(lambda: stack.rotations_done(tcp), 30, "the renewed copy's rotation")
    later = wait_for(
        lambda: (v := datastore_expiry(stack, store)) is not None and v > expiry and v,
        30,
        "the gauge moved on",
    )
    assert later > expiry + 86400


def summarize_client(client: dict[str, bytes]) -> datetime:
    return x509.load_pem_x509_certificate(client["server.crt"]).not_valid_after_utc

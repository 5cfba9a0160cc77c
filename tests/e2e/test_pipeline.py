"""The seed behaviours end to end: services as processes, a real nats-server, the stand-in.

Each test gets its own TCP; the last test checks the whole bus recording for key material.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import json
import re
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_binary_event

from certlc_dev.devenv import seed
from certlc_dev.devenv.stack import SERVICES, seed_tenant
from libs.pki import CA_SIGNED_KINDS, SecretKind, summarize
from tests.deploy import monitoring
from tests.e2e.harness import Stack, openssl_verify, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SEED_SECRETS = {  # name suffix -> (type, number of data keys), as `kubectl get secret` shows
    "admin-kubeconfig": ("Opaque", 1),
    "api-server-certificate": ("Opaque", 2),
    "api-server-kubelet-client-certificate": ("Opaque", 2),
    "ca": ("Opaque", 4),
    "controller-manager-kubeconfig": ("Opaque", 1),
    "datastore-certificate": ("Opaque", 3),
    "datastore-config": ("Opaque", 4),
    "front-proxy-ca-certificate": ("Opaque", 2),
    "front-proxy-client-certificate": ("Opaque", 2),
    "konnectivity-certificate": ("kubernetes.io/tls", 2),
    "konnectivity-kubeconfig": ("Opaque", 1),
    "sa-certificate": ("Opaque", 2),
    "scheduler-kubeconfig": ("Opaque", 1),
}
X509 = (
    "api-server-certificate",
    "api-server-kubelet-client-certificate",
    "front-proxy-client-certificate",
    "konnectivity-certificate",
)
KUBECONFIGS = (
    "admin-kubeconfig",
    "controller-manager-kubeconfig",
    "konnectivity-kubeconfig",
    "scheduler-kubeconfig",
)


def client_cert_of(kubeconfig: bytes) -> tuple[bytes, bytes]:
    """(embedded CA, client certificate) of a kubeconfig, read as plain YAML text."""
    text = kubeconfig.decode()
    ca = re.search(r"certificate-authority-data: (\S+)", text)
    crt = re.search(r"client-certificate-data: (\S+)", text)
    assert ca, "kubeconfig lacks certificate-authority-data"
    assert crt, "kubeconfig lacks client-certificate-data"
    return base64.b64decode(ca.group(1)), base64.b64decode(crt.group(1))


def test_a_new_tcp_gets_the_seed_secrets_and_one_rollout(stack: Stack) -> None:
    seed_tenant(stack.sim, "fresh")
    secrets = stack.first_issued("fresh")
    listed = {n.removeprefix("fresh-"): (s["type"], len(s["data"])) for n, s in secrets.items()}
    assert listed == SEED_SECRETS
    # the Deployment's first ReplicaSet, then exactly one rollout with the new material
    assert len(stack.quiet("fresh")) == 2
    template = stack.sim.get("deployments", "fresh")["spec"]["template"]["metadata"]["labels"]
    assert (
        template["component.kamaji.clastix.io/api-server-certificate"]
        == (
            secrets["fresh-api-server-certificate"]["metadata"]["annotations"][
                "kamaji.clastix.io/checksum"
            ]
        )
    )
    assert "component.kamaji.clastix.io/konnectivity-kubeconfig" in template
    status = stack.sim.get("tenantcontrolplanes", "fresh")["status"]
    assert status["kubeconfig"]["admin"]["secretName"] == "fresh-admin-kubeconfig"
    assert (
        status["addons"]["konnectivity"]["certificate"]["secretName"]
        == "fresh-konnectivity-certificate"
    )
    out = stack.kubectl("get", "secret", "-l", "kamaji.clastix.io/name=fresh")
    assert re.search(r"fresh-konnectivity-certificate\s+kubernetes.io/tls\s+2\s", out)


@pytest.mark.parametrize(("label", "names"), [("x509", X509), ("kubeconfig", KUBECONFIGS)])
def test_deleted_secrets_come_back_and_the_control_plane_rolls_out_once(
    stack: Stack, tenant: str, label: str, names: tuple[str, ...]
) -> None:
    before = stack.secrets(tenant)
    replicasets = stack.replicasets(tenant)
    out = stack.kubectl(
        "delete",
        "secret",
        "-l",
        f"kamaji.clastix.io/certificate_lifecycle_controller={label},kamaji.clastix.io/name={tenant}",
    )
    assert sorted(re.findall(r'secret "([^"]+)" deleted', out)) == sorted(
        f"{tenant}-{n}" for n in names
    )
    after = stack.settled(tenant, 13, timeout=15)
    for n in names:
        assert (
            after[f"{tenant}-{n}"]["metadata"]["uid"] != before[f"{tenant}-{n}"]["metadata"]["uid"]
        )
    untouched = set(SEED_SECRETS) - set(names)
    for n in untouched:
        assert (
            after[f"{tenant}-{n}"]["metadata"]["resourceVersion"]
            == before[f"{tenant}-{n}"]["metadata"]["resourceVersion"]
        )
    now = stack.quiet(tenant)
    assert len(now) == len(replicasets) + 1, f"expected one new ReplicaSet: {replicasets} -> {now}"
    pods = stack.kubectl("get", "pods", "-l", f"kamaji.clastix.io/name={tenant}")
    assert len(re.findall(r"4/4\s+Running\s+0", pods)) == 2, pods


def test_ca_rotation_goes_through_rotating_and_re_signs_everything_the_ca_signs(
    stack: Stack, tenant: str, tmp_path: Path
) -> None:
    before = stack.secrets(tenant)
    stack.kubectl("delete", "secret", f"{tenant}-ca")
    wait_for(
        lambda: stack.phase(tenant) == "CertificateAuthorityRotating",
        15,
        "CertificateAuthorityRotating",
    )
    wait_for(lambda: stack.phase(tenant) == "Ready", 30, "Ready after the CA rotation")
    after = stack.settled(tenant, 13)
    new_ca = stack.data(after[f"{tenant}-ca"])["ca.crt"]
    assert new_ca != stack.data(before[f"{tenant}-ca"])["ca.crt"]
    for kind in CA_SIGNED_KINDS:
        data = stack.data(after[f"{tenant}-{kind.value}"])
        if kind.value.endswith("kubeconfig"):
            embedded_ca, cert = client_cert_of(next(iter(data.values())))
            assert embedded_ca == new_ca, f"{kind.value} embeds the old CA"
        else:
            cert = (
                data.get("apiserver.crt")
                or data.get("apiserver-kubelet-client.crt")
                or data["tls.crt"]
            )
        openssl_verify(tmp_path, new_ca, cert)
    for n in (
        "front-proxy-ca-certificate",
        "front-proxy-client-certificate",
        "sa-certificate",
        "datastore-certificate",
        "datastore-config",
    ):
        assert (
            after[f"{tenant}-{n}"]["metadata"]["uid"] == before[f"{tenant}-{n}"]["metadata"]["uid"]
        )
        assert after[f"{tenant}-{n}"]["data"] == before[f"{tenant}-{n}"]["data"]
    assert stack.tap.audit(tenant, "ca-rotation-started")
    assert stack.tap.audit(tenant, "ca-rotation-completed")
    reasons = {
        e["reason"]
        for e in stack.sim.list("events", "default")
        if e["involvedObject"]["name"] == tenant
        and e["involvedObject"]["kind"] == "TenantControlPlane"
    }
    assert {
        "CertificateAuthorityRotating",
        "RolloutStarted",
        "RolloutCompleted",
        "CertificateAuthorityRotated",
    } <= reasons


def test_the_etcd_client_certificate_is_signed_by_the_datastore_ca(
    stack: Stack, tenant: str, tmp_path: Path
) -> None:
    ds_ca = stack.data(stack.sim.get("secrets", "default-etcd-certs", "kamaji-system"))["ca.crt"]
    data = stack.data(stack.secrets(tenant)[f"{tenant}-datastore-certificate"])
    assert data["ca.crt"] == ds_ca
    openssl_verify(tmp_path, ds_ca, data["server.crt"])


def test_a_postgresql_datastore_certificate_is_rebuilt_from_the_external_pki(stack: Stack) -> None:
    seed_tenant(stack.sim, "pg-tcp", datastore="postgres", driver="PostgreSQL")
    secrets = stack.settled("pg-tcp", 13)
    external = stack.data(stack.sim.get("secrets", "postgres-pki", "kamaji-system"))
    cert = secrets["pg-tcp-datastore-certificate"]
    assert stack.data(cert)["server.crt"] == external["tls.crt"]
    stack.sim.patch(
        "secrets",
        "pg-tcp-datastore-certificate",
        {"metadata": {"annotations": {"certs.kamaji.clastix.io/rotate": ""}}},
    )
    rebuilt = wait_for(
        lambda: (
            s
            if (s := stack.secrets("pg-tcp").get("pg-tcp-datastore-certificate"))
            and s["metadata"]["uid"] != cert["metadata"]["uid"]
            else None
        ),
        20,
        "the datastore certificate deleted and rebuilt",
    )
    assert stack.data(rebuilt)["server.crt"] == external["tls.crt"]
    assert rebuilt["metadata"]["annotations"]["certs.kamaji.clastix.io/rotate"] != ""


def test_malformed_and_refused_rotate_requests_change_nothing(stack: Stack, tenant: str) -> None:
    before = stack.secrets(tenant)

    async def ask(payload: bytes) -> tuple[dict[str, str], bytes]:
        nc = await nats.connect(stack.nats.url)
        try:
            msg = await nc.request("certlc.api.v1.rotate", payload, timeout=5)
            return dict(msg.headers or {}), msg.data
        finally:
            await nc.close()

    cases = [
        (b"{not json", "400"),
        (json.dumps({"type": "rotate.request", "namespace": "default"}).encode(), "400"),
        (
            json.dumps(
                {"type": "rotate.request", "namespace": "default", "tcp": tenant, "target": "bogus"}
            ).encode(),
            "400",
        ),
        (
            json.dumps(
                {"type": "rotate.request", "namespace": "default", "tcp": "nope", "target": "x509"}
            ).encode(),
            "404",
        ),
        (
            json.dumps(
                {
                    "type": "rotate.request",
                    "namespace": "default",
                    "tcp": tenant,
                    "target": "secret",
                    "secret": f"{tenant}-nope",
                }
            ).encode(),
            "404",
        ),
    ]
    for payload, code in cases:
        headers, body = asyncio.run(ask(payload))
        assert headers.get("Nats-Service-Error-Code") == code, (payload, headers)
        assert headers.get("Nats-Service-Error"), "an error reply names what was wrong"
        assert body == b""
    stack.sim.patch(
        "tenantcontrolplanes",
        tenant,
        {"metadata": {"annotations": {"kamaji.clastix.io/paused": ""}}},
    )

    def request(target: str, secret: str = "") -> bytes:
        body = {"type": "rotate.request", "namespace": "default", "tcp": tenant, "target": target}
        return json.dumps({**body, "secret": secret} if secret else body).encode()

    # Until lifecycle has seen the pause, a request for a Secret the TCP does not have is a
    # 404, which rotates nothing (an x509 request would be accepted and rotate); then a 423,
    # the pause being checked first.
    wait_for(
        lambda: (
            asyncio.run(ask(request("secret", f"{tenant}-nope")))[0].get("Nats-Service-Error-Code")
            == "423"
        ),
        10,
        "lifecycle seeing the pause",
    )
    headers, _ = asyncio.run(ask(request("x509")))
    assert headers.get("Nats-Service-Error-Code") == "423", headers
    assert "paused" in headers["Nats-Service-Error"]
    assert {n: s["metadata"]["resourceVersion"] for n, s in stack.secrets(tenant).items()} == {
        n: s["metadata"]["resourceVersion"] for n, s in before.items()
    }
    assert all(p.running() for p in stack.services.processes)


def test_an_accepted_rotate_request_re_issues_the_target(stack: Stack, tenant: str) -> None:
    before = stack.secrets(tenant)

    async def ask() -> bytes:
        nc = await nats.connect(stack.nats.url)
        try:
            req = {
                "type": "rotate.request",
                "namespace": "default",
                "tcp": tenant,
                "target": "kubeconfig",
                "requester": "e2e",
            }
            msg = await nc.request("certlc.api.v1.rotate", json.dumps(req).encode(), timeout=5)
            assert not msg.headers, msg.headers
            return bytes(msg.data)
        finally:
            await nc.close()

    reply = json.loads(asyncio.run(ask()))
    assert reply["type"] == "rotate.accepted"
    assert sorted(reply["secrets"]) == sorted(KUBECONFIGS)
    wait_for(
        lambda: all(
            stack.secrets(tenant)[f"{tenant}-{n}"]["metadata"]["resourceVersion"]
            != before[f"{tenant}-{n}"]["metadata"]["resourceVersion"]
            for n in KUBECONFIGS
        ),
        20,
        "the kubeconfigs re-issued",
    )
    assert stack.tap.audit(tenant, "rotation-requested")


def scrape(stack: Stack, service: str) -> str:
    port = stack.services.by_name(service)[0].port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_metrics_show_every_certificate_and_the_work_done(stack: Stack, tenant: str) -> None:
    secret = stack.secrets(tenant)[f"{tenant}-api-server-certificate"]
    not_after = summarize(SecretKind.APISERVER, stack.data(secret)).not_after
    labels = (
        f'kind="api-server-certificate",namespace="default",'
        f'secret="{tenant}-api-server-certificate",tcp="{tenant}"'
    )

    def gauge(name: str) -> float | None:
        found = re.search(
            rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", scrape(stack, "lifecycle"), re.M
        )
        return float(found.group(1)) if found else None

    assert (
        wait_for(lambda: gauge("certlc_certificate_expiration_timestamp_seconds"), 10, "the gauge")
        == not_after.timestamp()
    )
    renewal = gauge("certlc_certificate_renewal_timestamp_seconds")
    # Due a day before NotAfter, earlier by up to a quarter of that day (the jitter).
    assert renewal is not None
    latest = (not_after - timedelta(hours=24)).timestamp()
    assert latest - 6 * 3600 <= renewal <= latest
    ca_rows = re.findall(
        rf'certlc_certificate_expiration_timestamp_seconds\{{kind="ca",.*tcp="{tenant}"\}}',
        scrape(stack, "lifecycle"),
    )
    assert len(ca_rows) == 1
    assert re.search(
        r'^certlc_rotations_requested_total\{reason="missing"\} [1-9]',
        scrape(stack, "lifecycle"),
        re.M,
    )
    issuer = scrape(stack, "issuer")
    created = r'^certlc_secrets_written_total\{action="created",kind="ca"\} [1-9]'
    assert re.search(created, issuer, re.M)
    # keys for issuance: from the reserve, or generated on demand while it was still filling
    assert re.search(r'^certlc_issuer_reserved_keys\{algorithm="RSA-2048"\} \d', issuer, re.M)
    taken = r'^certlc_issuer_keys_taken_total\{source="(reserve|on-demand)"\} [1-9]'
    assert re.search(taken, issuer, re.M)
    assert re.search(
        r"^certlc_rollout_duration_seconds_count [1-9]", scrape(stack, "rollout"), re.M
    )


def test_a_deleted_datastore_is_reported(stack: Stack) -> None:
    """DataStore facts keep the compacted events stream true: a deleted one is reported too."""
    subject = "certlc.events.datastore.scratch"

    def facts() -> list[str]:
        return [json.loads(d)["type"] for s, _, d in list(stack.tap.messages) if s == subject]

    for obj in seed.etcd_datastore("scratch"):
        stack.sim.create(obj)
    wait_for(lambda: "datastore.observed" in facts(), 20, "the DataStore observed")
    stack.sim.delete("datastores", "scratch", namespace="")
    wait_for(lambda: facts()[-1:] == ["datastore.deleted"], 20, "the DataStore deleted")
    # in order; the tap on `>` also sees lifecycle's push deliveries, under the same subject
    assert list(dict.fromkeys(facts())) == ["datastore.observed", "datastore.deleted"]


def test_no_private_key_ever_crossed_the_bus(stack: Stack) -> None:
    """Runs last in the module: every message of every test above, against every key minted."""
    keys: list[bytes] = []
    for secret in stack.sim.list("secrets"):
        for key, value in (secret.get("data") or {}).items():
            raw = base64.b64decode(value)
            if b"PRIVATE KEY" in raw or key.endswith(".conf"):
                keys.extend(
                    line for line in raw.splitlines() if len(line) > 40 and b"-----" not in line
                )
    assert len(keys) > 100
    messages = list(stack.tap.messages)
    assert len(messages) > 100
    for subject, headers, data in messages:
        blob = data + json.dumps(headers).encode()
        assert b"PRIVATE KEY" not in blob, subject
        assert b"LS0tLS1CRUdJTi" not in blob, subject  # base64 of "-----BEGIN"
        for line in keys[:: max(1, len(keys) // 400)]:
            assert line not in blob, f"key material on {subject}"
    for p in stack.services.processes:
        assert b"PRIVATE KEY" not in p.log_text().encode(), f"key material in the {p.name} log"


def test_the_services_export_every_metric_the_alerts_and_the_dashboard_use(
    stack: Stack, tenant: str
) -> None:
    pages = {service: scrape(stack, service) for service in SERVICES}
    served = set().union(*(monitoring.exported_names(page) for page in pages.values()))
    used = monitoring.metrics_in(
        monitoring.dashboard_queries() + [r["expr"] for r in monitoring.alerts().values()]
    )
    assert used <= served, used - served
    for service, page in pages.items():
        assert re.search(r"^certlc_ready 1\.0$", page, re.M), service
    assert re.search(r"^certlc_rollout_timeout_seconds [1-9]", pages["rollout"], re.M)
    # a certificate of the fleet, as the expiry panel lists it
    assert re.search(
        rf'^certlc_certificate_expiration_timestamp_seconds\{{.*tcp="{tenant}"',
        pages["lifecycle"],
        re.M,
    )


def test_the_audit_trail_of_a_tcp_reads_as_cloudevents(stack: Stack, tenant: str) -> None:
    """What the running services published, read back with the CloudEvents SDK."""

    async def read() -> list[tuple[dict[str, str], bytes]]:
        nc = await nats.connect(stack.nats.url)
        js = nc.jetstream()
        sub = await js.subscribe(f"certlc.audit.default.{tenant}.>", ordered_consumer=True)
        out = []
        while True:  # the backlog, up to a second of quiet
            try:
                msg = await sub.next_msg(timeout=1)
            except nats.errors.TimeoutError:
                break
            out.append((dict(msg.headers or {}), bytes(msg.data)))
        await nc.close()
        return out

    types = set()
    for headers, body in asyncio.run(read()):
        event = from_binary_event(HTTPMessage(headers=headers, body=body))
        assert event.get_id() == headers["Nats-Msg-Id"]
        assert event.get_subject() == f"default/{tenant}"
        assert event.get_data() == json.loads(body)
        types.add(event.get_type())
    assert {
        "io.certlc.rotation.requested.v1",
        "io.certlc.certificate.issued.v1",
        "io.certlc.secret.written.v1",
        "io.certlc.rollout.started.v1",
        "io.certlc.rollout.completed.v1",
    } <= types, types


def test_the_running_lifecycle_is_a_nats_service(stack: Stack, tenant: str) -> None:
    async def ask() -> tuple[dict[str, Any], dict[str, Any]]:
        nc = await nats.connect(stack.nats.url)
        await nc.request(
            "certlc.api.v1.rotate", b"{not json", timeout=5
        )  # one request, answered with an error
        info = json.loads((await nc.request("$SRV.INFO.certlc", b"", timeout=5)).data)
        stats = json.loads((await nc.request("$SRV.STATS.certlc", b"", timeout=5)).data)
        await nc.close()
        return info, stats

    info, stats = asyncio.run(ask())
    assert info["version"] == importlib.metadata.version("certlc")
    (endpoint,) = info["endpoints"]
    assert endpoint["subject"] == "certlc.api.v1.rotate"
    assert endpoint["queue_group"] == "certlc-lifecycle"
    (counts,) = stats["endpoints"]
    assert counts["num_requests"] >= 1
    assert counts["num_errors"] >= 1
    assert counts["last_error"].startswith("400:")

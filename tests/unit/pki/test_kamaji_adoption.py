"""Adoption: every Secret Kamaji makes (HEAD, and the seed's older Kamaji) is valid as it is.

The Secrets come from tests/fixtures/kamaji, written from Kamaji's code with `cryptography`
alone. For an etcd and a PostgreSQL TCP, libs.pki finds no reason to re-issue any of them, the
watcher reports no problem, and lifecycle decides nothing: no write, no rollout.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest

from libs.pki import (
    SecretKind,
    Signer,
    TcpSpec,
    apiserver_sans,
    gather,
    kind_from_secret_name,
    kubeconfig_server,
    managed_kinds,
    profile,
    renewal_reasons,
)
from services.lifecycle.policy import PolicySettings, TcpState, decide
from services.watcher.facts import observe_secret, observe_tcp
from tests.fixtures.kamaji import Flavour, KamajiSet, kamaji_set

K = SecretKind
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MADE = NOW - timedelta(days=30)  # the set was made a month ago
CASES = [
    (driver, flavour)
    for driver in ("etcd", "PostgreSQL")
    for flavour in (Flavour.HEAD, Flavour.SEED)
]


@functools.cache
def made(driver: str, flavour: Flavour) -> KamajiSet:
    return kamaji_set(now=MADE, driver=driver, flavour=flavour, cert_sans=("api.example.com",))


def spec_of(s: KamajiSet) -> TcpSpec:
    return TcpSpec.from_resource(s.tcp)


def kinds_of(s: KamajiSet) -> list[SecretKind]:
    name = s.tcp["metadata"]["name"]
    found = [kind_from_secret_name(name, n) for n in s.secrets]
    assert None not in found
    return [k for k in found if k is not None]


def signer_pem(s: KamajiSet, kind: SecretKind) -> bytes | None:
    return {
        Signer.CA: s.data("ca")["ca.crt"],
        Signer.FRONT_PROXY_CA: s.data("front-proxy-ca-certificate")["front-proxy-ca.crt"],
        Signer.DATASTORE_CA: s.datastore_ca.cert_pem,
    }.get(profile(kind).signer)


@pytest.mark.parametrize(("driver", "flavour"), CASES)
def test_a_kamaji_set_has_the_thirteen_secrets(driver: str, flavour: Flavour) -> None:
    s = made(driver, flavour)
    assert sorted(kinds_of(s)) == sorted(managed_kinds(spec_of(s)))
    keys = set(s.data("admin-kubeconfig"))
    if flavour is Flavour.HEAD:
        assert keys == {"admin.conf", "admin.svc", "super-admin.conf", "super-admin.svc"}
    else:
        assert keys == {"admin.conf"}


@pytest.mark.parametrize(("driver", "flavour"), CASES)
def test_libs_pki_finds_no_reason_to_reissue_any_kamaji_secret(
    driver: str, flavour: Flavour
) -> None:
    s = made(driver, flavour)
    tcp = spec_of(s)
    for kind in kinds_of(s):
        data = s.data(kind.value)
        reasons = renewal_reasons(
            kind,
            data,
            tcp,
            now=NOW,
            current_ca_pem=s.data("ca")["ca.crt"],
            signer_ca_pem=signer_pem(s, kind),
        )
        assert reasons == (), f"{kind.value}: {[r.message for r in reasons]}"


def test_kamaji_subjects_are_the_ones_certlc_now_accepts() -> None:
    """The Kamaji choices this test set exercises, read back from the certificates."""
    s = made("etcd", Flavour.HEAD)
    client = gather(K.DATASTORE_CERTIFICATE, s.data("datastore-certificate")).cert
    assert client is not None
    assert client.subject.rfc4514_string() == f"CN={s.tcp['metadata']['uid']},O=system:masters"
    assert s.data("datastore-config")["DB_CONNECTION_STRING"] == b""
    admin = gather(K.ADMIN_KUBECONFIG, s.data("admin-kubeconfig"))
    identities = {m.entry.key: m.cert.subject.rfc4514_string() for m in (admin, *admin.others)
                  if m.entry is not None and m.cert is not None}  # fmt: skip
    assert identities == {
        "admin.conf": "CN=kubernetes-admin,O=kubeadm:cluster-admins",
        "admin.svc": "CN=kubernetes-admin,O=kubeadm:cluster-admins",
        "super-admin.conf": "CN=kubernetes-super-admin,O=system:masters",
        "super-admin.svc": "CN=kubernetes-super-admin,O=system:masters",
    }
    seed = gather(K.ADMIN_KUBECONFIG, made("etcd", Flavour.SEED).data("admin-kubeconfig"))
    assert seed.cert is not None
    assert seed.cert.subject.rfc4514_string() == "CN=kubernetes-admin,O=system:masters"


@pytest.mark.parametrize(("driver", "flavour"), CASES)
def test_the_watcher_reports_no_problem_and_lifecycle_decides_nothing(
    driver: str, flavour: Flavour
) -> None:
    s = made(driver, flavour)
    tcp = spec_of(s)
    name = tcp.name
    observed = {
        kind: observe_secret(
            s.secret(kind.value),
            name,
            kind,
            tcp=tcp,
            ca_pem=s.data("ca")["ca.crt"],
            front_proxy_ca_pem=s.data("front-proxy-ca-certificate")["front-proxy-ca.crt"],
            datastore_ca_pem=None,  # as the watcher's bulk check: the bundled ca.crt is used
            now=NOW,
        )
        for kind in kinds_of(s)
    }
    for kind, facts in observed.items():
        assert facts.problems == (), f"{kind.value}: {facts.problems}"
    decision = decide(TcpState(observe_tcp(s.tcp, NOW), observed), NOW, PolicySettings())
    assert decision.rotations == ()
    assert decision.loop_trips == ()
    assert decision.next_check is not None  # it will look again before the first expiry


@pytest.mark.parametrize(
    ("component", "key", "mutate", "code"),
    [
        ("admin-kubeconfig", "super-admin.svc", "server", "kubeconfig-server-mismatch"),
        ("admin-kubeconfig", "super-admin.conf", "garbage", "unparseable"),
        ("admin-kubeconfig", "admin.svc", "swap", "subject-mismatch"),
        ("datastore-config", "DB_CONNECTION_STRING", "empty", "missing-key"),
    ],
)
def test_kamaji_keys_are_still_checked(component: str, key: str, mutate: str, code: str) -> None:
    """Accepting Kamaji's keys does not mean ignoring them: damage in any of them is found."""
    s = made("PostgreSQL", Flavour.HEAD)
    data = s.data(component)
    if mutate == "server":
        data[key] = data[key].replace(b".default.svc:6443", b".elsewhere.svc:6443")
    elif mutate == "garbage":
        data[key] = b"not: [a kubeconfig"
    elif mutate == "swap":
        data[key] = data["super-admin.svc"]  # the super-admin identity under an admin key
    else:
        data[key] = b""  # PostgreSQL needs its endpoint
    reasons = renewal_reasons(
        K(component), data, spec_of(s), now=NOW, current_ca_pem=s.data("ca")["ca.crt"]
    )
    assert [(r.code.value, r.key) for r in reasons] == [(code, key)]


def test_a_kubeconfig_key_expiring_first_is_the_one_that_matters() -> None:
    """super-admin.conf expiring before admin.conf makes the Secret due (and the summary's)."""
    s = made("etcd", Flavour.HEAD)
    data = s.data("admin-kubeconfig")
    short = kamaji_set(now=NOW - timedelta(days=365) + timedelta(hours=2), driver="etcd")
    data["super-admin.conf"] = short.data("admin-kubeconfig")["super-admin.conf"]
    material = gather(K.ADMIN_KUBECONFIG, data)
    assert material.cert_key == "super-admin.conf"
    reasons = renewal_reasons(K.ADMIN_KUBECONFIG, data, spec_of(s), now=NOW)
    assert {(r.code.value, r.key) for r in reasons} >= {("expiring", "super-admin.conf")}


@pytest.mark.parametrize("hostname", ["k8s-126.tenants.example.com", "k8s-126.example.com:443"])
def test_an_ingress_tcp_is_adopted_and_minted_for_as_kamaji_does(hostname: str) -> None:
    """Kamaji points admin.conf at the ingress hostname and puts it in the apiserver SANs."""
    s = kamaji_set(now=MADE, ingress_hostname=hostname)
    tcp = spec_of(s)
    host, _, port = hostname.partition(":")
    assert tcp.public_endpoint == (host, int(port or 6443))
    for kind in kinds_of(s):
        reasons = renewal_reasons(
            kind,
            s.data(kind.value),
            tcp,
            now=NOW,
            current_ca_pem=s.data("ca")["ca.crt"],
            signer_ca_pem=signer_pem(s, kind),
        )
        assert reasons == (), f"{kind.value}: {[r.message for r in reasons]}"
    assert host in apiserver_sans(tcp).dns
    assert kubeconfig_server(K.ADMIN_KUBECONFIG, tcp, "super-admin.conf") == (
        f"https://{host}:{port or 6443}"
    )
    assert kubeconfig_server(K.ADMIN_KUBECONFIG, tcp, "admin.svc") == (
        "https://k8s-126.default.svc:6443"
    )


def test_the_ingress_hostname_wins_over_the_gateway_one() -> None:
    s = made("etcd", Flavour.HEAD)
    obj = {**s.tcp, "spec": {**s.tcp["spec"], "controlPlane": {
        "gateway": {"hostname": "gw.example.com"}, "ingress": {"hostname": "in.example.com"},
    }}}  # fmt: skip
    assert TcpSpec.from_resource(obj).public_endpoint == ("in.example.com", 6443)
    del obj["spec"]["controlPlane"]["ingress"]
    assert TcpSpec.from_resource(obj).public_endpoint == ("gw.example.com", 6443)

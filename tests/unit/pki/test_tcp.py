"""TcpSpec.from_resource defaults and errors, required apiserver SANs, managed kinds."""

from __future__ import annotations

from typing import Any

import pytest

from libs.pki import (
    KONNECTIVITY_KINDS,
    SecretKind,
    SpecError,
    SubjectAltNames,
    TcpSpec,
    apiserver_sans,
    first_service_ip,
    managed_kinds,
)

from ._support import tcp_resource


def test_should_apply_the_reference_defaults_to_a_minimal_resource() -> None:
    tcp = TcpSpec.from_resource(
        {
            "metadata": {"name": "t", "namespace": "n"},
            "spec": {"networkProfile": {"address": "1.2.3.4"}},
        }
    )
    assert tcp == TcpSpec(
        name="t",
        namespace="n",
        address="1.2.3.4",
        uid="",
        advertise_address="1.2.3.4",
        port=6443,
        cert_sans=(),
        cluster_domain="cluster.local",
        service_cidr="10.96.0.0/16",
        konnectivity=False,
        datastore="default",
        datastore_driver="etcd",
        datastore_user="n_t",
        datastore_schema="n_t",
    )
    assert tcp.endpoint == "1.2.3.4:6443"


def test_should_read_every_certificate_shaping_field_of_a_full_resource() -> None:
    obj = tcp_resource(
        advertiseAddress="10.1.1.1",
        port=8443,
        certSANs=["x.example.com"],
        clusterDomain="corp.local",
        serviceCidr="10.200.0.0/16",
    )
    obj["spec"]["dataStore"] = "mysql-1"
    obj["spec"]["dataStoreSchema"] = "schema_1"
    obj["status"] = {"storage": {"driver": "MySQL", "setup": {"user": "user_1"}}}
    tcp = TcpSpec.from_resource(obj)
    assert (tcp.name, tcp.namespace, tcp.uid) == ("k8s-126", "default", "0b0e-uid")
    assert (tcp.address, tcp.advertise_address, tcp.port) == ("172.18.255.200", "10.1.1.1", 8443)
    assert tcp.cert_sans == ("x.example.com",)
    assert (tcp.cluster_domain, tcp.service_cidr) == ("corp.local", "10.200.0.0/16")
    assert tcp.konnectivity
    assert (tcp.datastore, tcp.datastore_driver) == ("mysql-1", "MySQL")
    assert (tcp.datastore_user, tcp.datastore_schema) == ("user_1", "schema_1")


@pytest.mark.parametrize(
    ("addons", "enabled"),
    [(None, False), ({}, False), ({"konnectivity": None}, False), ({"konnectivity": {}}, True)],
)
def test_should_enable_konnectivity_only_when_the_addon_is_present(
    addons: dict[str, Any] | None, enabled: bool
) -> None:
    obj = tcp_resource()
    obj["spec"]["addons"] = addons
    tcp = TcpSpec.from_resource(obj)
    assert tcp.konnectivity is enabled
    assert (set(managed_kinds(tcp)) >= KONNECTIVITY_KINDS) is enabled
    assert len(managed_kinds(tcp)) == (13 if enabled else 11)


def test_should_fall_back_to_the_control_plane_endpoint_when_the_address_is_empty() -> None:
    obj = tcp_resource(address="")
    obj["status"] = {"controlPlaneEndpoint": "192.168.1.10:6443"}
    assert TcpSpec.from_resource(obj).address == "192.168.1.10"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o["metadata"].pop("name"), "metadata.name"),
        (lambda o: o["spec"]["networkProfile"].pop("address"), "has no address"),
        (lambda o: o["spec"]["networkProfile"].update(port="https"), "not a number"),
        (lambda o: o["spec"]["networkProfile"].update(port=70000), "out of range"),
        (lambda o: o["spec"]["networkProfile"].update(certSANs="a.b"), "must be a list"),
        (lambda o: o["spec"]["networkProfile"].update(certSANs=["bad san!"]), "bad san!"),
        (lambda o: o["spec"]["networkProfile"].update(serviceCidr="10.96.0.0/33"), "not a network"),
        (lambda o: o.update(status={"storage": {"driver": "sqlite"}}), "sqlite"),
        (lambda o: o.update(spec=[]), "'spec' must be an object"),
    ],
)
def test_should_reject_a_resource_that_cannot_shape_certificates(mutate: Any, message: str) -> None:
    obj = tcp_resource()
    mutate(obj)
    with pytest.raises(SpecError, match=message):
        TcpSpec.from_resource(obj)


@pytest.mark.parametrize(
    ("cidr", "first"),
    [
        ("10.96.0.0/16", "10.96.0.1"),
        ("10.96.0.5/12", "10.96.0.1"),
        ("172.20.0.0/24,fd00::/108", "172.20.0.1"),
        ("fd00:10:96::/112", "fd00:10:96::1"),
    ],
)
def test_should_take_the_first_address_of_the_primary_service_cidr(cidr: str, first: str) -> None:
    assert first_service_ip(cidr) == first


def test_should_require_the_reference_apiserver_sans() -> None:
    tcp = TcpSpec(
        name="t",
        namespace="ns",
        address="1.2.3.4",
        advertise_address="5.6.7.8",
        cert_sans=("API.Example.com.", "2001:DB8::1", "9.9.9.9"),
        cluster_domain="corp.local",
        service_cidr="10.50.0.0/16",
    )
    assert apiserver_sans(tcp) == SubjectAltNames(
        dns=(
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.corp.local",
            "localhost",
            "t",
            "t.ns.svc",
            "t.ns.svc.cluster.local",
            "api.example.com",
        ),
        ips=("10.50.0.1", "127.0.0.1", "1.2.3.4", "5.6.7.8", "2001:db8::1", "9.9.9.9"),
    )


def test_should_put_a_dns_address_among_the_dns_sans_without_duplicates() -> None:
    tcp = TcpSpec(name="t", namespace="ns", address="api.example.com", cert_sans=("127.0.0.1",))
    sans = apiserver_sans(tcp)
    assert sans.dns.count("api.example.com") == 1
    assert sans.ips == ("10.96.0.1", "127.0.0.1")


def test_should_list_managed_kinds_in_secret_kind_order() -> None:
    tcp = TcpSpec(name="t", namespace="ns", address="1.2.3.4", konnectivity=True)
    assert managed_kinds(tcp) == tuple(SecretKind)

"""Every profile as the reference says: Secret layout, subjects, usages, validity, SANs."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libs.pki import (
    PROFILES,
    Category,
    KeyAlgorithm,
    Lifecycle,
    SecretKind,
    Signer,
    mint_secret_data,
)

from ._support import NOW, TCP, minted

K = SecretKind
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH

# kind: (secret type, data keys, lifecycle label value)
LAYOUT = {
    K.CA: ("Opaque", {"ca.crt", "ca.key", "tls.crt", "tls.key"}, None),
    K.FRONT_PROXY_CA: ("Opaque", {"front-proxy-ca.crt", "front-proxy-ca.key"}, None),
    K.SA: ("Opaque", {"sa.pub", "sa.key"}, None),
    K.APISERVER: ("Opaque", {"apiserver.crt", "apiserver.key"}, "x509"),
    K.APISERVER_KUBELET_CLIENT: (
        "Opaque",
        {"apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"},
        "x509",
    ),
    K.FRONT_PROXY_CLIENT: ("Opaque", {"front-proxy-client.crt", "front-proxy-client.key"}, "x509"),
    K.DATASTORE_CERTIFICATE: ("Opaque", {"ca.crt", "server.crt", "server.key"}, None),
    K.DATASTORE_CONFIG: (
        "Opaque",
        {"DB_CONNECTION_STRING", "DB_SCHEMA", "DB_USER", "DB_PASSWORD"},
        None,
    ),
    K.KONNECTIVITY_CERTIFICATE: ("kubernetes.io/tls", {"tls.crt", "tls.key"}, "x509"),
    K.ADMIN_KUBECONFIG: ("Opaque", {"admin.conf"}, "kubeconfig"),
    K.CONTROLLER_MANAGER_KUBECONFIG: ("Opaque", {"controller-manager.conf"}, "kubeconfig"),
    K.SCHEDULER_KUBECONFIG: ("Opaque", {"scheduler.conf"}, "kubeconfig"),
    K.KONNECTIVITY_KUBECONFIG: ("Opaque", {"konnectivity-server.conf"}, "kubeconfig"),
}

# kind: (CN, O, ext key usages, signer, validity)
YEAR, DECADE = timedelta(hours=8760), timedelta(hours=87600)
SUBJECTS = {
    K.CA: ("kubernetes", (), (), Signer.SELF, DECADE),
    K.FRONT_PROXY_CA: ("front-proxy-ca", (), (), Signer.SELF, DECADE),
    K.APISERVER: ("kube-apiserver", (), (SERVER,), Signer.CA, YEAR),
    K.APISERVER_KUBELET_CLIENT: (
        "kube-apiserver-kubelet-client",
        ("kubeadm:cluster-admins",),
        (CLIENT,),
        Signer.CA,
        YEAR,
    ),
    K.FRONT_PROXY_CLIENT: ("front-proxy-client", (), (CLIENT,), Signer.FRONT_PROXY_CA, YEAR),
    # O as Kamaji's NewCertificateTemplate (internal/crypto/crypto.go)
    K.DATASTORE_CERTIFICATE: (
        "default_k8s_126",
        ("system:masters",),
        (CLIENT,),
        Signer.DATASTORE_CA,
        YEAR,
    ),
    K.KONNECTIVITY_CERTIFICATE: (
        "system:konnectivity-server",
        ("system:masters",),
        (CLIENT, SERVER),
        Signer.CA,
        YEAR,
    ),
    K.ADMIN_KUBECONFIG: (
        "kubernetes-admin",
        ("kubeadm:cluster-admins",),
        (CLIENT,),
        Signer.CA,
        YEAR,
    ),
    K.CONTROLLER_MANAGER_KUBECONFIG: (
        "system:kube-controller-manager",
        (),
        (CLIENT,),
        Signer.CA,
        YEAR,
    ),
    K.SCHEDULER_KUBECONFIG: ("system:kube-scheduler", (), (CLIENT,), Signer.CA, YEAR),
    K.KONNECTIVITY_KUBECONFIG: (
        "system:konnectivity-server",
        ("system:masters",),
        (CLIENT,),
        Signer.CA,
        YEAR,
    ),
}


def leaf_of(kind: SecretKind, data: dict[str, bytes]) -> tuple[x509.Certificate, bytes]:
    """Certificate and key PEM of a Secret, read independently of libs.pki's own parser."""
    prof = PROFILES[kind]
    if prof.kubeconfig_key:
        doc = yaml.safe_load(data[prof.kubeconfig_key])
        user = doc["users"][0]["user"]
        cert_pem = base64.b64decode(user["client-certificate-data"])
        return x509.load_pem_x509_certificate(cert_pem), base64.b64decode(user["client-key-data"])
    assert prof.cert_key is not None
    assert prof.private_key_key is not None
    return x509.load_pem_x509_certificate(data[prof.cert_key]), data[prof.private_key_key]


@pytest.mark.parametrize("kind", list(SecretKind))
def test_should_describe_each_secret_layout_as_the_reference_table(kind: SecretKind) -> None:
    secret_type, keys, lifecycle = LAYOUT[kind]
    prof = PROFILES[kind]
    assert prof.secret_type == secret_type
    assert set(prof.data_keys) == keys
    assert (prof.lifecycle.value if prof.lifecycle else None) == lifecycle
    assert prof.suffix == kind.value


@pytest.mark.parametrize("kind", list(SecretKind))
def test_should_mint_exactly_the_profile_data_keys(kind: SecretKind) -> None:
    assert set(minted().secret(kind)) == set(PROFILES[kind].data_keys)


@pytest.mark.parametrize("kind", list(SUBJECTS))
def test_should_mint_subject_usages_and_validity_of_the_kubeadm_profile(kind: SecretKind) -> None:
    cn, orgs, ekus, signer, validity = SUBJECTS[kind]
    cert, key_pem = leaf_of(kind, minted().secret(kind))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert (
        tuple(a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        == orgs
    )
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + validity
    assert PROFILES[kind].signer is signer
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert usage.critical
    assert constraints.critical
    assert usage.value.digital_signature
    assert usage.value.key_encipherment
    assert usage.value.key_cert_sign is (signer is Signer.SELF)
    assert constraints.value.ca is (signer is Signer.SELF)
    if ekus:
        assert tuple(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus
    else:
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    public = cert.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == 2048


@pytest.mark.parametrize("kind", list(SUBJECTS))
def test_should_sign_with_the_profile_signer_and_link_aki_to_its_ski(kind: SecretKind) -> None:
    cert, _ = leaf_of(kind, minted().secret(kind))
    signer = minted().signers.get(PROFILES[kind].signer)
    issuer = cert if signer is None else signer.certificate
    cert.verify_directly_issued_by(issuer)
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    if signer is not None:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest


@pytest.mark.parametrize("kind", [K.CA, K.FRONT_PROXY_CA])
def test_should_give_a_ca_a_dns_san_equal_to_its_common_name(kind: SecretKind) -> None:
    cert, _ = leaf_of(kind, minted().secret(kind))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [SUBJECTS[kind][0]]


@pytest.mark.parametrize(
    "kind", [k for k in SUBJECTS if k not in (K.CA, K.FRONT_PROXY_CA, K.APISERVER)]
)
def test_should_give_client_certificates_no_san(kind: SecretKind) -> None:
    cert, _ = leaf_of(kind, minted().secret(kind))
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_should_give_the_apiserver_every_reference_san() -> None:
    cert, _ = leaf_of(K.APISERVER, minted().secret(K.APISERVER))
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "localhost",
        "k8s-126",
        "k8s-126.default.svc",
        "k8s-126.default.svc.cluster.local",
        "api.example.com",
    ]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [
        "10.96.0.1",
        "127.0.0.1",
        "172.18.255.200",
        "10.0.0.10",
    ]


def test_should_copy_ca_crt_and_ca_key_into_tls_keys_for_cluster_api() -> None:
    data = minted().secret(K.CA)
    assert data["tls.crt"] == data["ca.crt"]
    assert data["tls.key"] == data["ca.key"]


def test_should_use_random_positive_serials_of_more_than_64_bits() -> None:
    serials = [leaf_of(k, minted().secret(k))[0].serial_number for k in SUBJECTS]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**159 for s in serials)
    assert max(s.bit_length() for s in serials) > 64


def test_should_write_sa_pub_as_the_public_half_of_sa_key() -> None:
    data = minted().secret(K.SA)
    key = serialization.load_pem_private_key(data["sa.key"], password=None)
    assert data["sa.key"].startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert data["sa.pub"].startswith(b"-----BEGIN PUBLIC KEY-----")
    assert data["sa.pub"] == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_should_bundle_the_datastore_ca_in_the_datastore_certificate() -> None:
    assert (
        minted().secret(K.DATASTORE_CERTIFICATE)["ca.crt"]
        == minted().signers[Signer.DATASTORE_CA].cert_pem
    )


def test_should_mint_ecdsa_p256_sec1_keys_without_key_encipherment_when_asked() -> None:
    signer = minted().signers[Signer.CA]
    data = mint_secret_data(K.APISERVER, TCP, now=NOW, signer=signer, algorithm=KeyAlgorithm.ECDSA)
    cert = x509.load_pem_x509_certificate(data["apiserver.crt"])
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    assert data["apiserver.key"].startswith(b"-----BEGIN EC PRIVATE KEY-----")
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert not usage.key_encipherment


def test_should_honour_a_validity_override_for_short_lived_certificates() -> None:
    signer = minted().signers[Signer.CA]
    data = mint_secret_data(
        K.APISERVER_KUBELET_CLIENT, TCP, now=NOW, signer=signer, validity=timedelta(hours=2)
    )
    cert = x509.load_pem_x509_certificate(data["apiserver-kubelet-client.crt"])
    assert cert.not_valid_after_utc == NOW + timedelta(hours=2)


def test_should_classify_each_kind_in_one_category() -> None:
    assert {k for k, p in PROFILES.items() if p.category is Category.CA} == {K.CA, K.FRONT_PROXY_CA}
    assert {k for k, p in PROFILES.items() if p.category is Category.KUBECONFIG} == {
        k for k, p in PROFILES.items() if p.lifecycle is Lifecycle.KUBECONFIG
    }
    assert PROFILES[K.SA].category is Category.KEYPAIR
    assert PROFILES[K.DATASTORE_CONFIG].category is Category.CONFIG

"""The thirteen Secrets of a TenantControlPlane and the certificate profile of each.

This module decides *what* every Secret must contain: its name suffix, Secret type, data keys,
lifecycle label, which CA signs it, and the subject, key usages and validity of the certificate
in it (kubeadm defaults, see docs/pki.md and the Kamaji reference). It holds values only; the
minting, rendering and validation modules read these profiles so that the rules are spelled once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

LEAF_VALIDITY = timedelta(hours=8760)
"""kubeadm's leaf certificate validity: one year."""

CA_VALIDITY = timedelta(hours=87600)
"""kubeadm's CA validity: ten years."""

BACKDATE = timedelta(minutes=5)
"""NotBefore is set this far in the past, to tolerate clock skew between machines."""


class SecretKind(StrEnum):
    """One of the Secrets of a TenantControlPlane; the value is the Secret name suffix."""

    CA = "ca"
    FRONT_PROXY_CA = "front-proxy-ca-certificate"
    SA = "sa-certificate"
    APISERVER = "api-server-certificate"
    APISERVER_KUBELET_CLIENT = "api-server-kubelet-client-certificate"
    FRONT_PROXY_CLIENT = "front-proxy-client-certificate"
    DATASTORE_CERTIFICATE = "datastore-certificate"
    DATASTORE_CONFIG = "datastore-config"
    KONNECTIVITY_CERTIFICATE = "konnectivity-certificate"
    ADMIN_KUBECONFIG = "admin-kubeconfig"
    CONTROLLER_MANAGER_KUBECONFIG = "controller-manager-kubeconfig"
    SCHEDULER_KUBECONFIG = "scheduler-kubeconfig"
    KONNECTIVITY_KUBECONFIG = "konnectivity-kubeconfig"


class Category(StrEnum):
    """What a Secret holds, which decides how it is minted and checked."""

    CA = "ca"
    KEYPAIR = "keypair"
    X509 = "x509"
    KUBECONFIG = "kubeconfig"
    CONFIG = "config"


class Signer(StrEnum):
    """Which CA signs the certificate of a Secret."""

    CA = "ca"
    FRONT_PROXY_CA = "front-proxy-ca"
    DATASTORE_CA = "datastore-ca"
    SELF = "self"
    NONE = "none"


class KeyUsage(StrEnum):
    """X.509 key usages used by the kubeadm profiles."""

    DIGITAL_SIGNATURE = "digital-signature"
    KEY_ENCIPHERMENT = "key-encipherment"
    CERT_SIGN = "cert-sign"


class ExtKeyUsage(StrEnum):
    """X.509 extended key usages used by the kubeadm profiles."""

    SERVER_AUTH = "server-auth"
    CLIENT_AUTH = "client-auth"


class Endpoint(StrEnum):
    """Where a kubeconfig's `server` points (the URL itself: `kubeconfig.endpoint_url`)."""

    PUBLIC = "public"  # https://<advertiseAddress, else address>:<port>, as kubeadm's admin.conf
    SERVICE = "service"  # https://<tcp>.<namespace>.svc:<port>, Kamaji's in-cluster *.svc keys
    LOOPBACK = "loopback"  # https://127.0.0.1:<port>, the components beside the apiserver
    LOCALHOST = "localhost"  # https://localhost:<port>, Kamaji's konnectivity-server.conf


@dataclass(frozen=True, slots=True)
class KubeconfigEntry:
    """One kubeconfig data key of a kubeconfig Secret: its client identity and its server.

    `accepted_organizations` are further O sets a valid existing certificate may carry (an
    older kubeadm's); `organizations` is what certlc mints.
    """

    key: str
    common_name: str
    organizations: tuple[str, ...]
    endpoint: Endpoint
    accepted_organizations: tuple[tuple[str, ...], ...] = ()

    @property
    def valid_organizations(self) -> tuple[tuple[str, ...], ...]:
        """Every O set a valid certificate of this key may carry, the minted one first."""
        return (self.organizations, *self.accepted_organizations)


class Lifecycle(StrEnum):
    """Values of the `kamaji.clastix.io/certificate_lifecycle_controller` label."""

    X509 = "x509"
    KUBECONFIG = "kubeconfig"


LEAF_KEY_USAGES = (KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT)
CA_KEY_USAGES = (KeyUsage.DIGITAL_SIGNATURE, KeyUsage.KEY_ENCIPHERMENT, KeyUsage.CERT_SIGN)


@dataclass(frozen=True, slots=True)
class SecretProfile:
    """Everything fixed about one Secret kind.

    `cert_key`/`private_key_key` name the data keys of the certificate that matters (the leaf,
    or the CA certificate of a CA Secret); `kubeconfig_key` names the kubeconfig of kubeconfig
    Secrets. `sensitive_keys` hold secrets (private keys, kubeconfigs with embedded keys,
    passwords). `common_name` is None where it depends on the TCP (the datastore user).
    """

    kind: SecretKind
    secret_type: str
    data_keys: tuple[str, ...]
    lifecycle: Lifecycle | None
    category: Category
    signer: Signer
    common_name: str | None = None
    organizations: tuple[str, ...] = ()
    key_usages: tuple[KeyUsage, ...] = ()
    ext_key_usages: tuple[ExtKeyUsage, ...] = ()
    validity: timedelta | None = None
    cert_key: str | None = None
    private_key_key: str | None = None
    kubeconfig_key: str | None = None
    sensitive_keys: frozenset[str] = frozenset()
    optional_keys: tuple[str, ...] = ()
    kubeconfigs: tuple[KubeconfigEntry, ...] = ()
    may_be_empty: frozenset[str] = frozenset()
    accepted_organizations: tuple[tuple[str, ...], ...] = ()

    @property
    def known_keys(self) -> tuple[str, ...]:
        """Every data key certlc knows for this kind: required, then optional."""
        return (*self.data_keys, *self.optional_keys)

    @property
    def valid_organizations(self) -> tuple[tuple[str, ...], ...]:
        """Every O set a valid certificate of this kind may carry, the minted one first."""
        return (self.organizations, *self.accepted_organizations)

    def kubeconfig_entry(self, key: str) -> KubeconfigEntry:
        """The entry of kubeconfig data key `key`; KeyError for another key."""
        for entry in self.kubeconfigs:
            if entry.key == key:
                return entry
        raise KeyError(key)

    @property
    def suffix(self) -> str:
        """The Secret name suffix: `<tcp>-<suffix>`."""
        return self.kind.value

    @property
    def is_ca(self) -> bool:
        """True for the two CA Secrets of the TCP (the datastore CA is not the TCP's)."""
        return self.category is Category.CA


_OPAQUE = "Opaque"
_TLS = "kubernetes.io/tls"
_SERVER = (ExtKeyUsage.SERVER_AUTH,)
_CLIENT = (ExtKeyUsage.CLIENT_AUTH,)


def _ca(kind: SecretKind, cn: str, crt: str, key: str, *extra: str) -> SecretProfile:
    keys = (crt, key, *extra)
    return SecretProfile(
        kind=kind,
        secret_type=_OPAQUE,
        data_keys=keys,
        lifecycle=None,
        category=Category.CA,
        signer=Signer.SELF,
        common_name=cn,
        key_usages=CA_KEY_USAGES,
        validity=CA_VALIDITY,
        cert_key=crt,
        private_key_key=key,
        sensitive_keys=frozenset(k for k in keys if k.endswith(".key")),
    )


def _leaf(
    kind: SecretKind,
    cn: str | None,
    *,
    orgs: tuple[str, ...] = (),
    ekus: tuple[ExtKeyUsage, ...],
    signer: Signer = Signer.CA,
    crt: str,
    key: str,
    extra_keys: tuple[str, ...] = (),
    secret_type: str = _OPAQUE,
    lifecycle: Lifecycle | None = Lifecycle.X509,
    accepted_orgs: tuple[tuple[str, ...], ...] = (),
) -> SecretProfile:
    return SecretProfile(
        kind=kind,
        secret_type=secret_type,
        data_keys=(*extra_keys, crt, key),
        lifecycle=lifecycle,
        category=Category.X509,
        signer=signer,
        common_name=cn,
        organizations=orgs,
        key_usages=LEAF_KEY_USAGES,
        ext_key_usages=ekus,
        validity=LEAF_VALIDITY,
        cert_key=crt,
        private_key_key=key,
        sensitive_keys=frozenset({key}),
        accepted_organizations=accepted_orgs,
    )


def _kubeconfig(
    kind: SecretKind, entry: KubeconfigEntry, *optional: KubeconfigEntry
) -> SecretProfile:
    entries = (entry, *optional)
    return SecretProfile(
        kind=kind,
        secret_type=_OPAQUE,
        data_keys=(entry.key,),
        lifecycle=Lifecycle.KUBECONFIG,
        category=Category.KUBECONFIG,
        signer=Signer.CA,
        common_name=entry.common_name,
        organizations=entry.organizations,
        key_usages=LEAF_KEY_USAGES,
        ext_key_usages=_CLIENT,
        validity=LEAF_VALIDITY,
        kubeconfig_key=entry.key,
        sensitive_keys=frozenset(e.key for e in entries),
        optional_keys=tuple(e.key for e in optional),
        kubeconfigs=entries,
        accepted_organizations=entry.accepted_organizations,
    )


MASTERS = ("system:masters",)
"""The O of Kamaji's own template (`internal/crypto/crypto.go`, NewCertificateTemplate), of
kubeadm's super-admin.conf, and of kubeadm's admin.conf and kubelet client before 1.29."""
CLUSTER_ADMINS = ("kubeadm:cluster-admins",)
"""kubeadm's O (1.29 and later) for admin.conf and the apiserver's kubelet client."""
_ADMIN = ("kubernetes-admin", CLUSTER_ADMINS)
_SUPER_ADMIN = ("kubernetes-super-admin", MASTERS)


K = SecretKind
_ALL = (
    _ca(K.CA, "kubernetes", "ca.crt", "ca.key", "tls.crt", "tls.key"),
    _ca(K.FRONT_PROXY_CA, "front-proxy-ca", "front-proxy-ca.crt", "front-proxy-ca.key"),
    SecretProfile(
        kind=K.SA,
        secret_type=_OPAQUE,
        data_keys=("sa.pub", "sa.key"),
        lifecycle=None,
        category=Category.KEYPAIR,
        signer=Signer.NONE,
        private_key_key="sa.key",
        sensitive_keys=frozenset({"sa.key"}),
    ),
    _leaf(K.APISERVER, "kube-apiserver", ekus=_SERVER, crt="apiserver.crt", key="apiserver.key"),
    _leaf(
        K.APISERVER_KUBELET_CLIENT,
        "kube-apiserver-kubelet-client",
        orgs=CLUSTER_ADMINS,
        ekus=_CLIENT,
        crt="apiserver-kubelet-client.crt",
        key="apiserver-kubelet-client.key",
        accepted_orgs=(MASTERS,),  # kubeadm before 1.29 (the seed's v1.26)
    ),
    _leaf(
        K.FRONT_PROXY_CLIENT,
        "front-proxy-client",
        ekus=_CLIENT,
        signer=Signer.FRONT_PROXY_CA,
        crt="front-proxy-client.crt",
        key="front-proxy-client.key",
    ),
    _leaf(
        K.DATASTORE_CERTIFICATE,
        None,  # the datastore user, which depends on the TCP
        orgs=MASTERS,  # Kamaji's NewCertificateTemplate
        accepted_orgs=((),),  # what certlc minted before it followed Kamaji
        ekus=_CLIENT,
        signer=Signer.DATASTORE_CA,
        crt="server.crt",
        key="server.key",
        extra_keys=("ca.crt",),
        # Unlabelled although x509: the seed walkthrough's `kubectl delete secret -l
        # ...=x509` deletes exactly the four other x509 Secrets, so this one carries no label.
        lifecycle=None,
    ),
    SecretProfile(
        kind=K.DATASTORE_CONFIG,
        secret_type=_OPAQUE,
        data_keys=("DB_CONNECTION_STRING", "DB_SCHEMA", "DB_USER", "DB_PASSWORD"),
        lifecycle=None,
        category=Category.CONFIG,
        signer=Signer.NONE,
        sensitive_keys=frozenset({"DB_PASSWORD"}),
        # Kamaji writes "" for etcd (internal/datastore/etcd.go, GetConnectionString)
        may_be_empty=frozenset({"DB_CONNECTION_STRING"}),
    ),
    _leaf(
        K.KONNECTIVITY_CERTIFICATE,
        "system:konnectivity-server",
        orgs=MASTERS,
        ekus=(ExtKeyUsage.CLIENT_AUTH, ExtKeyUsage.SERVER_AUTH),
        crt="tls.crt",
        key="tls.key",
        secret_type=_TLS,
    ),
    _kubeconfig(
        K.ADMIN_KUBECONFIG,
        # kubeadm before 1.29 (the seed's v1.26) gave admin.conf O=system:masters
        KubeconfigEntry("admin.conf", *_ADMIN, Endpoint.PUBLIC, accepted_organizations=(MASTERS,)),
        # Kamaji HEAD (internal/resources/kubeconfig.go): the same identities, *.svc keys at
        # the in-cluster Service
        KubeconfigEntry("admin.svc", *_ADMIN, Endpoint.SERVICE, accepted_organizations=(MASTERS,)),
        KubeconfigEntry("super-admin.conf", *_SUPER_ADMIN, Endpoint.PUBLIC),
        KubeconfigEntry("super-admin.svc", *_SUPER_ADMIN, Endpoint.SERVICE),
    ),
    _kubeconfig(
        K.CONTROLLER_MANAGER_KUBECONFIG,
        KubeconfigEntry(
            "controller-manager.conf", "system:kube-controller-manager", (), Endpoint.LOOPBACK
        ),
    ),
    _kubeconfig(
        K.SCHEDULER_KUBECONFIG,
        KubeconfigEntry("scheduler.conf", "system:kube-scheduler", (), Endpoint.LOOPBACK),
    ),
    _kubeconfig(
        K.KONNECTIVITY_KUBECONFIG,
        KubeconfigEntry(
            "konnectivity-server.conf", "system:konnectivity-server", MASTERS, Endpoint.LOCALHOST
        ),
    ),
)
del K

PROFILES: dict[SecretKind, SecretProfile] = {p.kind: p for p in _ALL}
"""The profile of every Secret kind, in SecretKind order."""

KONNECTIVITY_KINDS = frozenset(
    {SecretKind.KONNECTIVITY_CERTIFICATE, SecretKind.KONNECTIVITY_KUBECONFIG}
)
"""Kinds that exist only when the konnectivity addon is enabled."""


def kinds_for(*, konnectivity: bool) -> tuple[SecretKind, ...]:
    """The Secret kinds a TCP has, in SecretKind order: all thirteen, the konnectivity ones only
    when its addon is enabled."""
    return tuple(k for k in SecretKind if konnectivity or k not in KONNECTIVITY_KINDS)


CA_SIGNED_KINDS = tuple(k for k, p in PROFILES.items() if p.signer is Signer.CA)
"""Kinds re-issued when the TCP CA is rotated (certificates and every kubeconfig)."""


def profile(kind: SecretKind) -> SecretProfile:
    """The profile of one Secret kind."""
    return PROFILES[kind]


MOUNTED_KINDS: tuple[SecretKind, ...] = (
    SecretKind.CA,
    SecretKind.FRONT_PROXY_CA,
    SecretKind.SA,
    SecretKind.APISERVER,
    SecretKind.APISERVER_KUBELET_CLIENT,
    SecretKind.FRONT_PROXY_CLIENT,
    SecretKind.DATASTORE_CERTIFICATE,
    SecretKind.CONTROLLER_MANAGER_KUBECONFIG,
    SecretKind.SCHEDULER_KUBECONFIG,
    SecretKind.KONNECTIVITY_CERTIFICATE,
    SecretKind.KONNECTIVITY_KUBECONFIG,
)
"""Secrets the control-plane pods mount: a change of any of them needs a rollout (unlike
Kamaji, the konnectivity Secrets and the datastore certificate included)."""


STATUS_PATHS: dict[SecretKind, tuple[str, ...]] = {
    SecretKind.CA: ("certificates", "ca"),
    SecretKind.APISERVER: ("certificates", "apiServer"),
    SecretKind.APISERVER_KUBELET_CLIENT: ("certificates", "apiServerKubeletClient"),
    SecretKind.FRONT_PROXY_CA: ("certificates", "frontProxyCA"),
    SecretKind.FRONT_PROXY_CLIENT: ("certificates", "frontProxyClient"),
    SecretKind.SA: ("certificates", "sa"),
    SecretKind.ADMIN_KUBECONFIG: ("kubeconfig", "admin"),
    SecretKind.CONTROLLER_MANAGER_KUBECONFIG: ("kubeconfig", "controllerManager"),
    SecretKind.SCHEDULER_KUBECONFIG: ("kubeconfig", "scheduler"),
    SecretKind.DATASTORE_CERTIFICATE: ("storage", "certificate"),
    SecretKind.DATASTORE_CONFIG: ("storage", "config"),
    SecretKind.KONNECTIVITY_CERTIFICATE: ("addons", "konnectivity", "certificate"),
    SecretKind.KONNECTIVITY_KUBECONFIG: ("addons", "konnectivity", "kubeconfig"),
}
"""Where the TCP status records each Secret (Kamaji's layout, `TenantControlPlaneStatus`)."""
STATUS_WITHOUT_LAST_UPDATE = frozenset({SecretKind.DATASTORE_CONFIG})
"""Kinds whose status entry has no `lastUpdate` (Kamaji's `status.storage.config` is a
secretName and a checksum only: api/v1alpha1/tenantcontrolplane_status.go); a real API server
prunes a field the CRD does not define."""


def dependents(kind: SecretKind, present: Sequence[SecretKind]) -> tuple[SecretKind, ...]:
    """Kinds re-issued together with CA kind `kind`, among `present`: what it signs."""
    if kind is SecretKind.CA:
        return tuple(k for k in CA_SIGNED_KINDS if k in present)
    if kind is SecretKind.FRONT_PROXY_CA:
        return tuple(k for k in present if PROFILES[k].signer is Signer.FRONT_PROXY_CA)
    return ()

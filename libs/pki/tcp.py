"""The TenantControlPlane facts that shape certificates, and the SANs they require.

`TcpSpec` is the pure input of every minting and validation function: it is read once from a
TenantControlPlane object (a JSON dict as the API returns it) with the reference defaults, and
normalised so that the SANs we mint and the SANs we require are spelled the same way (a SAN
spelled differently on each side made Kamaji re-issue the apiserver certificate forever, #679).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from libs.pki.errors import SpecError
from libs.pki.profiles import SecretKind, kinds_for

DEFAULT_PORT = 6443

# The TCP status phases certlc writes (`status.kubernetesResources.version.status`, Kamaji's).
PHASE_READY = "Ready"
PHASE_CA_ROTATING = "CertificateAuthorityRotating"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
DEFAULT_DATASTORE = "default"
DEFAULT_DATASTORE_DRIVER = "etcd"
DATASTORE_DRIVERS = ("etcd", "MySQL", "PostgreSQL", "NATS")
COPYING_DRIVERS = frozenset({"MySQL", "PostgreSQL", "NATS"})
"""The drivers whose `<tcp>-datastore-certificate` is a copy of the DataStore's client certificate
(its own PKI renews it); for etcd, certlc mints one per TCP, signed by the DataStore's CA.
Kamaji: internal/resources/datastore/datastore_certificate.go."""

_DNS_NAME = re.compile(
    r"^(\*\.)?[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?(\.[a-z0-9_]([-a-z0-9_]{0,61}[a-z0-9_])?)*$"
)


@dataclass(frozen=True, slots=True)
class SubjectAltNames:
    """DNS and IP SANs, normalised (lower-case DNS names, canonical IP text), in stable order."""

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


def normalize_san(value: str) -> tuple[str, str]:
    """Classify and normalise one SAN: returns ("ip", canonical) or ("dns", lower-case name).

    Raises SpecError for a value that is neither an IP address nor a valid DNS name.
    """
    text = value.strip()
    try:
        return "ip", str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    if len(name) > 253 or not _DNS_NAME.match(name):
        raise SpecError(f"SAN {value!r} is neither an IP address nor a valid DNS name")
    return "dns", name


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


@dataclass(frozen=True, slots=True)
class TcpSpec:
    """The certificate-shaping facts of one TenantControlPlane.

    Empty `advertise_address` defaults to `address`; empty `datastore_user`/`datastore_schema`
    default to `<namespace>_<name>` with dashes replaced by underscores (older Kamaji's default).
    `public_hostname` is the ingress or gateway hostname the control plane is reached at
    (`host` or `host:port`), empty when it is reached at its address.
    """

    name: str
    namespace: str
    address: str
    uid: str = ""
    advertise_address: str = ""
    port: int = DEFAULT_PORT
    cert_sans: tuple[str, ...] = ()
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    service_cidr: str = DEFAULT_SERVICE_CIDR
    konnectivity: bool = False
    datastore: str = DEFAULT_DATASTORE
    datastore_driver: str = DEFAULT_DATASTORE_DRIVER
    datastore_user: str = ""
    datastore_schema: str = field(default="")
    public_hostname: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.namespace:
            raise SpecError("a TenantControlPlane needs metadata.name and metadata.namespace")
        if not self.address.strip():
            raise SpecError(f"TenantControlPlane {self.namespace}/{self.name} has no address")
        if not 0 < self.port < 65536:
            raise SpecError(f"port {self.port} is out of range")
        if self.datastore_driver not in DATASTORE_DRIVERS:
            raise SpecError(f"unknown datastore driver {self.datastore_driver!r}")
        for san in (self.address, self.advertise_address or self.address, *self.cert_sans):
            normalize_san(san)
        if self.public_hostname:
            normalize_san(_split_hostname(self.public_hostname, self.port)[0])
        first_service_ip(self.service_cidr)
        default_user = f"{self.namespace}_{self.name}".replace("-", "_")
        object.__setattr__(self, "address", self.address.strip())
        object.__setattr__(self, "advertise_address", self.advertise_address or self.address)
        object.__setattr__(self, "cert_sans", tuple(self.cert_sans))
        object.__setattr__(self, "datastore_user", self.datastore_user or default_user)
        object.__setattr__(self, "datastore_schema", self.datastore_schema or default_user)

    @classmethod
    def from_resource(cls, obj: Mapping[str, Any]) -> TcpSpec:
        """Read a TenantControlPlane JSON object (as the API serves it), with defaults.

        The address falls back to the host of `status.controlPlaneEndpoint` (a LoadBalancer
        address assigned after creation). The datastore driver comes from
        `status.storage.driver` (the TCP names only the DataStore), default etcd. The datastore
        user and schema are `status.storage.setup`'s, else `spec.dataStoreUsername` /
        `spec.dataStoreSchema` (Kamaji's webhook defaults both to the TCP uid).
        """
        meta = _section(obj, "metadata")
        spec = _section(obj, "spec")
        status = _section(obj, "status")
        net = _section(spec, "networkProfile")
        storage = _section(status, "storage")
        setup = _section(storage, "setup")
        addons = _section(spec, "addons")
        address = str(net.get("address") or "")
        if not address:
            endpoint = str(status.get("controlPlaneEndpoint") or "")
            address = endpoint.rsplit(":", 1)[0].strip("[]") if ":" in endpoint else endpoint
        try:
            port = int(net.get("port") or DEFAULT_PORT)
        except (TypeError, ValueError):
            raise SpecError(
                f"spec.networkProfile.port {net.get('port')!r} is not a number"
            ) from None
        sans = net.get("certSANs") or []
        control_plane = _section(spec, "controlPlane")
        if not isinstance(sans, list):
            raise SpecError("spec.networkProfile.certSANs must be a list")
        return cls(
            name=str(meta.get("name") or ""),
            namespace=str(meta.get("namespace") or "default"),
            uid=str(meta.get("uid") or ""),
            address=address,
            advertise_address=str(net.get("advertiseAddress") or ""),
            port=port,
            cert_sans=tuple(str(s) for s in sans),
            cluster_domain=str(net.get("clusterDomain") or DEFAULT_CLUSTER_DOMAIN),
            service_cidr=str(net.get("serviceCidr") or DEFAULT_SERVICE_CIDR),
            konnectivity=addons.get("konnectivity") is not None,
            datastore=str(spec.get("dataStore") or DEFAULT_DATASTORE),
            datastore_driver=str(storage.get("driver") or DEFAULT_DATASTORE_DRIVER),
            # as Kamaji's datastore-config (datastore_storage_config.go): status, then spec
            datastore_user=str(setup.get("user") or spec.get("dataStoreUsername") or ""),
            datastore_schema=str(setup.get("schema") or spec.get("dataStoreSchema") or ""),
            public_hostname=_public_hostname(control_plane),
        )

    @property
    def endpoint(self) -> str:
        """`<address>:<port>`, as `.status.controlPlaneEndpoint` shows it."""
        return f"{self.address}:{self.port}"

    @property
    def public_endpoint(self) -> tuple[str, int]:
        """(host, port) clients outside reach the apiserver at: kubeadm's controlPlaneEndpoint
        as Kamaji sets it (internal/resources/kubeadm_config.go): the ingress or gateway
        hostname when there is one (its port, else the TCP's), else the advertise address."""
        if self.public_hostname:
            return _split_hostname(self.public_hostname, self.port)
        return self.advertise_address, self.port


def _split_hostname(hostname: str, default_port: int) -> tuple[str, int]:
    """Kamaji's GetControlPlaneAddressAndPortFromHostname (internal/utilities/ingress.go)."""
    parts = hostname.strip().split(":")
    port = default_port
    if len(parts) == 2 and parts[1].isdigit() and 0 < int(parts[1]) < 65536:
        port = int(parts[1])
    return parts[0], port


def _public_hostname(control_plane: Mapping[str, Any]) -> str:
    """The ingress hostname, else the gateway hostname (the ingress wins, as in Kamaji)."""
    for key in ("ingress", "gateway"):
        section = _section(control_plane, key)
        if section.get("hostname"):
            return str(section["hostname"])
    return ""


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"TenantControlPlane field {key!r} must be an object")
    return value


def first_service_ip(service_cidr: str) -> str:
    """The first usable address of the (first) service CIDR: the `kubernetes` Service IP."""
    primary = service_cidr.split(",", maxsplit=1)[0].strip()
    try:
        network = ipaddress.ip_network(primary, strict=False)
    except ValueError:
        raise SpecError(f"service CIDR {service_cidr!r} is not a network") from None
    if network.num_addresses < 2:
        raise SpecError(f"service CIDR {service_cidr!r} has no room for the kubernetes Service")
    return str(network.network_address + 1)


def apiserver_sans(tcp: TcpSpec) -> SubjectAltNames:
    """Every SAN the apiserver certificate must carry (extra SANs are allowed)."""
    dns = [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{tcp.cluster_domain}",
        "localhost",
        tcp.name,
        f"{tcp.name}.{tcp.namespace}.svc",
        f"{tcp.name}.{tcp.namespace}.svc.cluster.local",
    ]
    ips = [first_service_ip(tcp.service_cidr), "127.0.0.1"]
    public = (tcp.public_endpoint[0],) if tcp.public_hostname else ()
    for value in (tcp.address, tcp.advertise_address, *public, *tcp.cert_sans):
        family, text = normalize_san(value)
        (ips if family == "ip" else dns).append(text)
    return SubjectAltNames(
        dns=_unique([normalize_san(d)[1] for d in dns]),
        ips=_unique(ips),
    )


def managed_kinds(tcp: TcpSpec) -> tuple[SecretKind, ...]:
    """The Secret kinds this TCP has, in SecretKind order (konnectivity ones when enabled)."""
    return kinds_for(konnectivity=tcp.konnectivity)


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """One key of one Secret, as a DataStore's `{secretReference: {name, namespace, keyPath}}`
    names it (Kamaji's `api/v1alpha1/datastore_types.go`, ContentRef)."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class DataStoreRefs:
    """Where a DataStore's TLS material lives: its CA and the client certificate."""

    ca_cert: SecretKeyRef | None
    ca_key: SecretKeyRef | None
    client_cert: SecretKeyRef | None
    client_key: SecretKeyRef | None


def secret_key_ref(content: Mapping[str, Any] | None) -> SecretKeyRef | None:
    """The Secret key a ContentRef points at; None when it names none (inline content, or
    nothing)."""
    ref = (content or {}).get("secretReference") or {}
    if not isinstance(ref, Mapping):
        return None
    name, namespace, key = ref.get("name"), ref.get("namespace"), ref.get("keyPath")
    if not (name and namespace and key):
        return None
    return SecretKeyRef(str(namespace), str(name), str(key))


def datastore_refs(datastore: Mapping[str, Any]) -> DataStoreRefs:
    """The references of `spec.tlsConfig` of a DataStore object."""
    tls = _section(_section(datastore, "spec"), "tlsConfig")
    ca = _section(tls, "certificateAuthority")
    client = _section(tls, "clientCertificate")
    return DataStoreRefs(
        ca_cert=secret_key_ref(_section(ca, "certificate")),
        ca_key=secret_key_ref(_section(ca, "privateKey")),
        client_cert=secret_key_ref(_section(client, "certificate")),
        client_key=secret_key_ref(_section(client, "privateKey")),
    )

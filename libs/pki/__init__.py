"""The PKI of a Kamaji TenantControlPlane: profiles, minting, kubeconfigs, inspection, checks.

The only package of certlc that imports `cryptography`. Everything here is pure: no files,
sockets, environment or event loop; the clock (`now`, timezone-aware UTC) is always passed in.
Services hold the values these functions return and never touch key bytes directly.
See docs/pki.md.
"""

from libs.pki.errors import KubeconfigError, PkiError, SecretDataError, SignerError, SpecError
from libs.pki.inspect import (
    CA_RESIDUAL_WARNING,
    CaBundle,
    CertSummary,
    ca_bundle,
    ca_residual,
    summarize,
)
from libs.pki.issue import IssuedPair, SignerKeyPair, issue_leaf, load_signer, mint_ca
from libs.pki.keys import KeyAlgorithm, parse_key_algorithm
from libs.pki.kubeconfig import (
    KubeconfigCredentials,
    kubeconfig_server,
    parse_kubeconfig,
    render_kubeconfig,
)
from libs.pki.material import Material, Problem, gather
from libs.pki.mint import (
    ca_secret_data,
    datastore_certificate_from_external,
    datastore_config_data,
    datastore_connection_string,
    mint_secret_data,
    signer_from_secret_data,
)
from libs.pki.naming import (
    CERTLC_PREFIX,
    CHECKSUM_ANNOTATION,
    COMPONENT_LABEL,
    LIFECYCLE_LABEL,
    NAME_LABEL,
    PAUSED_ANNOTATION,
    PROJECT_LABEL,
    PROJECT_VALUE,
    ROTATE_ANNOTATION,
    checksum,
    kind_from_secret_name,
    secret_annotations,
    secret_labels,
    secret_name,
    split_secret_name,
)
from libs.pki.profiles import (
    CA_SIGNED_KINDS,
    CA_VALIDITY,
    KONNECTIVITY_KINDS,
    LEAF_VALIDITY,
    MOUNTED_KINDS,
    PROFILES,
    STATUS_PATHS,
    Category,
    ExtKeyUsage,
    KeyUsage,
    Lifecycle,
    SecretKind,
    SecretProfile,
    Signer,
    dependents,
    profile,
)
from libs.pki.reasons import EXPIRY_CODES, Reason, ReasonCode, only_expiry, reason_codes
from libs.pki.report import (
    ExpirationReport,
    ReportRow,
    RowStatus,
    expiration_report,
    render_report,
    short_human_duration,
)
from libs.pki.tcp import (
    COPYING_DRIVERS,
    PHASE_CA_ROTATING,
    PHASE_READY,
    SubjectAltNames,
    TcpSpec,
    apiserver_sans,
    first_service_ip,
    managed_kinds,
)
from libs.pki.validate import DEFAULT_DEADLINE, reasons_for_material, renewal_reasons

__all__ = [
    # errors
    "PkiError",
    "SpecError",
    "SignerError",
    "SecretDataError",
    "KubeconfigError",
    # profiles and the TCP
    "SecretKind",
    "SecretProfile",
    "Category",
    "Signer",
    "KeyUsage",
    "ExtKeyUsage",
    "Lifecycle",
    "PROFILES",
    "profile",
    "KONNECTIVITY_KINDS",
    "CA_SIGNED_KINDS",
    "MOUNTED_KINDS",
    "STATUS_PATHS",
    "PHASE_CA_ROTATING",
    "PHASE_READY",
    "COPYING_DRIVERS",
    "dependents",
    "LEAF_VALIDITY",
    "CA_VALIDITY",
    "TcpSpec",
    "SubjectAltNames",
    "apiserver_sans",
    "first_service_ip",
    "managed_kinds",
    # names, labels, checksum
    "secret_name",
    "kind_from_secret_name",
    "split_secret_name",
    "secret_labels",
    "secret_annotations",
    "checksum",
    "PROJECT_LABEL",
    "PROJECT_VALUE",
    "NAME_LABEL",
    "COMPONENT_LABEL",
    "LIFECYCLE_LABEL",
    "CHECKSUM_ANNOTATION",
    "CERTLC_PREFIX",
    "PAUSED_ANNOTATION",
    "ROTATE_ANNOTATION",
    # minting
    "KeyAlgorithm",
    "parse_key_algorithm",
    "SignerKeyPair",
    "IssuedPair",
    "load_signer",
    "mint_ca",
    "issue_leaf",
    "mint_secret_data",
    "ca_secret_data",
    "signer_from_secret_data",
    "datastore_config_data",
    "datastore_connection_string",
    "datastore_certificate_from_external",
    # kubeconfigs
    "KubeconfigCredentials",
    "render_kubeconfig",
    "parse_kubeconfig",
    "kubeconfig_server",
    # inspection and validation
    "CaBundle",
    "CertSummary",
    "ca_bundle",
    "summarize",
    "ca_residual",
    "CA_RESIDUAL_WARNING",
    "Reason",
    "ReasonCode",
    "EXPIRY_CODES",
    "reason_codes",
    "only_expiry",
    "renewal_reasons",
    "reasons_for_material",
    "Material",
    "Problem",
    "gather",
    "DEFAULT_DEADLINE",
    # whole-set report (certlc certs check)
    "ExpirationReport",
    "ReportRow",
    "RowStatus",
    "expiration_report",
    "render_report",
    "short_human_duration",
]

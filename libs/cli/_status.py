"""`certlc status`: every certificate of every TenantControlPlane, read from the cluster.

The TCPs come from the API; their Secrets are found by name (`<tcp>-<suffix>`), the DataStore
CA through the DataStore's `spec.tlsConfig.certificateAuthority`. The verdict of every Secret is
libs.pki's: `expiration_report` runs the same checks as `renewal_reasons` against the TCP's CA
as it is now (and the DataStore CA when readable); this module only adds `missing` for a
Secret that does not exist and lays the rows out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from libs.cli._opsutil import CliError, Exit, kube_failure, stamp, table
from libs.contracts.api import ScheduledRenewal
from libs.kube.client import KubeClient
from libs.kube.errors import Forbidden, KubeError, NotFound
from libs.pki import (
    PAUSED_ANNOTATION,
    PkiError,
    ReportRow,
    RowStatus,
    SecretKind,
    TcpSpec,
    expiration_report,
    managed_kinds,
    secret_name,
    short_human_duration,
)

MISSING = "missing"
PAUSED = "paused"
Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    """One certificate (or keypair / config Secret) of one TCP, as `status` shows it."""

    namespace: str
    tcp: str
    secret: str
    kind: str | None
    is_ca: bool
    signer: str
    not_after: datetime | None
    status: str  # valid | expiring | invalid | missing
    reasons: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    warning: str | None = None
    paused: bool = False  # the TCP or this Secret carries kamaji.clastix.io/paused

    @property
    def ok(self) -> bool:
        return self.status == RowStatus.VALID.value

    def status_text(self) -> str:
        if self.status == RowStatus.INVALID.value:
            state = f"invalid: {', '.join(dict.fromkeys(self.reasons))}"
        else:
            state = self.status
        if self.paused:  # certlc leaves it as it is: say so, and what it is
            return PAUSED if self.ok else f"{PAUSED} ({state})"
        return state


@dataclass(frozen=True, slots=True)
class TcpStatus:
    namespace: str
    name: str
    rows: tuple[Row, ...] = ()
    error: str | None = None  # the TCP could not be read as a TcpSpec
    paused: bool = False  # kamaji.clastix.io/paused: certlc leaves its Secrets alone

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok for r in self.rows)


@dataclass(frozen=True, slots=True)
class StatusReport:
    now: datetime
    deadline: timedelta
    tcps: tuple[TcpStatus, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tcps)


def _decode(secret: Mapping[str, Any]) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            data[str(key)] = b""  # shows up as unparseable, which it is
    return data


def _items(listing: Mapping[str, Any]) -> list[Obj]:
    return [i for i in listing.get("items") or [] if isinstance(i, dict)]


def _ref(ds: Mapping[str, Any]) -> Mapping[str, Any]:
    tls = (ds.get("spec") or {}).get("tlsConfig") or {}
    cert = (tls.get("certificateAuthority") or {}).get("certificate") or {}
    ref = cert.get("secretReference") or {}
    return ref if isinstance(ref, Mapping) else {}


class Collector:
    """Reads TCPs, their Secrets and DataStore CAs with one client; caches DataStore CAs."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self._ds_cache: dict[str, tuple[str, bytes] | None] = {}

    def tcps(self, namespace: str | None, name: str | None) -> list[Obj]:
        if name is not None and namespace is not None:
            try:
                return [self.kube.get_tcp(namespace, name)]
            except KubeError as exc:
                raise kube_failure(exc, f"TenantControlPlane {namespace}/{name}") from None
        try:
            found = _items(self.kube.list_tcps(namespace))
        except KubeError as exc:
            raise kube_failure(exc, "TenantControlPlanes") from None
        if not found and namespace is not None:
            self.require_namespace(namespace)
        if name is not None:
            found = [t for t in found if (t.get("metadata") or {}).get("name") == name]
            if not found:
                raise CliError(Exit.NOT_FOUND, f"TenantControlPlane {name} not found")
        return sorted(found, key=lambda t: (t["metadata"].get("namespace"), t["metadata"]["name"]))

    def require_namespace(self, namespace: str) -> None:
        """A namespace without TCPs must exist: a typo is an error, not "nothing to check".
        Without the right to read namespaces, an empty namespace is taken as it is."""
        try:
            self.kube.get_namespace(namespace)
        except NotFound:
            raise CliError(Exit.NOT_FOUND, f"namespace {namespace} not found") from None
        except Forbidden:
            return
        except KubeError as exc:
            raise kube_failure(exc, f"namespace {namespace}") from None

    def secrets(self, namespace: str | None) -> dict[tuple[str, str], Obj]:
        """Secrets by (namespace, name): one list call for the namespace (or all)."""
        try:
            listing = self.kube.list_secrets(namespace)
        except KubeError as exc:
            raise kube_failure(exc, "Secrets") from None
        out: dict[tuple[str, str], Obj] = {}
        for s in _items(listing):
            meta = s.get("metadata") or {}
            out[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = s
        return out

    def datastore_ca(self, datastore: str) -> tuple[str, bytes] | None:
        """(`<ns>/<secret>`, ca.crt) of a DataStore's CA, None when it cannot be read."""
        if datastore in self._ds_cache:
            return self._ds_cache[datastore]
        found: tuple[str, bytes] | None = None
        try:
            ref = _ref(self.kube.get_datastore(datastore))
            name, ns = str(ref.get("name") or ""), str(ref.get("namespace") or "")
            key = str(ref.get("keyPath") or "ca.crt")
            if name and ns:
                pem = _decode(self.kube.get_secret(ns, name)).get(key)
                if pem:
                    found = (f"{ns}/{name}", pem)
        except KubeError:
            found = None  # not readable (RBAC, gone): the datastore CA row is left out
        self._ds_cache[datastore] = found
        return found


def _paused(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and PAUSED_ANNOTATION in (
        (obj.get("metadata") or {}).get("annotations") or {}
    )


def _row(
    namespace: str,
    tcp: str,
    r: ReportRow,
    exists: bool,
    name: str | None = None,
    *,
    paused: bool = False,
) -> Row:
    if not exists:
        return Row(
            namespace,
            tcp,
            r.name,
            r.kind.value if r.kind else None,
            r.is_ca,
            r.signer,
            None,
            MISSING,
            (MISSING,),
            (f"{r.kind.value if r.kind else r.name}: Secret {r.name} not found",),
            paused=paused,
        )
    return Row(
        namespace=namespace,
        tcp=tcp,
        secret=name or r.name,
        kind=r.kind.value if r.kind else None,
        is_ca=r.is_ca,
        signer=r.signer,
        not_after=r.not_after,
        status=r.status.value,
        reasons=r.codes,
        messages=r.messages,
        warning=r.warning,
        paused=paused,
    )


def tcp_status(
    collector: Collector,
    obj: Mapping[str, Any],
    secrets: Mapping[tuple[str, str], Obj],
    *,
    now: datetime,
    deadline: timedelta,
) -> TcpStatus:
    meta = obj.get("metadata") or {}
    ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    try:
        spec = TcpSpec.from_resource(obj)
    except PkiError as exc:
        return TcpStatus(ns, name, error=str(exc))
    present: dict[SecretKind, dict[str, bytes]] = {}
    for kind in managed_kinds(spec):
        found = secrets.get((ns, secret_name(name, kind)))
        if found is not None:
            present[kind] = _decode(found)
    ds = collector.datastore_ca(spec.datastore)
    try:
        report = expiration_report(
            spec,
            present,
            now=now,
            deadline=deadline,
            datastore_ca_pem=ds[1] if ds else None,
        )
    except PkiError as exc:
        return TcpStatus(ns, name, error=str(exc))
    tcp_paused = _paused(obj)

    def paused(r: ReportRow) -> bool:
        if r.kind is None:  # the DataStore CA: not certlc's to renew
            return False
        return tcp_paused or _paused(secrets.get((ns, secret_name(name, r.kind))))

    rows = [
        _row(ns, name, r, r.kind in present if r.kind is not None else True, paused=paused(r))
        for r in report.certificates
    ]
    rows += [
        _row(
            ns,
            name,
            r,
            r.kind in present if r.kind is not None else True,
            None if r.kind is not None or ds is None else ds[0],
            paused=paused(r),
        )
        for r in report.authorities
    ]
    return TcpStatus(ns, name, tuple(rows), paused=tcp_paused)


def collect(
    kube: KubeClient,
    *,
    namespace: str | None,
    name: str | None,
    now: datetime,
    deadline: timedelta,
) -> StatusReport:
    """The status of one TCP, of a namespace's TCPs, or of all (namespace None)."""
    collector = Collector(kube)
    tcps = collector.tcps(namespace, name)
    secrets = collector.secrets(namespace) if tcps else {}
    return StatusReport(
        now,
        deadline,
        tuple(tcp_status(collector, t, secrets, now=now, deadline=deadline) for t in tcps),
    )


# --- output --------------------------------------------------------------------------------


Renewals = Mapping[tuple[str, str], ScheduledRenewal]
"""The next renewal of each certificate lifecycle renews for its age, by (namespace, Secret)."""


Waits = Mapping[tuple[str, str], timedelta]
"""The estimated rollout budget wait of the certificates whose rollout would wait, likewise."""


def renewal_text(
    renewal: ScheduledRenewal | None, now: datetime, wait: timedelta | None = None
) -> str:
    """When lifecycle renews a certificate: `in 3d`, `due` when it is being renewed, with
    the window it waits for and the estimated rollout budget wait (`+2m budget`); `-` for what
    it does not renew for its age (CAs, copies)."""
    if renewal is None:
        return "-"
    delta = renewal.at - now
    when = f"in {short_human_duration(delta)}" if delta > timedelta(0) else "due"
    notes = []
    if renewal.windows:
        notes.append("window" if renewal.in_window else "no window in time")
    if wait:
        notes.append(f"+{short_human_duration(wait)} budget")
    return f"{when} ({', '.join(notes)})" if notes else when


def render_table(
    report: StatusReport, renewals: Renewals | None = None, waits: Waits | None = None
) -> str:
    """One table like `kubeadm certs check-expiration` (CA rows included), then the notes;
    with `renewals`, a column of each certificate's next renewal as lifecycle scheduled it."""
    if not report.tcps:
        return "No TenantControlPlanes found."
    now = report.now
    rows: list[list[str]] = []
    for t in report.tcps:
        where = f"{t.namespace}/{t.name}"
        if t.error is not None:
            rows.append([where, "-", "-", "-", "-", "invalid: tenantcontrolplane"])
        for r in t.rows:
            expires = r.not_after.strftime("%b %d, %Y %H:%M UTC") if r.not_after else "-"
            residual = short_human_duration(r.not_after - now) if r.not_after else "-"
            row = [where, r.secret, expires, residual, r.signer, r.status_text()]
            if renewals is not None:
                at = (t.namespace, r.secret)
                row.insert(4, renewal_text(renewals.get(at), now, (waits or {}).get(at)))
            rows.append(row)
    header = ["NAMESPACE/TCP", "SECRET", "EXPIRES", "RESIDUAL TIME", "SIGNER", "STATUS"]
    if renewals is not None:
        header.insert(4, "RENEWAL")
        for row in rows:
            if len(row) < len(header):
                row.insert(4, "-")
    lines = table(header, rows)
    notes = [f"{t.namespace}/{t.name}: {t.error}" for t in report.tcps if t.error is not None]
    notes += [
        f"{t.namespace}/{t.name}: paused ({PAUSED_ANNOTATION}): certlc neither re-creates nor "
        "renews its Secrets until the annotation is removed"
        for t in report.tcps
        if t.paused
    ]
    for t in report.tcps:
        notes += [
            f"{t.namespace}/{t.name}: {r.secret}: paused ({PAUSED_ANNOTATION} on the Secret)"
            for r in t.rows
            if r.paused and not t.paused
        ]
    for t in report.tcps:
        notes += [f"{t.namespace}/{t.name}: {m}" for r in t.rows for m in r.messages]
        notes += [
            f"{t.namespace}/{t.name}: {r.secret}: warning: {r.warning}" for r in t.rows if r.warning
        ]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return "\n".join(lines)


def as_data(
    report: StatusReport, renewals: Renewals | None = None, waits: Waits | None = None
) -> dict[str, Any]:
    """The report as plain data for `-o json|yaml`; with `renewals`, each certificate's next
    renewal (`renewsAt`, `renewsInWindow`; null for what lifecycle does not renew for its age)."""
    now = report.now

    def row(t: TcpStatus, r: Row) -> dict[str, Any]:
        residual = (r.not_after - now) if r.not_after else None
        extra: dict[str, Any] = {}
        if renewals is not None:
            renewal = renewals.get((t.namespace, r.secret))
            wait = (waits or {}).get((t.namespace, r.secret))
            extra = {
                "renewsAt": stamp(renewal.at) if renewal else None,
                "renewsInWindow": renewal.in_window if renewal else None,
                "budgetWaitSeconds": int(wait.total_seconds()) if wait and renewal else None,
            }
        return {
            "secret": r.secret,
            "kind": r.kind,
            "ca": r.is_ca,
            "signer": r.signer,
            "expires": stamp(r.not_after) if r.not_after else None,
            "residual": short_human_duration(residual) if residual is not None else None,
            "residualSeconds": int(residual.total_seconds()) if residual is not None else None,
            "status": r.status,
            "paused": r.paused,
            "reasons": list(dict.fromkeys(r.reasons)),
            "messages": list(r.messages),
            "warning": r.warning,
            **extra,
        }

    return {
        "generatedAt": stamp(now),
        "deadlineSeconds": int(report.deadline.total_seconds()),
        "ok": report.ok,
        "tenantControlPlanes": [
            {
                "namespace": t.namespace,
                "name": t.name,
                "ok": t.ok,
                "paused": t.paused,
                "error": t.error,
                "certificates": [row(t, r) for r in t.rows],
            }
            for t in report.tcps
        ],
    }

"""The expiration report of a whole TCP certificate set, as `kubeadm certs check-expiration`.

Decides, for every Secret of a TCP (and the DataStore CA when known), one row: when it
expires, which CA signs it, and a status (valid / expiring / invalid with its reasons), the
CA rows apart. A CA is reported `expiring` inside the deadline like any certificate (a human
must rotate it; nothing does so automatically) and carries a warning under a year left.
Pure: the caller reads the Secrets and passes `now`; `render_report` prints it as kubeadm does
(two tables, RESIDUAL TIME in apimachinery's short human format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from libs.pki.errors import PkiError
from libs.pki.inspect import CA_RESIDUAL_WARNING, summarize
from libs.pki.issue import load_signer
from libs.pki.material import Material, gather
from libs.pki.naming import secret_name
from libs.pki.profiles import PROFILES, SecretKind, Signer
from libs.pki.reasons import ReasonCode
from libs.pki.tcp import TcpSpec, managed_kinds
from libs.pki.validate import DEFAULT_DEADLINE, reasons_for_material


class RowStatus(StrEnum):
    """Verdict of one report row."""

    VALID = "valid"
    EXPIRING = "expiring"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One certificate (or keypair/config Secret) of the set; no key material."""

    name: str
    kind: SecretKind | None
    is_ca: bool
    signer: str
    not_after: datetime | None
    status: RowStatus
    codes: tuple[str, ...] = ()
    messages: tuple[str, ...] = ()
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class ExpirationReport:
    """All rows; `ok` is False when any row is expiring or invalid."""

    rows: tuple[ReportRow, ...]

    @property
    def ok(self) -> bool:
        return all(r.status is RowStatus.VALID for r in self.rows)

    @property
    def certificates(self) -> tuple[ReportRow, ...]:
        return tuple(r for r in self.rows if not r.is_ca)

    @property
    def authorities(self) -> tuple[ReportRow, ...]:
        return tuple(r for r in self.rows if r.is_ca)


def _status(codes: tuple[str, ...]) -> RowStatus:
    if not codes:
        return RowStatus.VALID
    if all(c == ReasonCode.EXPIRING for c in codes):
        return RowStatus.EXPIRING
    return RowStatus.INVALID


def _ca_pem(material: Material, data: Mapping[str, bytes]) -> bytes | None:
    """The CA certificate of a CA Secret when it parses, else None (its own row says why)."""
    key = material.cert_key
    return data[key] if key and material.cert is not None else None


def _ca_age(
    codes: list[str],
    messages: list[str],
    name: str,
    not_after: datetime,
    now: datetime,
    deadline: timedelta,
) -> str | None:
    """Flag a healthy CA inside the deadline as expiring; warn under a year left."""
    if not codes and not_after - now < deadline:
        codes.append(ReasonCode.EXPIRING)
        messages.append(f"{name}: CA expires within {deadline}; rotate it manually")
    if not_after - now < CA_RESIDUAL_WARNING:
        return "under a year left: plan a manual CA rotation"
    return None


def _datastore_ca_row(
    cert_pem: bytes, key_pem: bytes | None, now: datetime, deadline: timedelta
) -> tuple[ReportRow, bytes | None]:
    """The DataStore CA's row, and its certificate when usable as the datastore signer."""
    name = "datastore-ca"
    try:
        if key_pem:
            load_signer(cert_pem, key_pem)
        not_after = summarize(SecretKind.CA, {"ca.crt": cert_pem}).not_after
    except PkiError as exc:
        codes: tuple[str, ...] = (ReasonCode.UNPARSEABLE,)
        row = ReportRow(
            name, None, True, "self", None, RowStatus.INVALID, codes, (f"{name}: {exc}",)
        )
        return row, None
    problems: list[str] = []
    messages: list[str] = []
    if not_after <= now:
        problems.append(ReasonCode.EXPIRED)
        messages.append(f"{name}: ca.crt expired")
    warning = _ca_age(problems, messages, name, not_after, now, deadline)
    status = _status(tuple(problems))
    row = ReportRow(
        name, None, True, "self", not_after, status, tuple(problems), tuple(messages), warning
    )
    return row, cert_pem


def expiration_report(
    tcp: TcpSpec,
    secrets: Mapping[SecretKind, Mapping[str, bytes]],
    *,
    now: datetime,
    deadline: timedelta = DEFAULT_DEADLINE,
    datastore_ca_pem: bytes | None = None,
    datastore_ca_key_pem: bytes | None = None,
) -> ExpirationReport:
    """One row per Secret the TCP has (missing ones are invalid), CAs included."""
    empty: Mapping[str, bytes] = {}
    kinds = managed_kinds(tcp)
    materials = {k: gather(k, secrets.get(k, empty)) for k in kinds}
    current_ca = _ca_pem(materials[SecretKind.CA], secrets.get(SecretKind.CA, empty))
    signers: dict[Signer, bytes | None] = {
        Signer.CA: current_ca,
        Signer.FRONT_PROXY_CA: _ca_pem(
            materials[SecretKind.FRONT_PROXY_CA], secrets.get(SecretKind.FRONT_PROXY_CA, empty)
        ),
        Signer.DATASTORE_CA: None,
    }
    rows: list[ReportRow] = []
    datastore_row = None
    if datastore_ca_pem:
        datastore_row, signers[Signer.DATASTORE_CA] = _datastore_ca_row(
            datastore_ca_pem, datastore_ca_key_pem, now, deadline
        )
    for kind in kinds:
        prof = PROFILES[kind]
        data = secrets.get(kind, empty)
        name = secret_name(tcp.name, kind)
        cert = materials[kind].cert
        reasons = reasons_for_material(
            materials[kind],
            data,
            tcp,
            now=now,
            deadline=deadline,
            current_ca_pem=current_ca,
            signer_ca_pem=signers.get(prof.signer),
        )
        codes = [r.code.value for r in reasons]
        messages = [r.message for r in reasons]
        not_after = cert.not_valid_after_utc if cert is not None else None
        warning = None
        if prof.is_ca and not_after is not None:
            warning = _ca_age(codes, messages, name, not_after, now, deadline)
        signer = "-" if prof.signer is Signer.NONE else prof.signer.value
        status = _status(tuple(codes))
        rows.append(
            ReportRow(
                name=name,
                kind=kind,
                is_ca=prof.is_ca,
                signer=signer,
                not_after=not_after,
                status=status,
                codes=tuple(codes),
                messages=tuple(messages),
                warning=warning,
            )
        )
    if datastore_row is not None:
        rows.append(datastore_row)
    return ExpirationReport(tuple(rows))


def short_human_duration(delta: timedelta) -> str:
    """kubeadm's RESIDUAL TIME format (apimachinery ShortHumanDuration)."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _status_text(row: ReportRow) -> str:
    if row.status is RowStatus.INVALID:
        return f"invalid: {', '.join(dict.fromkeys(row.codes))}"
    if row.warning and row.status is RowStatus.VALID:
        return "valid (warning)"
    return row.status.value


def _cells(row: ReportRow, now: datetime, with_signer: bool) -> list[str]:
    expires = row.not_after.strftime("%b %d, %Y %H:%M UTC") if row.not_after else "-"
    residual = short_human_duration(row.not_after - now) if row.not_after else "-"
    cells = [row.name, expires, residual]
    if with_signer:
        cells.append(row.signer)
    return [*cells, _status_text(row)]


def render_report(report: ExpirationReport, *, now: datetime) -> str:
    """Two tables like `kubeadm certs check-expiration`, then the reasons and warnings."""
    lines = _table(
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "SIGNER", "STATUS"],
        [_cells(r, now, with_signer=True) for r in report.certificates],
    )
    lines.append("")
    lines += _table(
        ["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "STATUS"],
        [_cells(r, now, with_signer=False) for r in report.authorities],
    )
    notes = [m for r in report.rows for m in r.messages]
    notes += [f"{r.name}: warning: {r.warning}" for r in report.rows if r.warning]
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    return "\n".join(lines)

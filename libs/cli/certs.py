"""`certlc certs`: generate a TenantControlPlane's Secrets as files, and check them.

`generate` plays `kubeadm init phase certs all` for a Kamaji TCP: it mints every Secret of the
TCP with libs.pki and writes one file per data key under `DIR/<secret-name>/<key>` (directories
0700, files holding secrets 0600, certificates 0644), plus `DIR/datastore-ca/{ca.crt,ca.key}`
(the DataStore's CA, which a real cluster keeps outside the TCP) and
`DIR/tenantcontrolplane.yaml` (the TCP resource the set was made for, read back by `check`).
`check` prints a table like `kubeadm certs check-expiration` and exits 1 when anything is
expiring or invalid. File I/O and the wall clock live here, at the edge; libs.pki stays pure.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from libs.pki import (
    PROFILES,
    KeyAlgorithm,
    PkiError,
    SecretKind,
    Signer,
    SignerKeyPair,
    TcpSpec,
    datastore_certificate_from_external,
    expiration_report,
    issue_leaf,
    managed_kinds,
    mint_ca,
    mint_secret_data,
    parse_key_algorithm,
    render_report,
    secret_name,
    signer_from_secret_data,
)
from libs.pki.tcp import DATASTORE_DRIVERS
from libs.runtime.settings import SettingsError
from libs.runtime.settings import parse_duration as settings_duration

MANIFEST = "tenantcontrolplane.yaml"
DATASTORE_CA_DIR = "datastore-ca"
DATASTORE_CA_CN = "datastore-ca"
DEFAULT_ENDPOINTS = {
    "etcd": "kamaji-etcd-0.kamaji-etcd.kamaji-system.svc.cluster.local:2379",
    "MySQL": "mariadb.kamaji-system.svc:3306",
    "PostgreSQL": "postgres.kamaji-system.svc:5432",
    "NATS": "nats.kamaji-system.svc:4222",
}


def parse_duration(text: str) -> timedelta:
    """`24h`, `90m`, `7d`, `1h30m` -> timedelta (an argparse type): the settings' parser."""
    try:
        return settings_duration(text)
    except SettingsError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r} (use e.g. 24h, 90m, 7d)"
        ) from None


def _algorithm(text: str) -> KeyAlgorithm:
    """A key algorithm (an argparse type): the settings' and annotations' parser."""
    try:
        return parse_key_algorithm(text)
    except PkiError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _driver(text: str) -> str:
    for driver in DATASTORE_DRIVERS:
        if driver.lower() == text.lower():
            return driver
    raise argparse.ArgumentTypeError(f"unknown datastore {text!r}: {', '.join(DATASTORE_DRIVERS)}")


def register(subparsers: Any) -> None:
    """Add `certs generate` and `certs check` to the `certlc` parser."""
    certs = subparsers.add_parser("certs", help="generate and check a TCP's certificates")
    sub = certs.add_subparsers(dest="certs_command", required=True, metavar="SUBCOMMAND")

    gen = sub.add_parser("generate", help="mint every Secret of a TCP into a directory")
    gen.add_argument("--name", required=True, help="TenantControlPlane name")
    gen.add_argument("--namespace", default="default", help="TenantControlPlane namespace")
    gen.add_argument("--address", required=True, help="spec.networkProfile.address")
    gen.add_argument("--port", type=int, default=6443, help="spec.networkProfile.port")
    gen.add_argument("--advertise-address", default="", help="default: --address")
    gen.add_argument("--cert-san", action="append", default=[], help="extra SAN (repeatable)")
    gen.add_argument("--cluster-domain", default="cluster.local")
    gen.add_argument("--service-cidr", default="10.96.0.0/16")
    gen.add_argument("--konnectivity", action="store_true", help="enable the konnectivity addon")
    gen.add_argument(
        "--algorithm",
        type=_algorithm,
        default=KeyAlgorithm.RSA_2048,
        help="RSA-2048 (default), RSA-3072, RSA-4096, ECDSA-P256, ECDSA-P384 (or rsa, ecdsa)",
    )
    gen.add_argument("--datastore", type=_driver, default="etcd", help="DataStore driver")
    gen.add_argument(
        "--datastore-endpoint", action="append", default=[], help="host:port (repeatable)"
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing Secret files")
    gen.add_argument("--out", required=True, type=Path, help="output directory")
    gen.set_defaults(func=cmd_generate)

    check = sub.add_parser("check", help="report expiry and validity of a generated set")
    check.add_argument("dir", type=Path, help="directory written by `certs generate`")
    check.add_argument("--deadline", type=parse_duration, default=timedelta(hours=24))
    check.add_argument("--tcp", type=Path, help=f"TenantControlPlane YAML (default DIR/{MANIFEST})")
    check.set_defaults(func=cmd_check)


def _resource(args: argparse.Namespace) -> dict[str, Any]:
    network: dict[str, Any] = {
        "address": args.address,
        "port": args.port,
        "certSANs": list(args.cert_san),
        "clusterDomain": args.cluster_domain,
        "serviceCidr": args.service_cidr,
    }
    if args.advertise_address:
        network["advertiseAddress"] = args.advertise_address
    spec: dict[str, Any] = {"dataStore": "default", "networkProfile": network}
    if args.konnectivity:
        spec["addons"] = {"konnectivity": {}}
    return {
        "apiVersion": "kamaji.clastix.io/v1alpha1",
        "kind": "TenantControlPlane",
        "metadata": {"name": args.name, "namespace": args.namespace},
        "spec": spec,
        "status": {"storage": {"driver": args.datastore}},
    }


def _write_file(path: Path, content: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)


def write_secret_dir(
    out: Path, name: str, data: Mapping[str, bytes], sensitive: frozenset[str]
) -> Path:
    """Write one Secret as `out/name/<key>`: directory 0700, secrets 0600, others 0644."""
    directory = out / name
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    for key, value in data.items():
        _write_file(directory / key, value, 0o600 if key in sensitive else 0o644)
    return directory


def read_secret_dir(directory: Path) -> dict[str, bytes]:
    """The files of one Secret directory as Secret data (empty when absent)."""
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _datastore_data(
    tcp: TcpSpec, ds_ca: SignerKeyPair, now: datetime, algorithm: KeyAlgorithm
) -> dict[str, bytes]:
    kind = SecretKind.DATASTORE_CERTIFICATE
    if tcp.datastore_driver == "etcd":
        return mint_secret_data(kind, tcp, now=now, signer=ds_ca, algorithm=algorithm)
    # MySQL/PostgreSQL/NATS: an external PKI issues the client certificate; the self-made
    # datastore CA stands in for it, and the Secret is built by copying, as Kamaji does.
    prof = PROFILES[kind]
    pair = issue_leaf(
        ds_ca,
        common_name=tcp.datastore_user,
        organizations=(),
        ext_key_usages=prof.ext_key_usages,
        key_usages=prof.key_usages,
        now=now,
        validity=prof.validity or timedelta(days=365),
        algorithm=algorithm,
    )
    return datastore_certificate_from_external(
        ca_pem=ds_ca.cert_pem, cert_pem=pair.cert_pem, key_pem=pair.key_pem
    )


def _existing(out: Path, names: list[str]) -> list[str]:
    return [n for n in names if (out / n).is_dir() and any((out / n).iterdir())]


def cmd_generate(args: argparse.Namespace) -> int:
    """Mint every Secret of the TCP described by the flags and write it under --out."""
    now = datetime.now(UTC)
    algorithm: KeyAlgorithm = args.algorithm
    out: Path = args.out
    try:
        tcp = TcpSpec.from_resource(_resource(args))
    except PkiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kinds = managed_kinds(tcp)
    targets = [secret_name(tcp.name, k) for k in kinds] + [DATASTORE_CA_DIR]
    clashes = _existing(out, targets)
    if clashes and not args.force:
        print(f"error: {out} already holds {', '.join(clashes)} (use --force)", file=sys.stderr)
        return 1
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    ds_ca = mint_ca(DATASTORE_CA_CN, now=now, algorithm=algorithm)
    ds_dir = write_secret_dir(
        out,
        DATASTORE_CA_DIR,
        {"ca.crt": ds_ca.cert_pem, "ca.key": ds_ca.key_pem},
        frozenset({"ca.key"}),
    )
    signers: dict[Signer, SignerKeyPair] = {Signer.DATASTORE_CA: ds_ca}
    endpoints = args.datastore_endpoint or [DEFAULT_ENDPOINTS[tcp.datastore_driver]]
    for kind in kinds:
        prof = PROFILES[kind]
        if kind is SecretKind.DATASTORE_CERTIFICATE:
            data = _datastore_data(tcp, ds_ca, now, algorithm)
        else:
            data = mint_secret_data(
                kind,
                tcp,
                now=now,
                signer=signers.get(prof.signer),
                algorithm=algorithm,
                datastore_endpoints=endpoints,
            )
        if kind is SecretKind.CA:
            signers[Signer.CA] = signer_from_secret_data(kind, data)
        elif kind is SecretKind.FRONT_PROXY_CA:
            signers[Signer.FRONT_PROXY_CA] = signer_from_secret_data(kind, data)
        name = secret_name(tcp.name, kind)
        write_secret_dir(out, name, data, prof.sensitive_keys)
        print(f"[certs] Generated {name} ({', '.join(sorted(data))})")
    manifest = yaml.safe_dump(_resource(args), sort_keys=False).encode()
    _write_file(out / MANIFEST, manifest, 0o644)
    print(f"[certs] DataStore CA ({tcp.datastore_driver}) written to {ds_dir}")
    print(f"[certs] TenantControlPlane manifest written to {out / MANIFEST}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Print the expiry table of a generated set; 1 when anything is expiring or invalid."""
    now = datetime.now(UTC)
    directory: Path = args.dir
    manifest: Path = args.tcp or directory / MANIFEST
    try:
        resource = yaml.safe_load(manifest.read_bytes())
        tcp = TcpSpec.from_resource(resource if isinstance(resource, dict) else {})
    except FileNotFoundError:
        print(f"error: {manifest} not found (pass --tcp FILE)", file=sys.stderr)
        return 2
    except (yaml.YAMLError, PkiError) as exc:
        print(f"error: {manifest}: {exc}", file=sys.stderr)
        return 2
    secrets = {k: read_secret_dir(directory / secret_name(tcp.name, k)) for k in managed_kinds(tcp)}
    datastore_ca = read_secret_dir(directory / DATASTORE_CA_DIR)
    report = expiration_report(
        tcp,
        secrets,
        now=now,
        deadline=args.deadline,
        datastore_ca_pem=datastore_ca.get("ca.crt"),
        datastore_ca_key_pem=datastore_ca.get("ca.key"),
    )
    print(render_report(report, now=now))
    return 0 if report.ok else 1

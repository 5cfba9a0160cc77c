"""`certlc status|rotate|audit|plan`: the operator commands.

- `status` reads every certificate of every TCP (or one) from the cluster and judges it with
  libs.pki, like `kubeadm certs check-expiration`, then the open rotation records from NATS
  (exit 1 when anything needs attention, a failed rotation included).
- `rotate` sends a `RotateRequest` to `certlc.api.v1.rotate`; `--wait` follows the audit stream
  until the rollout completes or fails; `--dry-run` shows the plan from the cluster, publishing
  nothing.
- `audit` lists the audit stream (oldest first) and `--follow`s it.
- `plan` lists the renewals lifecycle has scheduled in a coming period, as rollouts, with the
  rollout budget played forward (libs/cli/_plan.py); `status` shows each certificate's next one.

NATS through libs.bus, Kubernetes through libs.kube, certificates through libs.pki: this module
imports none of `nats`, `kubernetes` or `cryptography`. Every failure is one line on stderr and
an exit code (`Exit`, docs/cli.md).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from libs.bus import Bus
from libs.bus.errors import BusError
from libs.bus.read import StreamNotFoundError, StreamReader, open_reader
from libs.bus.request import NoResponderError, Reply, RequestTimeoutError, request
from libs.cli._audit import header_line, table_line
from libs.cli._opsutil import (
    CliError,
    Exit,
    connect_nats,
    fail,
    kube_client,
    kube_failure,
    nats_target,
    parse_since,
    parse_timeout,
    run_async,
    run_command,
    stamp,
    tcp_ref,
)
from libs.cli._plan import (
    ROLLOUT_TIME,
    budget_waits,
    estimate_starts,
    plan_data,
    read_schedule,
    render_plan,
    rollouts,
    scheduled_rotations,
)
from libs.cli._rotate import (
    RotationWatch,
    TargetError,
    TargetSpec,
    parse_target,
    phased_kind,
    plan_dry_run,
    render_dry_run,
    render_phased_dry_run,
    token_warning,
)
from libs.cli._rotations import (
    read_open_records,
    read_slots,
    record_data,
    render_records,
    render_slots,
    slots_data,
)
from libs.cli._status import as_data, collect, render_table
from libs.cli.certs import parse_duration
from libs.contracts import subjects
from libs.contracts.api import RotateAccepted, RotateRequest, ScheduledRenewal, Target
from libs.contracts.budget import Slots
from libs.contracts.codec import MalformedMessage, decode_accepted, decode_audit, encode
from libs.contracts.messages import KeyMaterialError
from libs.contracts.records import Phase, RotationRecord
from libs.kube.errors import KubeError, NotFound
from libs.pki import PkiError, SecretKind, TcpSpec, ca_bundle, secret_name
from libs.runtime.topology import DUPLICATE_WINDOW

REQUEST_TIMEOUT = 10.0
_BY_CODE = {400: Exit.USAGE, 404: Exit.NOT_FOUND, 409: Exit.CONFLICT, 423: Exit.CONFLICT}


def _nats_flag(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "NATS", "where and how to connect (docs/cli.md); secrets are only read from files"
    )
    group.add_argument(
        "--nats-url",
        metavar="URL",
        help="default: $NATS_URL, else $CERTLC_NATS_URL, else nats://127.0.0.1:4222",
    )
    group.add_argument(
        "--nats-creds",
        metavar="PATH",
        help=".creds file (user JWT and nkey seed); default: $CERTLC_NATS_CREDENTIALS",
    )
    group.add_argument(
        "--nats-nkey", metavar="PATH", help="nkey seed file; default: $CERTLC_NATS_NKEY_SEED"
    )
    group.add_argument(
        "--nats-user", metavar="NAME", help="user (with --nats-password-file); $CERTLC_NATS_USER"
    )
    group.add_argument(
        "--nats-password-file",
        metavar="PATH",
        help="file holding the user's password; default: $CERTLC_NATS_PASSWORD_FILE",
    )
    group.add_argument(
        "--nats-tls-ca",
        metavar="PATH",
        help="CA file verifying a tls:// server; default: $CERTLC_NATS_TLS_CA, else system CAs",
    )


def _kube_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", metavar="PATH", help="default: $KUBECONFIG, else in-cluster"
    )


def _register_rotate(subparsers: Any) -> None:
    rotate = subparsers.add_parser(
        "rotate",
        help="ask certlc to re-issue a TCP's certificates (and roll it out)",
        description="TARGET: x509, kubeconfig, ca, sa, or one Secret (k8s-126-admin-kubeconfig "
        "or admin-kubeconfig). `ca --phased` (or front-proxy-ca-certificate --phased) rotates a "
        "CA in three steps with no downtime: prepare (both CAs trusted), swap (everything "
        "re-issued by the new CA), complete (the old CA dropped); each --complete moves it on. "
        "`sa` rotates the service-account key the same way, with an overlap.",
    )
    rotate.add_argument("tcp", metavar="NS/TCP")
    rotate.add_argument("target", metavar="TARGET")
    rotate.add_argument("--reason", default="", metavar="TEXT", help="why (kept in the audit)")
    rotate.add_argument(
        "--requester",
        default=os.environ.get("USER") or "certlc-cli",
        metavar="NAME",
        help="who asks (default: $USER)",
    )
    rotate.add_argument(
        "--request-id", default="", help="idempotency key: the same id never rotates twice"
    )
    rotate.add_argument(
        "--wait", action="store_true", help="follow the rotation until its rollout ends"
    )
    rotate.add_argument(
        "--wait-for-window",
        action="store_true",
        help="start it only in one of the TCP's maintenance windows (at once when one is open "
        "or the TCP has none)",
    )
    rotate.add_argument(
        "--phased",
        action="store_true",
        help="rotate the CA (ca, front-proxy-ca-certificate) in phases; it stops after prepare",
    )
    rotate.add_argument(
        "--complete",
        action="store_true",
        help="move the open phased rotation of TARGET on to its next step",
    )
    rotate.add_argument(
        "--abort",
        action="store_true",
        help="back out of the open phased rotation of TARGET (after prepare: drop the new "
        "signer; after swap: sign with the old one again)",
    )
    rotate.add_argument(
        "--overlap",
        type=parse_timeout,
        default=None,
        metavar="DURATION",
        help="with --phased or sa: each wait between steps ends by itself after this long "
        "(a CA otherwise waits for --complete; sa defaults to CERTLC_SA_OVERLAP, 48h)",
    )
    rotate.add_argument(
        "--timeout",
        type=parse_timeout,
        default=timedelta(minutes=5),
        help="how long --wait waits: 90s, 5m, 1h, or a number of seconds (default 5m)",
    )
    rotate.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be re-issued and rolled out; publish nothing",
    )
    _nats_flag(rotate)
    _kube_flag(rotate)
    rotate.set_defaults(func=cmd_rotate)


def register(subparsers: Any) -> None:
    """Add `status`, `rotate`, `audit`, `plan` and `ca` to the `certlc` parser."""
    ca = subparsers.add_parser("ca", help="a TCP's certificate authorities")
    ca_sub = ca.add_subparsers(dest="ca_command", required=True, metavar="SUBCOMMAND")
    bundle = ca_sub.add_parser(
        "bundle",
        help="print the CA bundle to distribute to nodes (PEM on stdout)",
        description="The CA certificates a TCP's clients and nodes must trust, as PEM on stdout "
        "(a line per certificate on stderr): the CA Secret's ca.crt, or with --front-proxy the "
        "front-proxy CA's.",
    )
    bundle.add_argument("tcp", metavar="NS/TCP")
    bundle.add_argument(
        "--front-proxy", action="store_true", help="the front-proxy CA instead of the TCP's CA"
    )
    _kube_flag(bundle)
    bundle.set_defaults(func=cmd_ca_bundle)

    status = subparsers.add_parser(
        "status",
        help="certificate expiry and validity of TenantControlPlanes, read from the cluster",
        description="Every certificate of every TCP of a namespace (or one TCP), with CA rows. "
        "Exit 0 when all are valid, 1 when anything is expiring, invalid or missing.",
    )
    where = status.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", help="namespace (default: default)")
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="TCPs of every namespace"
    )
    status.add_argument("tcp", nargs="?", metavar="TCP", help="one TenantControlPlane (or NS/TCP)")
    status.add_argument(
        "--deadline",
        type=parse_duration,
        default=timedelta(hours=24),
        help="expiring when NotAfter is within this (default 24h)",
    )
    status.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    status.add_argument(
        "--no-rotations",
        action="store_true",
        help="do not read the open rotations from NATS (certificates only)",
    )
    _kube_flag(status)
    _nats_flag(status)
    status.set_defaults(func=cmd_status)

    _register_rotate(subparsers)

    audit = subparsers.add_parser(
        "audit",
        help="list (and follow) certlc's audit events",
        description="Audit events from the CERTLC_AUDIT stream, oldest first.",
    )
    audit.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    audit.add_argument(
        "--since", type=parse_since, help="a duration (1h, 7d) or a time (2026-01-02T03:04:05Z)"
    )
    audit.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    audit.add_argument("tcp", nargs="?", metavar="TCP", help="only this TCP (or NS/TCP)")
    audit.add_argument("-o", "--output", choices=("table", "json"), default="table")
    _nats_flag(audit)
    audit.set_defaults(func=cmd_audit)

    plan = subparsers.add_parser(
        "plan",
        help="what will renew and roll out in a coming period, as lifecycle scheduled it",
        description="The renewals lifecycle has scheduled (jitter, each TCP's profile and "
        "maintenance windows applied), one line per rollout, with the waits the rollout budget "
        "would add (an estimate, each rollout taking --rollout-time).",
    )
    plan.add_argument("-n", "--namespace", help="only this namespace (default: every one)")
    plan.add_argument("tcp", nargs="?", metavar="TCP", help="only this TCP (NS/TCP, or with -n)")
    plan.add_argument(
        "--since",
        type=parse_ahead,
        help="from: a duration from now (2h) or a time (2026-01-02T03:04:05Z); default: now, "
        "what is due already included",
    )
    plan.add_argument(
        "--until",
        type=parse_ahead,
        help="until: a duration from now or a time (default: 7d)",
    )
    plan.add_argument(
        "--rollout-time",
        type=parse_duration,
        default=ROLLOUT_TIME,
        help="how long one rollout takes, for the budget estimate (default 1m)",
    )
    plan.add_argument("-o", "--output", choices=("table", "json"), default="table")
    _nats_flag(plan)
    plan.set_defaults(func=cmd_plan)


# --- status --------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    return run_command(lambda: _status(args))


def _status_target(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(namespace or None for all, TCP name or None for all) of `status`."""
    if args.all_namespaces:
        if args.tcp and "/" in args.tcp:
            fail(Exit.USAGE, "with -A, name the TCP without its namespace")
        return None, tcp_ref(args.tcp)[1] if args.tcp else None
    if args.tcp:
        return tcp_ref(args.tcp, args.namespace)
    return tcp_ref(f"{args.namespace or 'default'}/x")[0], None


def _status(args: argparse.Namespace) -> int:
    namespace, name = _status_target(args)
    kube = kube_client(args.kubeconfig)
    now = datetime.now(UTC)
    try:
        report = collect(kube, namespace=namespace, name=name, now=now, deadline=args.deadline)
    finally:
        kube.close()
    seen = BusView(unscheduled="not read (--no-rotations)" if args.no_rotations else "")
    unread = ""
    if not args.no_rotations:
        try:
            seen = run_async(_open_records(args, namespace, name))
        except CliError as exc:
            unread = exc.message
    records, slots, renewals, unscheduled = (
        seen.records,
        seen.slots,
        seen.renewals,
        seen.unscheduled,
    )
    ok = report.ok and not any(r.phase is Phase.FAILED for r in records)
    if args.output == "table":
        print(render_table(report, renewals, seen.waits))
        lines = ["", f"- open rotations not shown: {unread}"] if unread else []
        if unscheduled and report.tcps and not unread and not args.no_rotations:
            lines += ["", f"- next renewals not shown: {unscheduled}"]
        lines = lines or [*render_records(records, now), *render_slots(slots, now, namespace, name)]
        if lines:
            print("\n".join(lines))
    else:
        data = as_data(report, renewals, seen.waits)
        data["ok"] = ok
        if unscheduled:
            data["renewalsError"] = unscheduled
        data["rotations"] = [record_data(r, now) for r in records]
        data["rolloutQueue"] = slots_data(slots, namespace, name)
        data["rotationsRead"] = not args.no_rotations and not unread
        if unread:
            data["rotationsError"] = unread
        text = json.dumps(data, indent=2) + "\n" if args.output == "json" else None
        print(text or yaml.safe_dump(data, sort_keys=False), end="")
    return Exit.OK if ok else Exit.PROBLEM


@dataclass(frozen=True)
class BusView:
    """What `status` reads from NATS: the open rotation records, the rollout budget's document,
    the next renewal of each certificate by (namespace, Secret), or why it could not be read,
    and the estimated budget wait of those that would wait (within BUDGET_ESTIMATE_AHEAD)."""

    records: list[RotationRecord] = field(default_factory=list)
    slots: Slots = field(default_factory=Slots)
    renewals: dict[tuple[str, str], ScheduledRenewal] | None = None
    unscheduled: str = ""
    waits: dict[tuple[str, str], timedelta] = field(default_factory=dict)


BUDGET_ESTIMATE_AHEAD = timedelta(days=7)


async def _open_records(
    args: argparse.Namespace, namespace: str | None, name: str | None
) -> BusView:
    bus = await connect_nats(*nats_target(args))
    try:
        if namespace is None:
            records = await read_open_records(bus, None, None, all_tcps_named=name)
        else:
            records = await read_open_records(bus, namespace, name)
        slots = await read_slots(bus)
        try:
            # With -A and a TCP name, every namespace's schedule, filtered here.
            found, now = await read_schedule(bus, namespace, name if namespace else None)
            waits: dict[tuple[str, str], timedelta] = {}
            if slots.total > 0 or slots.per_namespace > 0:
                # The budget is the fleet's: its waits come from every TCP's renewals.
                until = (now or datetime.now(UTC)) + BUDGET_ESTIMATE_AHEAD
                fleet, _ = await read_schedule(bus, None, None, None, until)
                waits = budget_waits(fleet, slots.total, slots.per_namespace, ROLLOUT_TIME)
        except CliError as exc:
            return BusView(records, slots, None, exc.message)
        by_secret = {(r.namespace, r.secret): r for r in found if name is None or r.tcp == name}
        return BusView(records, slots, by_secret, "", waits)
    except BusError as exc:
        fail(Exit.NATS, str(exc))
    finally:
        await bus.close()


# --- ca bundle -----------------------------------------------------------------------------


def cmd_ca_bundle(args: argparse.Namespace) -> int:
    return run_command(lambda: _ca_bundle(args))


def _ca_bundle(args: argparse.Namespace) -> int:
    namespace, tcp = tcp_ref(args.tcp)
    kind = SecretKind.FRONT_PROXY_CA if args.front_proxy else SecretKind.CA
    name = secret_name(tcp, kind)
    kube = kube_client(args.kubeconfig)
    try:
        try:
            kube.get_tcp(namespace, tcp)
        except KubeError as exc:
            raise kube_failure(exc, f"TenantControlPlane {namespace}/{tcp}") from None
        try:
            secret = kube.get_secret(namespace, name)
        except KubeError as exc:
            raise kube_failure(exc, f"Secret {namespace}/{name}") from None
    finally:
        kube.close()
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    try:
        found = ca_bundle(kind, data)
    except PkiError as exc:
        fail(Exit.PROBLEM, f"Secret {namespace}/{name}: {exc}")
    sys.stdout.write(found.pem.decode())
    for c in found.certificates:
        print(
            f"{name}: {c.subject}, serial {c.serial}, until {stamp(c.not_after)}, "
            f"SHA-256 {c.fingerprint_sha256}",
            file=sys.stderr,
        )
    return Exit.OK


# --- plan ----------------------------------------------------------------------------------


def parse_ahead(text: str) -> datetime:
    """A duration after now (`7d`) or a moment (`2026-01-02T03:04:05Z`) -> aware UTC datetime."""
    try:
        return datetime.now(UTC) + parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        return parse_since(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r} (a duration from now such as 2h, 7d, or a time such as "
            "2026-01-02T03:04:05Z)"
        ) from None


def cmd_plan(args: argparse.Namespace) -> int:
    return run_command(lambda: _plan(args))


def _plan(args: argparse.Namespace) -> int:
    namespace: str | None = args.namespace
    name: str | None = None
    if args.tcp:
        if "/" not in args.tcp and not namespace:
            fail(Exit.USAGE, "name the TCP as NS/TCP, or give -n")
        namespace, name = tcp_ref(args.tcp, namespace)
    since: datetime | None = args.since
    until: datetime = args.until or datetime.now(UTC) + timedelta(days=7)
    if since is not None and until <= since:
        fail(Exit.USAGE, "--until must come after --since")
    found, records, slots, now = run_async(_read_plan(args, namespace, name, since, until))
    budget = (slots.total, slots.per_namespace)
    planned = sorted(
        [*rollouts(found), *scheduled_rotations(records, since, until)],
        key=lambda p: (p.at, p.deadline, p.key),
    )
    started = estimate_starts(planned, *budget, args.rollout_time)
    if args.output == "json":
        data = plan_data(started, found, budget, args.rollout_time, (since, until))
        print(json.dumps(data, indent=2))
    else:
        print("\n".join(render_plan(started, now, budget, args.rollout_time, (since, until))))
    return Exit.OK


async def _read_plan(
    args: argparse.Namespace,
    namespace: str | None,
    name: str | None,
    since: datetime | None,
    until: datetime,
) -> tuple[list[ScheduledRenewal], list[RotationRecord], Slots, datetime]:
    """The scheduled renewals, the open rotation records (for the requested rotations that wait
    for a window), the rollout budget, and lifecycle's clock."""
    bus = await connect_nats(*nats_target(args))
    try:
        found, now = await read_schedule(bus, namespace, name, since, until)
        records = await read_open_records(bus, namespace, name)
        return found, records, await read_slots(bus), now or datetime.now(UTC)
    except BusError as exc:
        fail(Exit.NATS, str(exc))
    finally:
        await bus.close()


# --- rotate --------------------------------------------------------------------------------


def cmd_rotate(args: argparse.Namespace) -> int:
    return run_command(lambda: _rotate(args))


def _rotate(args: argparse.Namespace) -> int:
    namespace, tcp = tcp_ref(args.tcp)
    try:
        spec = parse_target(tcp, args.target)
    except TargetError as exc:
        fail(Exit.USAGE, str(exc))
    phased = args.phased or args.complete or args.abort or spec.target is Target.SA
    if args.complete and args.abort:
        fail(Exit.USAGE, "--complete and --abort contradict each other")
    if (args.phased or args.overlap is not None) and (args.complete or args.abort):
        fail(
            Exit.USAGE,
            "--complete and --abort move an open phased rotation; "
            "they take no --phased or --overlap",
        )
    if args.overlap is not None and not phased:
        fail(Exit.USAGE, "--overlap applies to a phased rotation (--phased, or the target sa)")
    if args.dry_run:
        if args.complete or args.abort:
            fail(Exit.USAGE, "--dry-run shows a new rotation; `certlc status` shows an open one")
        if phased:
            return _phased_dry_run(args, namespace, tcp, spec)
        return _dry_run(args, namespace, tcp, spec)
    if spec.kind is SecretKind.SA and not phased:
        print("\n".join(token_warning(tcp)), file=sys.stderr)
    try:
        req = RotateRequest(
            namespace=namespace,
            tcp=tcp,
            target=spec.target,
            secret=spec.secret,
            note=args.reason,
            requester=args.requester,
            request_id=args.request_id,
            wait_for_window=args.wait_for_window,
            phased=args.phased,
            complete=args.complete,
            abort=args.abort,
            overlap_seconds=args.overlap.total_seconds() if args.overlap is not None else 0.0,
        )
    except (KeyMaterialError, ValueError) as exc:
        fail(Exit.USAGE, f"bad request: {exc}")
    try:
        return run_async(_rotate_async(args, req))
    except KeyboardInterrupt:
        print(
            "interrupted; the rotation goes on: follow it with `certlc audit -f`", file=sys.stderr
        )
        return 130


def _phased_dry_run(args: argparse.Namespace, namespace: str, tcp: str, spec: TargetSpec) -> int:
    kind = phased_kind(spec)
    if kind is None:
        fail(
            Exit.USAGE,
            f"{args.target} is no signer: only ca, sa and the CA Secrets rotate in phases",
        )
    kube = kube_client(args.kubeconfig)
    try:
        tcp_obj = kube.get_tcp(namespace, tcp)
    except KubeError as exc:
        raise kube_failure(exc, f"TenantControlPlane {namespace}/{tcp}") from None
    finally:
        kube.close()
    try:
        tcp_spec = TcpSpec.from_resource(tcp_obj)
    except PkiError as exc:
        fail(Exit.PROBLEM, f"TenantControlPlane {namespace}/{tcp}: {exc}")
    print("\n".join(render_phased_dry_run(namespace, tcp_spec, kind, args.overlap)))
    return Exit.OK


def _dry_run(args: argparse.Namespace, namespace: str, tcp: str, spec: TargetSpec) -> int:
    kube = kube_client(args.kubeconfig)
    try:
        try:
            tcp_obj = kube.get_tcp(namespace, tcp)
            listing = kube.list_secrets(namespace)
        except KubeError as exc:
            raise kube_failure(exc, f"TenantControlPlane {namespace}/{tcp}") from None
        try:
            deployment: dict[str, Any] | None = kube.get_deployment(namespace, tcp)
        except NotFound:
            deployment = None
        except KubeError as exc:
            raise kube_failure(exc, f"Deployment {namespace}/{tcp}") from None
    finally:
        kube.close()
    secrets = {
        str((s.get("metadata") or {}).get("name") or ""): s
        for s in listing.get("items") or []
        if isinstance(s, dict)
    }
    try:
        plan = plan_dry_run(spec, tcp_obj, secrets, deployment)
    except PkiError as exc:
        fail(Exit.PROBLEM, f"TenantControlPlane {namespace}/{tcp}: {exc}")
    print("\n".join(render_dry_run(plan)))
    if args.reason:
        print(f"reason: {args.reason}")
    if plan.refusal is not None:
        return _BY_CODE.get(plan.refusal[0], Exit.PROBLEM)
    return Exit.OK


def _reply_failure(reply: Reply) -> CliError:
    code = reply.error_code or 500
    message = f"{code} {reply.error or 'no description'}"
    if code == 503:
        return CliError(Exit.NATS, f"certlc is not ready: {message}")
    return CliError(_BY_CODE.get(code, Exit.PROBLEM), message)


async def _ask(bus: Bus, req: RotateRequest) -> RotateAccepted:
    try:
        reply = await request(bus, subjects.API_ROTATE, encode(req), max_wait=REQUEST_TIMEOUT)
    except NoResponderError:
        fail(Exit.NATS, f"no certlc lifecycle answers on {subjects.API_ROTATE} (is it running?)")
    except RequestTimeoutError:
        fail(Exit.NATS, f"certlc lifecycle did not answer within {REQUEST_TIMEOUT:g}s")
    except BusError as exc:
        fail(Exit.NATS, str(exc))
    if not reply.ok:
        raise _reply_failure(reply)
    try:
        return decode_accepted(reply.data)
    except MalformedMessage as exc:
        fail(Exit.PROBLEM, f"unexpected reply from certlc: {exc}")


async def _audit_reader(bus: Bus, filter_subject: str, **start: Any) -> StreamReader:
    try:
        return await open_reader(bus, subjects.AUDIT_STREAM, filter_subject, **start)
    except StreamNotFoundError:
        fail(Exit.NATS, f"stream {subjects.AUDIT_STREAM} not found: is certlc running there?")
    except BusError as exc:
        fail(Exit.NATS, str(exc))


async def _rotate_async(args: argparse.Namespace, req: RotateRequest) -> int:
    bus = await connect_nats(*nats_target(args))
    reader: StreamReader | None = None
    try:
        if args.wait:
            # Subscribed before asking, so no event of the rotation can be missed; from a
            # duplicate window back, so that a retried request (the same rotation id, whose
            # events are not repeated) is followed too. Other rotations' events are ignored.
            since = datetime.now(UTC) - timedelta(seconds=DUPLICATE_WINDOW)
            reader = await _audit_reader(
                bus, subjects.audit_filter(req.namespace, req.tcp), since=since
            )
        accepted = await _ask(bus, req)
        names = [f"{accepted.tcp}-{s}" for s in accepted.secrets]
        kind = " (CA rotation)" if accepted.ca_rotation else ""
        if accepted.phased:
            kind = f" (phased rotation of {accepted.tcp}-{accepted.phased}, step {accepted.step})"
        print(f"rotation {accepted.id} accepted for {accepted.namespace}/{accepted.tcp}{kind}")
        if req.note:
            print(f"reason: {req.note}")
        print(f"re-issuing {len(names)} Secret(s): {', '.join(names)}", flush=True)
        if accepted.not_before is not None:
            print(
                f"waiting for the maintenance window that opens at {stamp(accepted.not_before)}",
                flush=True,
            )
        if reader is None:
            return Exit.OK
        return await _follow(reader, accepted, args.timeout)
    finally:
        if reader is not None:
            await reader.close()
        await bus.close()


async def _follow(reader: StreamReader, accepted: RotateAccepted, limit: timedelta) -> int:
    watch = RotationWatch(accepted)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit.total_seconds()
    while (left := deadline - loop.time()) > 0:
        stored = await reader.next(left)
        if stored is None:
            break
        try:
            event = decode_audit(stored.data)
        except MalformedMessage:
            continue
        lines, outcome = watch.observe(event)
        for line in lines:
            print(line, flush=True)
        if outcome is not None:
            print(outcome.message)
            if outcome.ok:
                return Exit.OK
            raise CliError(Exit.PROBLEM, f"rotation {accepted.id}: {outcome.message}")
    seen = ", ".join(sorted(watch.written)) or "nothing"
    raise CliError(
        Exit.TIMEOUT,
        f"rotation {accepted.id} not finished after {_human(limit)} (Secrets written: {seen})",
    )


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds // 60}m"
    return f"{seconds}s"


# --- audit ---------------------------------------------------------------------------------


def cmd_audit(args: argparse.Namespace) -> int:
    return run_command(lambda: _audit(args))


def _audit(args: argparse.Namespace) -> int:
    if args.tcp:
        namespace, name = tcp_ref(args.tcp, args.namespace)
        filter_subject = subjects.audit_filter(namespace, name)
    elif args.namespace:
        filter_subject = subjects.audit_filter(tcp_ref(f"{args.namespace}/x")[0])
    else:
        filter_subject = subjects.audit_filter()
    try:
        return run_async(_audit_async(args, filter_subject))
    except KeyboardInterrupt:
        return Exit.OK  # Ctrl-C is how --follow ends


def _emit(data: bytes, seq: int, output: str) -> None:
    try:
        event = decode_audit(data)
    except MalformedMessage:
        print(f"warning: message {seq} is not an audit event; skipped", file=sys.stderr)
        return
    print(table_line(event) if output == "table" else encode(event).decode(), flush=True)


async def _audit_async(args: argparse.Namespace, filter_subject: str) -> int:
    bus = await connect_nats(*nats_target(args))
    try:
        reader = await _audit_reader(bus, filter_subject, since=args.since)
        try:
            backlog = await reader.read_available()
            if args.output == "table":
                if backlog or args.follow:
                    print(header_line(), flush=True)
                else:
                    print("No audit events.")
            for stored in backlog:
                _emit(stored.data, stored.seq, args.output)
            while args.follow:
                stored_next = await reader.next(None)
                if stored_next is not None:
                    _emit(stored_next.data, stored_next.seq, args.output)
        finally:
            await reader.close()
    finally:
        await bus.close()
    return Exit.OK

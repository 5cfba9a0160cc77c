"""Shared plumbing of the operator commands (`certlc status|rotate|audit`).

Exit codes, the one-line error type every command raises, where the NATS URL, the NATS
credentials and the kubeconfig come from, connecting with a short deadline, argument parsers
(TCP references, durations, moments), plain-text tables, and a guard that keeps library log
records (urllib3 retries, the NATS client's reconnect notes) off the terminal while a command
runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from libs.bus import Bus, BusAuthError, BusConnectError, NatsAuth, NatsAuthError, connect
from libs.bus.auth import check_files, resolve_auth
from libs.cli.certs import parse_duration
from libs.contracts.names import is_kube_name
from libs.kube.client import KubeClient
from libs.kube.errors import Forbidden, KubeError, NotFound, RetryableKubeError, Unauthorized

T = TypeVar("T")

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENVS = ("NATS_URL", "CERTLC_NATS_URL")
# NATS authentication: (resolve_auth keyword, flag, environment variable), as the services read
# it. Flags of the method (credentials, nkey, user/password) replace the environment's.
NATS_AUTH_METHOD_SETTINGS = (
    ("credentials", "--nats-creds", "CERTLC_NATS_CREDENTIALS"),
    ("nkey_seed", "--nats-nkey", "CERTLC_NATS_NKEY_SEED"),
    ("user", "--nats-user", "CERTLC_NATS_USER"),
    ("password_file", "--nats-password-file", "CERTLC_NATS_PASSWORD_FILE"),
)
NATS_TLS_CA_SETTING = ("tls_ca", "--nats-tls-ca", "CERTLC_NATS_TLS_CA")
CONNECT_DEADLINE = 2.0  # seconds: an operator waits this long at most for an absent server
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

_QUIET_LOGGERS = ("urllib3", "kubernetes", "nats", "libs.bus", "libs.kube", "asyncio")
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


class Exit(enum.IntEnum):
    """Exit codes of the operator commands (docs/cli.md)."""

    OK = 0
    PROBLEM = 1  # status: something expiring/invalid/missing; rotate --wait: rollout failed
    USAGE = 2  # bad arguments, a bad target, or a 400 from certlc
    NOT_FOUND = 3  # unknown TenantControlPlane or Secret (404)
    CONFLICT = 4  # a CA rotation in progress (409) or paused (423)
    NATS = 5  # NATS unreachable, or no certlc lifecycle answering on it
    CLUSTER = 6  # the Kubernetes API unreachable or refusing us
    TIMEOUT = 7  # rotate --wait: the rotation did not finish in time


class CliError(Exception):
    """A failure to report as one line on stderr, with its exit code."""

    def __init__(self, code: Exit, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = " ".join(message.split())


def fail(code: Exit, message: str) -> NoReturn:
    raise CliError(code, message)


def run_command(body: Callable[[], int]) -> int:
    """Run a command body: `CliError` becomes `error: ...` on stderr and its exit code."""
    with quiet_libraries():
        try:
            return body()
        except CliError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return int(exc.code)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library warnings (retries, reconnects) would break one-line errors: raise their level
    for the duration of a command, then put it back (tests run commands in-process)."""
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


# --- where to connect ----------------------------------------------------------------------


def nats_url(flag: str | None) -> str:
    """`--nats-url`, else $NATS_URL, else $CERTLC_NATS_URL, else nats://127.0.0.1:4222."""
    return _nats_url_source(flag)[0]


def _nats_url_source(flag: str | None) -> tuple[str, str]:
    """The URL and what it came from (a flag or a variable name, for messages)."""
    if flag:
        return flag, "--nats-url"
    for env in NATS_URL_ENVS:
        value = os.environ.get(env, "").strip()
        if value:
            return value, env
    return DEFAULT_NATS_URL, "the default NATS URL"


def nats_target(args: argparse.Namespace) -> tuple[str, NatsAuth]:
    """The NATS URL and authentication of a command: flags, else the services' variables.

    Any method flag (`--nats-creds`, `--nats-nkey`, `--nats-user`, `--nats-password-file`)
    replaces the method of the environment; `--nats-tls-ca` replaces $CERTLC_NATS_TLS_CA.
    `CliError(USAGE)` when they conflict or a file is missing, unreadable or malformed."""
    url, url_source = _nats_url_source(getattr(args, "nats_url", None))
    values: dict[str, str] = {}
    labels: dict[str, str] = {"url": url_source}
    flagged = any(getattr(args, _attr(flag), None) for _, flag, _ in NATS_AUTH_METHOD_SETTINGS)
    for key, flag, env in NATS_AUTH_METHOD_SETTINGS:
        if flagged:
            values[key], labels[key] = getattr(args, _attr(flag), None) or "", flag
        else:
            values[key], labels[key] = os.environ.get(env, ""), env
    key, flag, env = NATS_TLS_CA_SETTING
    from_flag = getattr(args, _attr(flag), None)
    values[key] = from_flag or os.environ.get(env, "")
    labels[key] = flag if from_flag else env
    try:
        auth = resolve_auth(url, labels=labels, **values)
        check_files(auth)
    except NatsAuthError as exc:
        fail(Exit.USAGE, str(exc))
    return url, auth


def _attr(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def shown_url(url: str) -> str:
    """A NATS URL (or comma list) for messages: credentials (`user:pass@`, tokens) removed."""
    shown = []
    for one in url.split(","):
        scheme, sep, rest = one.strip().partition("://")
        if not sep:
            scheme, rest = "", scheme
        shown.append(f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}")
    return ",".join(shown)


async def connect_nats(url: str, auth: NatsAuth | None = None) -> Bus:
    """Connect with a short deadline; `CliError(NATS)` when no server answers or the server
    refuses the credentials (the message names the method, never a secret)."""
    where = shown_url(url)
    try:
        return await connect(
            url,
            name="certlc-cli",
            auth=auth or NatsAuth(),
            connect_timeout=1.0,
            connect_deadline=CONNECT_DEADLINE,
        )
    except BusAuthError as exc:
        fail(Exit.NATS, str(exc))
    except BusConnectError:
        fail(Exit.NATS, f"cannot reach NATS at {where} (no answer within {CONNECT_DEADLINE:g}s)")
    except NatsAuthError as exc:  # a file went away since it was checked
        fail(Exit.USAGE, str(exc))
    except (OSError, ValueError) as exc:  # e.g. a malformed URL
        fail(Exit.NATS, f"cannot connect to NATS at {where}: {type(exc).__name__}")


def kubeconfig_path(flag: str | None) -> str | None:
    """`--kubeconfig`, else the first entry of $KUBECONFIG, else None (in-cluster)."""
    if flag:
        return flag
    env = os.environ.get("KUBECONFIG", "")
    for entry in env.split(os.pathsep):
        if entry.strip():
            return entry.strip()
    return None


def kube_client(flag: str | None) -> KubeClient:
    """A client from the kubeconfig, or in-cluster; `CliError(CLUSTER)` when neither works."""
    path = kubeconfig_path(flag)
    if path is None:
        in_cluster = os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file()
        if not in_cluster:
            fail(Exit.CLUSTER, "no kubeconfig: pass --kubeconfig or set KUBECONFIG")
    elif not Path(path).is_file():
        fail(Exit.CLUSTER, f"kubeconfig {path} not found")
    try:
        return KubeClient.from_kubeconfig(path)
    except Exception as exc:  # noqa: BLE001 - the client's config errors are its own types
        fail(Exit.CLUSTER, f"cannot load kubeconfig {path or '(in-cluster)'}: {exc}")


def kube_failure(exc: KubeError, what: str) -> CliError:
    """The `CliError` for a failed Kubernetes call about `what`."""
    if isinstance(exc, NotFound):
        return CliError(Exit.NOT_FOUND, f"{what} not found")
    if isinstance(exc, RetryableKubeError) and exc.status == 0:
        found = _ERRNO.search(exc.message)
        reason = found.group(0).strip() if found else exc.message[:200]
        return CliError(Exit.CLUSTER, f"cannot reach the Kubernetes API: {reason}")
    if isinstance(exc, Unauthorized | Forbidden):
        return CliError(Exit.CLUSTER, f"the Kubernetes API refused to read {what}: {exc.message}")
    return CliError(Exit.CLUSTER, f"reading {what}: {exc.status} {exc.reason}: {exc.message}")


# --- argument parsing ----------------------------------------------------------------------


def parse_timeout(text: str) -> timedelta:
    """`--timeout`: a duration (`90s`, `5m`) or a bare number of seconds (`5`, `2.5`); more
    than zero, since a zero timeout would give up before anything could happen."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        limit = parse_duration(value)
    else:
        if not math.isfinite(seconds):
            raise argparse.ArgumentTypeError(f"invalid timeout {text!r}")
        limit = timedelta(seconds=seconds)
    if limit <= timedelta(0):
        raise argparse.ArgumentTypeError(
            f"invalid timeout {text!r}: it must be more than 0 (e.g. 30s, 5m)"
        )
    return limit


def parse_since(text: str) -> datetime:
    """A duration before now (`1h`) or a moment (`2026-01-02T03:04:05Z`) -> aware UTC datetime."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --since {text!r} (a duration such as 1h, 7d, or a time such as "
            "2026-01-02T03:04:05Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def tcp_ref(text: str, namespace: str | None = None, default: str = "default") -> tuple[str, str]:
    """`NS/TCP` or `TCP` (then in `namespace`, else `default`) -> (namespace, name)."""
    ns, slash, name = text.rpartition("/")
    if slash and not ns:
        fail(Exit.USAGE, f"{text!r} names no namespace (use NS/TCP or TCP)")
    ns = ns or namespace or default
    if namespace and ns != namespace:
        fail(Exit.USAGE, f"{text!r} names namespace {ns!r} but -n says {namespace!r}")
    for value, what in ((ns, "namespace"), (name, "TenantControlPlane name")):
        if not is_kube_name(value):
            fail(Exit.USAGE, f"{value!r} is not a valid {what}")
    return ns, name


# --- output --------------------------------------------------------------------------------


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces, like kubeadm's tables."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def stamp(moment: datetime) -> str:
    """`2026-01-02T03:04:05Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phased_target(kind: str) -> str:
    """The `certlc rotate` TARGET that names the phased rotation of Secret kind `kind`."""
    return "sa" if kind == "sa-certificate" else kind

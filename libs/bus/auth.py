"""How a client authenticates to NATS, with every secret kept in a file until connect time.

One of three methods, or none (a server without users, or credentials in the URL):

- a `.creds` file (decentralized auth: the user JWT and its nkey seed), `credentials`;
- an nkey seed file (nkey users in the server configuration), `nkey_seed`;
- a user name and a password file (`user` + `password_file`), the password read from the file
  with its trailing newline removed.

Plus, for any of them, `tls_ca`: a CA file that verifies the server of a `tls://` URL instead of
the system CAs.

`resolve_auth` checks the combination (pure: at most one method, a user needs a password file,
no file method with credentials in the URL); `check_files` reads each file once and checks it
(exists, is readable, not empty, holds what it should), so a bad setting stops a process at start
with a message naming the setting and the path. Messages never contain a secret: neither the
password, nor a seed, nor a JWT. Names of settings in messages come from `labels` (environment
variables by default, command-line flags for the CLI).

This module imports `nkeys` (to parse seeds) but not `nats`.
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

# The settings' names in messages, by field; the CLI passes its flags instead.
ENV_LABELS: Mapping[str, str] = {
    "url": "CERTLC_NATS_URL",
    "credentials": "CERTLC_NATS_CREDENTIALS",
    "nkey_seed": "CERTLC_NATS_NKEY_SEED",
    "user": "CERTLC_NATS_USER",
    "password_file": "CERTLC_NATS_PASSWORD_FILE",
    "tls_ca": "CERTLC_NATS_TLS_CA",
}

_JWT_BEGIN = "BEGIN NATS USER JWT"
_SEED_BEGIN = "BEGIN USER NKEY SEED"
_MAX_FILE_BYTES = 64 * 1024  # a .creds file is about 1 KiB; anything huge is a wrong path


class NatsAuthError(ValueError):
    """The NATS authentication settings conflict, or a file they name is missing or unusable.

    The message names the setting(s) and the path, never a secret."""


class AuthMethod(enum.StrEnum):
    NONE = "none"  # no client authentication, or credentials in the URL
    CREDENTIALS = "credentials"  # .creds file: JWT + nkey seed
    NKEY = "nkey"  # nkey seed file
    PASSWORD = "password"  # user + password file


@dataclass(frozen=True)
class NatsAuth:
    """The authentication (and server CA) a NATS client uses; paths only, no secret."""

    credentials: Path | None = None
    nkey_seed: Path | None = None
    user: str = ""
    password_file: Path | None = None
    tls_ca: Path | None = None
    labels: Mapping[str, str] = field(
        default_factory=lambda: dict(ENV_LABELS), compare=False, repr=False
    )

    @property
    def method(self) -> AuthMethod:
        if self.credentials is not None:
            return AuthMethod.CREDENTIALS
        if self.nkey_seed is not None:
            return AuthMethod.NKEY
        if self.password_file is not None:
            return AuthMethod.PASSWORD
        return AuthMethod.NONE

    def label(self, name: str) -> str:
        return self.labels.get(name, ENV_LABELS[name])

    def describe(self) -> str:
        """For messages: which method, from which setting (no secret)."""
        if self.credentials is not None:
            return f"credentials file {self.credentials} ({self.label('credentials')})"
        if self.nkey_seed is not None:
            return f"nkey seed file {self.nkey_seed} ({self.label('nkey_seed')})"
        if self.password_file is not None:
            return (
                f"user {self.user!r} with the password of {self.password_file} "
                f"({self.label('password_file')})"
            )
        return "no credentials" if self.tls_ca is None else "no credentials, TLS with own CA"


def url_has_credentials(servers: str) -> bool:
    """Whether any URL of a comma list carries `user:password@` or `token@`."""
    for one in servers.split(","):
        _, sep, rest = one.strip().partition("://")
        authority = (rest if sep else one.strip()).split("/", 1)[0]
        if "@" in authority:
            return True
    return False


def resolve_auth(
    url: str,
    *,
    credentials: str = "",
    nkey_seed: str = "",
    user: str = "",
    password_file: str = "",
    tls_ca: str = "",
    labels: Mapping[str, str] = ENV_LABELS,
) -> NatsAuth:
    """Settings (empty: unset) -> `NatsAuth`; `NatsAuthError` when they conflict. No file is
    read here (see `check_files`)."""
    names = {**ENV_LABELS, **labels}
    credentials, nkey_seed = credentials.strip(), nkey_seed.strip()
    user, password_file, tls_ca = user.strip(), password_file.strip(), tls_ca.strip()
    if user and not password_file:
        raise NatsAuthError(
            f"{names['user']} is set but {names['password_file']} is not: "
            "the password must come from a file"
        )
    if password_file and not user:
        raise NatsAuthError(
            f"{names['password_file']} is set but {names['user']} is not: name the NATS user"
        )
    chosen = [
        names[name]
        for name, value in (
            ("credentials", credentials),
            ("nkey_seed", nkey_seed),
            ("password_file", password_file),
        )
        if value
    ]
    if password_file:
        chosen[-1] = f"{names['user']}/{names['password_file']}"
    if len(chosen) > 1:
        raise NatsAuthError(
            f"more than one NATS authentication method: {' and '.join(chosen)}; set only one"
        )
    if chosen and url_has_credentials(url):
        raise NatsAuthError(
            f"{names['url']} carries credentials (user:password@ or token@) and {chosen[0]} "
            f"is set: use one of them (remove the credentials from {names['url']})"
        )
    return NatsAuth(
        credentials=Path(credentials) if credentials else None,
        nkey_seed=Path(nkey_seed) if nkey_seed else None,
        user=user,
        password_file=Path(password_file) if password_file else None,
        tls_ca=Path(tls_ca) if tls_ca else None,
        labels=names,
    )


def _read(path: Path, label: str) -> bytes:
    """A small regular file's bytes; `NatsAuthError` naming `label` and `path` otherwise."""
    try:
        if not path.exists():
            raise NatsAuthError(f"{label}: {path} does not exist")
        if not path.is_file():
            raise NatsAuthError(f"{label}: {path} is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except PermissionError:
        raise NatsAuthError(f"{label}: {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise NatsAuthError(f"{label}: cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise NatsAuthError(f"{label}: {path} is larger than {_MAX_FILE_BYTES} bytes")
    if not data.strip():
        raise NatsAuthError(f"{label}: {path} is empty")
    return data


def _check_seed(seed: bytes, label: str, path: Path) -> None:
    """A user nkey seed (`SU...`); the message never shows it."""
    try:
        keypair = nkeys.from_seed(bytearray(seed))
        public = bytes(keypair.public_key)
        keypair.wipe()
    except (nkeys.NkeysError, ValueError, TypeError):
        raise NatsAuthError(f"{label}: {path} does not hold a valid nkey seed") from None
    if not public.startswith(b"U"):
        raise NatsAuthError(
            f"{label}: {path} holds an nkey seed that is not a user's (it must start with SU)"
        )


def read_password(auth: NatsAuth) -> str:
    """The password of `auth.password_file`, trailing newline(s) removed."""
    assert auth.password_file is not None
    label = auth.label("password_file")
    data = _read(auth.password_file, label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NatsAuthError(f"{label}: {auth.password_file} is not UTF-8 text") from None
    password = text.rstrip("\r\n")
    if not password:
        raise NatsAuthError(f"{label}: {auth.password_file} is empty")
    return password


def read_credentials(path: Path, label: str) -> tuple[str, str]:
    """The user JWT and nkey seed of a `.creds` file (checked)."""
    lines = _read(path, label).decode("utf-8", errors="replace").splitlines()

    def after(marker: str) -> str:
        for n, line in enumerate(lines):
            if marker in line:
                return lines[n + 1].strip() if n + 1 < len(lines) else ""
        return ""

    jwt = after(_JWT_BEGIN)
    if jwt.count(".") != 2:
        raise NatsAuthError(
            f"{label}: {path} is not a NATS credentials file (no user JWT after "
            f"-----{_JWT_BEGIN}-----)"
        )
    seed = after(_SEED_BEGIN)
    if not seed:
        raise NatsAuthError(
            f"{label}: {path} is not a NATS credentials file (no seed after "
            f"-----{_SEED_BEGIN}-----)"
        )
    _check_seed(seed.encode(), label, path)
    return jwt, seed


def tls_context(auth: NatsAuth) -> ssl.SSLContext | None:
    """An SSL context trusting only `auth.tls_ca` (None: nats-py's default, the system CAs)."""
    if auth.tls_ca is None:
        return None
    label = auth.label("tls_ca")
    _read(auth.tls_ca, label)
    try:
        return ssl.create_default_context(cafile=str(auth.tls_ca))
    except (ssl.SSLError, ValueError):
        raise NatsAuthError(f"{label}: {auth.tls_ca} holds no usable PEM certificate") from None
    except OSError as exc:
        raise NatsAuthError(f"{label}: cannot read {auth.tls_ca}: {exc.strerror}") from None


def check_files(auth: NatsAuth) -> None:
    """Read and check every file `auth` names; `NatsAuthError` at the first bad one."""
    if auth.credentials is not None:
        read_credentials(auth.credentials, auth.label("credentials"))
    if auth.nkey_seed is not None:
        label = auth.label("nkey_seed")
        _check_seed(_read(auth.nkey_seed, label).strip(), label, auth.nkey_seed)
    if auth.password_file is not None:
        read_password(auth)
    tls_context(auth)

"""The NATS authentication settings, without a server: which combinations are accepted, and
the errors for conflicts and for missing, empty or malformed files (naming the setting and the
path, never the secret); the same rules through the services' settings and the CLI's flags;
log scrubbing of seeds and URL credentials."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import nkeys
import pytest

from libs.bus.auth import (
    AuthMethod,
    NatsAuth,
    NatsAuthError,
    check_files,
    read_password,
    resolve_auth,
    tls_context,
    url_has_credentials,
)
from libs.cli._opsutil import CliError, Exit, nats_target
from libs.runtime.config import Settings
from libs.runtime.logs import scrub
from libs.runtime.settings import SettingsError, load_settings
from tests.fixtures.nats_keys import (
    new_keypair,
    user_jwt,
    write_creds,
)

URL = "nats://nats.certlc-system.svc:4222"


# --- which combinations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "method"),
    [
        ({}, AuthMethod.NONE),
        ({"credentials": "/run/nats/user.creds"}, AuthMethod.CREDENTIALS),
        ({"nkey_seed": "/run/nats/user.nk"}, AuthMethod.NKEY),
        ({"user": "certlc-watcher", "password_file": "/run/nats/watcher"}, AuthMethod.PASSWORD),
        ({"tls_ca": "/run/nats/ca.crt"}, AuthMethod.NONE),
        ({"nkey_seed": "/run/nats/user.nk", "tls_ca": "/run/nats/ca.crt"}, AuthMethod.NKEY),
    ],
)
def test_one_method_or_none(settings: dict[str, str], method: AuthMethod) -> None:
    auth = resolve_auth(URL, **settings)
    assert auth.method is method
    if "tls_ca" in settings:
        assert auth.tls_ca == Path(settings["tls_ca"])


def test_credentials_in_the_url_alone_are_no_method() -> None:
    """The URL's credentials are nats-py's business; no file method is chosen."""
    assert resolve_auth("nats://u:p@host:4222").method is AuthMethod.NONE


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"credentials": "/a.creds", "nkey_seed": "/a.nk"},
            "more than one NATS authentication method: CERTLC_NATS_CREDENTIALS and "
            "CERTLC_NATS_NKEY_SEED; set only one",
        ),
        (
            {"nkey_seed": "/a.nk", "user": "u", "password_file": "/p"},
            "more than one NATS authentication method: CERTLC_NATS_NKEY_SEED and "
            "CERTLC_NATS_USER/CERTLC_NATS_PASSWORD_FILE; set only one",
        ),
        (
            {"user": "u"},
            "CERTLC_NATS_USER is set but CERTLC_NATS_PASSWORD_FILE is not: the password must "
            "come from a file",
        ),
        (
            {"password_file": "/p"},
            "CERTLC_NATS_PASSWORD_FILE is set but CERTLC_NATS_USER is not: name the NATS user",
        ),
    ],
)
def test_conflicting_settings(settings: dict[str, str], message: str) -> None:
    with pytest.raises(NatsAuthError) as info:
        resolve_auth(URL, **settings)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("nats://certlc-watcher:s3cret@nats:4222", {"credentials": "/a.creds"}),
        ("nats://a:4222,tls://token@b:4222", {"nkey_seed": "/a.nk"}),
        ("tls://u:p@nats:4222", {"user": "u", "password_file": "/p"}),
    ],
)
def test_url_credentials_and_a_file_method_conflict(url: str, setting: dict[str, str]) -> None:
    with pytest.raises(NatsAuthError) as info:
        resolve_auth(url, **setting)
    message = str(info.value)
    assert message.startswith("CERTLC_NATS_URL carries credentials")
    assert any(
        name in message
        for name in ("CERTLC_NATS_CREDENTIALS", "CERTLC_NATS_NKEY_SEED", "CERTLC_NATS_USER")
    )
    assert "s3cret" not in message
    assert "token" not in message.replace("token@", "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nats://127.0.0.1:4222", False),
        ("nats://a:4222, nats://b:4222", False),
        ("nats://user:pass@a:4222", True),
        ("nats://a:4222,nats://token@b:4222", True),
        ("user:pass@a:4222", True),
        ("a:4222", False),
        ("ws://a:8080/path@x", False),
    ],
)
def test_url_has_credentials(url: str, expected: bool) -> None:
    assert url_has_credentials(url) is expected


# --- files -----------------------------------------------------------------------------------


def password_auth(path: Path) -> NatsAuth:
    return resolve_auth(URL, user="certlc-watcher", password_file=str(path))


@pytest.mark.parametrize(
    ("content", "password"),
    [
        (b"s3cret\n", "s3cret"),
        (b"s3cret", "s3cret"),
        (b"s3cret\r\n", "s3cret"),
        (b"with space inside \n\n", "with space inside "),
    ],
)
def test_the_password_file_loses_its_trailing_newline(
    tmp_path: Path, content: bytes, password: str
) -> None:
    path = tmp_path / "password"
    path.write_bytes(content)
    assert read_password(password_auth(path)) == password


@pytest.mark.parametrize("content", [b"", b"\n", b"  \n\n"])
def test_an_empty_password_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "password"
    path.write_bytes(content)
    with pytest.raises(NatsAuthError) as info:
        check_files(password_auth(path))
    assert str(info.value) == f"CERTLC_NATS_PASSWORD_FILE: {path} is empty"


def test_a_missing_file_names_the_setting_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    cases = {
        "CERTLC_NATS_CREDENTIALS": resolve_auth(URL, credentials=str(missing)),
        "CERTLC_NATS_NKEY_SEED": resolve_auth(URL, nkey_seed=str(missing)),
        "CERTLC_NATS_PASSWORD_FILE": password_auth(missing),
        "CERTLC_NATS_TLS_CA": resolve_auth(URL, tls_ca=str(missing)),
    }
    for setting, auth in cases.items():
        with pytest.raises(NatsAuthError) as info:
            check_files(auth)
        assert str(info.value) == f"{setting}: {missing} does not exist"


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(NatsAuthError) as info:
        check_files(resolve_auth(URL, nkey_seed=str(tmp_path)))
    assert str(info.value) == f"CERTLC_NATS_NKEY_SEED: {tmp_path} is not a regular file"


def _check_as(uid: int | None, auth: NatsAuth) -> str:
    """`check_files(auth)`'s error message, checked as user `uid` (None: as we are) in a forked
    child when a change of user is needed: root reads any file, so an unreadable file can only
    be shown to an unprivileged user."""
    if uid is None:
        with pytest.raises(NatsAuthError) as info:
            check_files(auth)
        return str(info.value)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        try:
            os.setgid(uid)
            os.setuid(uid)
            check_files(auth)
            message = "no error"
        except NatsAuthError as exc:
            message = str(exc)
        except BaseException as exc:  # reported to the parent
            message = f"unexpected {type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(child, 0)
    return message


def test_an_unreadable_file() -> None:
    nobody = 65534 if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory() as directory:
        Path(directory).chmod(0o755)
        path = Path(directory) / "password"
        path.write_text("s3cret")
        path.chmod(0)
        message = _check_as(nobody, password_auth(path))
    assert message == f"CERTLC_NATS_PASSWORD_FILE: {path} is not readable (permission denied)"


def test_a_seed_file_must_hold_a_user_seed(tmp_path: Path) -> None:
    path = tmp_path / "user.nk"
    user = new_keypair()
    path.write_text(f"\n{user.seed}\n")
    check_files(resolve_auth(URL, nkey_seed=str(path)))

    garbage = "SUNOTASEEDATALLBUTSECRETLOOKING"
    path.write_text(garbage)
    with pytest.raises(NatsAuthError) as info:
        check_files(resolve_auth(URL, nkey_seed=str(path)))
    assert str(info.value) == f"CERTLC_NATS_NKEY_SEED: {path} does not hold a valid nkey seed"

    account = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    path.write_text(account.seed)
    with pytest.raises(NatsAuthError, match="not a user's") as info:
        check_files(resolve_auth(URL, nkey_seed=str(path)))
    assert account.seed not in str(info.value)


def test_a_creds_file_must_hold_a_jwt_and_a_user_seed(tmp_path: Path) -> None:
    account, user = new_keypair(nkeys.PREFIX_BYTE_ACCOUNT), new_keypair()
    path = write_creds(tmp_path / "user.creds", user_jwt(account, user), user)
    auth = resolve_auth(URL, credentials=str(path))
    check_files(auth)

    # a seed file given as a creds file: nats-py would wait forever for the JWT block
    path.write_text(user.seed)
    with pytest.raises(NatsAuthError) as info:
        check_files(auth)
    assert str(info.value).startswith(
        f"CERTLC_NATS_CREDENTIALS: {path} is not a NATS credentials file (no user JWT"
    )
    assert user.seed not in str(info.value)

    # a JWT without its seed
    text = write_creds(path, user_jwt(account, user), user).read_text()
    path.write_text(text.replace(user.seed, ""))
    with pytest.raises(NatsAuthError, match="no seed after"):
        check_files(auth)

    # a damaged seed
    path.write_text(text.replace(user.seed, user.seed[:20]))
    with pytest.raises(NatsAuthError, match="does not hold a valid nkey seed") as info:
        check_files(auth)
    assert user.seed[:20] not in str(info.value)


def test_a_tls_ca_must_be_pem(tmp_path: Path) -> None:
    path = tmp_path / "ca.crt"
    path.write_text("not a certificate\n")
    with pytest.raises(NatsAuthError) as info:
        tls_context(resolve_auth(URL, tls_ca=str(path)))
    assert str(info.value) == f"CERTLC_NATS_TLS_CA: {path} holds no usable PEM certificate"
    assert tls_context(NatsAuth()) is None


def test_describe_names_the_method_not_the_secret(tmp_path: Path) -> None:
    auth = password_auth(tmp_path / "password")
    assert auth.describe() == (
        f"user 'certlc-watcher' with the password of {tmp_path / 'password'} "
        "(CERTLC_NATS_PASSWORD_FILE)"
    )
    assert NatsAuth().describe() == "no credentials"


# --- through the services' settings --------------------------------------------------------


def test_settings_carry_the_method(tmp_path: Path) -> None:
    settings = load_settings(
        Settings,
        {
            "CERTLC_NATS_URL": URL,
            "CERTLC_NATS_USER": "certlc-issuer",
            "CERTLC_NATS_PASSWORD_FILE": "/var/run/secrets/certlc/nats/password",
        },
    )
    auth = settings.nats_auth()
    assert auth.method is AuthMethod.PASSWORD
    assert auth.user == "certlc-issuer"
    assert auth.password_file == Path("/var/run/secrets/certlc/nats/password")
    assert Settings().nats_auth() == NatsAuth()


def test_settings_refuse_url_credentials_with_a_file_method() -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(
            Settings,
            {"CERTLC_NATS_URL": "nats://u:s3cret@nats:4222", "CERTLC_NATS_NKEY_SEED": "/x.nk"},
        )
    message = str(info.value)
    assert "CERTLC_NATS_URL carries credentials" in message
    assert "CERTLC_NATS_NKEY_SEED is set" in message
    assert "s3cret" not in message


# --- through the CLI's flags ---------------------------------------------------------------


def cli_args(**flags: str | None) -> argparse.Namespace:
    names = ("nats_url", "nats_creds", "nats_nkey", "nats_user", "nats_password_file")
    values = {name: flags.get(name) for name in (*names, "nats_tls_ca")}
    return argparse.Namespace(**values)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CERTLC_NATS", "NATS_")):
            monkeypatch.delenv(name)
    return monkeypatch


def test_cli_flags_replace_the_environments_method(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    seed = tmp_path / "user.nk"
    seed.write_text(new_keypair().seed)
    clean_env.setenv("CERTLC_NATS_USER", "certlc-external")
    clean_env.setenv("CERTLC_NATS_PASSWORD_FILE", str(password))

    url, auth = nats_target(cli_args())
    assert url == "nats://127.0.0.1:4222"
    assert (auth.method, auth.user) == (AuthMethod.PASSWORD, "certlc-external")

    url, auth = nats_target(cli_args(nats_url="nats://h:4222", nats_nkey=str(seed)))
    assert url == "nats://h:4222"
    assert (auth.method, auth.nkey_seed) == (AuthMethod.NKEY, seed)


def test_cli_errors_name_the_flags(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(CliError) as info:
        nats_target(cli_args(nats_url="nats://u:p@h:4222", nats_creds=str(tmp_path / "x")))
    assert info.value.code == Exit.USAGE
    assert info.value.message.startswith("--nats-url carries credentials")
    assert "--nats-creds is set" in info.value.message

    with pytest.raises(CliError) as info:
        nats_target(cli_args(nats_user="certlc-external"))
    assert info.value.message == (
        "--nats-user is set but --nats-password-file is not: the password must come from a file"
    )

    missing = tmp_path / "missing.creds"
    clean_env.setenv("CERTLC_NATS_CREDENTIALS", str(missing))
    with pytest.raises(CliError) as info:
        nats_target(cli_args())
    assert info.value.message == f"CERTLC_NATS_CREDENTIALS: {missing} does not exist"


# --- logs ----------------------------------------------------------------------------------


def test_logs_scrub_seeds_and_url_credentials() -> None:
    user = new_keypair()
    line = scrub(f"seed {user.seed} of {user.public} at nats://u:s3cret@h:4222,tls://tok@h2:4222")
    assert user.seed not in line
    assert "s3cret" not in line
    assert "tok@" not in line
    assert user.public in line  # public keys are identities, not secrets
    assert "h:4222" in line
    assert "h2:4222" in line

"""deploy/nats-credentials.sh for real, with kubectl against the Kubernetes API stand-in: the
clients' Secret of plaintext passwords, the server's Secret of their bcrypt hashes, idempotence,
the upgrade from an installation with the clients' Secret only, and both hashers (htpasswd from
apache2-utils, else python3 with the bcrypt module)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from tests.deploy.expected import CREDENTIALS_SECRET, SERVER_AUTH_SECRET, SERVICE_USERS
from tests.deploy.manifests import DEPLOY, NAMESPACE

pytestmark = pytest.mark.timeout(120)

SCRIPT = DEPLOY / "nats-credentials.sh"
KEYS = {*SERVICE_USERS, "external"}
# What the script runs besides kubectl and its hasher.
TOOLS = ("bash", "base64", "od", "tr", "mktemp", "rm", "sed")

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def tools_dir(directory: Path, *, htpasswd: bool, python: str | None) -> Path:
    """A PATH directory with only what the script needs: htpasswd if asked, and as `python3`
    the given interpreter (the one running the tests, which has bcrypt) or none."""
    directory.mkdir()
    wanted = [*TOOLS, "kubectl", *(["htpasswd"] if htpasswd else [])]
    for tool in wanted:
        found = shutil.which(tool)
        assert found is not None, f"{tool} is not on PATH"
        (directory / tool).symlink_to(found)
    if python is not None:
        wrapper = directory / "python3"
        wrapper.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        wrapper.chmod(0o755)
    return directory


HTPASSWD = pytest.param(
    "htpasswd",
    marks=pytest.mark.skipif(
        shutil.which("htpasswd") is None, reason="htpasswd (apache2-utils) is not installed"
    ),
)
# The prefix of each hasher's bcrypt hashes.
PREFIX = {"python3": "$2b$11$", "htpasswd": "$2y$11$"}


@pytest.fixture(params=["python3", HTPASSWD])
def hasher(request: pytest.FixtureRequest) -> str:
    """python3 (with bcrypt) always; htpasswd where installed (scripts/bootstrap.sh does)."""
    name: str = request.param
    return name


Script = Callable[..., subprocess.CompletedProcess[str]]


def script_runner(kube_config: Path, directory: Path, path: Path) -> Script:
    home = directory / "script-home"
    home.mkdir()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": str(path), "HOME": str(home), "KUBECONFIG": str(kube_config)}
        result = subprocess.run(
            [str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=90, check=False
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def run_script(kube_config: Path, tmp_path: Path, hasher: str) -> Script:
    path = tools_dir(tmp_path / "bin", htpasswd=hasher == "htpasswd", python=sys.executable)
    return script_runner(kube_config, tmp_path, path)


def secret(kubectl: Kubectl, name: str) -> tuple[dict[str, str], str]:
    """The decoded data and the resourceVersion of a Secret of the namespace."""
    found = json.loads(kubectl("get", "secret", "-n", NAMESPACE, name, "-o", "json").stdout)
    data = {key: base64.b64decode(value).decode() for key, value in found["data"].items()}
    return data, found["metadata"]["resourceVersion"]


def assert_hashes_match(passwords: dict[str, str], hashes: dict[str, str], prefix: str) -> None:
    assert set(passwords) == set(hashes) == KEYS
    for key, quoted in hashes.items():
        # Quoted: nats-server reads a variable's value as configuration.
        assert quoted[0] == quoted[-1] == '"', quoted
        hashed = quoted[1:-1]
        assert hashed.startswith(prefix), hashed
        assert passwords[key] not in quoted
        assert bcrypt.checkpw(passwords[key].encode(), hashed.encode()), key
        assert not bcrypt.checkpw(b"not-" + passwords[key].encode(), hashed.encode())


def test_creates_both_secrets_once(run_script: Script, hasher: str, kubectl: Kubectl) -> None:
    first = run_script()
    assert f"bcrypt hashes ({hasher})" in first.stderr
    passwords, client_version = secret(kubectl, CREDENTIALS_SECRET)
    hashes, server_version = secret(kubectl, SERVER_AUTH_SECRET)
    assert all(len(p) == 64 and int(p, 16) >= 0 for p in passwords.values())
    assert len(set(passwords.values())) == len(KEYS)
    assert_hashes_match(passwords, hashes, PREFIX[hasher])

    again = run_script()
    assert "left as they are" in again.stderr
    assert secret(kubectl, CREDENTIALS_SECRET) == (passwords, client_version)
    assert secret(kubectl, SERVER_AUTH_SECRET) == (hashes, server_version)

    printed = run_script("--print", "external")
    assert printed.stdout == passwords["external"] + "\n"


def test_an_existing_installation_gets_the_hashes_of_its_passwords(
    run_script: Script, hasher: str, kubectl: Kubectl
) -> None:
    """Upgrade: only the clients' Secret exists; its passwords stay, the server's is added."""
    kubectl("create", "namespace", NAMESPACE)
    literals = [f"--from-literal={key}=existing-{key}-0123456789" for key in sorted(KEYS)]
    kubectl("create", "secret", "generic", CREDENTIALS_SECRET, "-n", NAMESPACE, *literals)
    before = secret(kubectl, CREDENTIALS_SECRET)

    run = run_script()
    assert f"{CREDENTIALS_SECRET} exists: hashing its passwords" in run.stderr
    assert secret(kubectl, CREDENTIALS_SECRET) == before
    hashes, version = secret(kubectl, SERVER_AUTH_SECRET)
    assert_hashes_match(before[0], hashes, PREFIX[hasher])
    run_script()
    assert secret(kubectl, SERVER_AUTH_SECRET) == (hashes, version)


def test_a_server_secret_alone_is_refused(run_script: Script, kubectl: Kubectl) -> None:
    kubectl("create", "namespace", NAMESPACE)
    kubectl(
        "create", "secret", "generic", SERVER_AUTH_SECRET, "-n", NAMESPACE, "--from-literal=x=y"
    )
    refused = run_script(check=False)
    assert refused.returncode == 1
    assert f"{SERVER_AUTH_SECRET} exists without" in refused.stderr
    assert kubectl("get", "secret", "-n", NAMESPACE, CREDENTIALS_SECRET, check=False).returncode


def test_without_a_hasher_nothing_is_created(
    kube_config: Path, tmp_path: Path, kubectl: Kubectl
) -> None:
    """No htpasswd and a python3 without bcrypt: a clear message, and no Secret at all."""
    path = tools_dir(tmp_path / "bin", htpasswd=False, python=None)
    (path / "python3").write_text("#!/bin/sh\nexit 1\n")  # `import bcrypt` fails
    (path / "python3").chmod(0o755)
    refused = script_runner(kube_config, tmp_path, path)(check=False)
    assert refused.returncode == 1
    assert "apache2-utils" in refused.stderr
    assert "bcrypt" in refused.stderr
    found = kubectl("get", "secrets", "-n", NAMESPACE, "-o", "name", check=False).stdout
    assert "certlc-nats" not in found

"""`certlc certs generate` output, verified by independent tools; `certlc certs check` verdicts.

The set is generated once per module through the real CLI entry point (libs.cli.main.main),
then judged by openssl (chains, text, key checks), by the official Kubernetes Python client
and by kubectl (kubeconfigs). kubectl is required: scripts/bootstrap.sh installs it.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from libs.cli.certs import parse_duration
from libs.cli.main import main
from libs.pki import SecretKind, TcpSpec, load_signer, mint_secret_data

TCP = "k8s-126"
ADDRESS = "172.18.255.200"
GENERATE = [
    "certs",
    "generate",
    "--name",
    TCP,
    "--namespace",
    "default",
    "--address",
    ADDRESS,
    "--konnectivity",
    "--cert-san",
    "api.example.com",
    "--cert-san",
    "10.0.0.10",
]
SECRETS = {
    "ca": {"ca.crt", "ca.key", "tls.crt", "tls.key"},
    "front-proxy-ca-certificate": {"front-proxy-ca.crt", "front-proxy-ca.key"},
    "sa-certificate": {"sa.pub", "sa.key"},
    "api-server-certificate": {"apiserver.crt", "apiserver.key"},
    "api-server-kubelet-client-certificate": {
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
    },
    "front-proxy-client-certificate": {"front-proxy-client.crt", "front-proxy-client.key"},
    "datastore-certificate": {"ca.crt", "server.crt", "server.key"},
    "datastore-config": {"DB_CONNECTION_STRING", "DB_SCHEMA", "DB_USER", "DB_PASSWORD"},
    "konnectivity-certificate": {"tls.crt", "tls.key"},
    "admin-kubeconfig": {"admin.conf"},
    "controller-manager-kubeconfig": {"controller-manager.conf"},
    "scheduler-kubeconfig": {"scheduler.conf"},
    "konnectivity-kubeconfig": {"konnectivity-server.conf"},
}


# Short names for the files a chain check needs, relative to the output directory.
F = {
    "ca": f"{TCP}-ca/ca.crt",
    "fp-ca": f"{TCP}-front-proxy-ca-certificate/front-proxy-ca.crt",
    "apiserver": f"{TCP}-api-server-certificate/apiserver.crt",
    "kubelet": f"{TCP}-api-server-kubelet-client-certificate/apiserver-kubelet-client.crt",
    "fp-client": f"{TCP}-front-proxy-client-certificate/front-proxy-client.crt",
    "konnectivity": f"{TCP}-konnectivity-certificate/tls.crt",
    "datastore": f"{TCP}-datastore-certificate/server.crt",
    "datastore-bundled-ca": f"{TCP}-datastore-certificate/ca.crt",
    "datastore-ca": "datastore-ca/ca.crt",
}


def holds_a_secret(name: str) -> bool:
    """Private keys, kubeconfigs (embedded client keys) and the datastore password."""
    return name.endswith((".key", ".conf")) or name == "DB_PASSWORD"


KUBECONFIGS = {
    "admin-kubeconfig/admin.conf": ("kubernetes-admin", f"https://{ADDRESS}:6443"),
    "controller-manager-kubeconfig/controller-manager.conf": (
        "system:kube-controller-manager",
        "https://127.0.0.1:6443",
    ),
    "scheduler-kubeconfig/scheduler.conf": ("system:kube-scheduler", "https://127.0.0.1:6443"),
    "konnectivity-kubeconfig/konnectivity-server.conf": (
        "system:konnectivity-server",
        "https://localhost:6443",
    ),
}


def run(*args: str) -> str:
    """Run a tool and return its stdout; fail the test with its whole output on error."""
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{output}"
    return done.stdout.decode()


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not on PATH; run scripts/bootstrap.sh (installs kubernetes-client)")
    return path


def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("openssl is not on PATH; run scripts/bootstrap.sh")
    return path


def secret_dir(root: Path, suffix: str) -> Path:
    return root / f"{TCP}-{suffix}"


def kubeconfig_client(path: Path, tmp: Path) -> tuple[Path, Path]:
    """Write a kubeconfig's client certificate and key to files for openssl."""
    user = yaml.safe_load(path.read_bytes())["users"][0]["user"]
    cert, key = tmp / f"{path.stem}.crt", tmp / f"{path.stem}.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    return cert, key


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs") / "set"
    assert main([*GENERATE, "--out", str(out)]) == 0
    return out


@pytest.fixture
def copy(generated: Path, tmp_path: Path) -> Path:
    target = tmp_path / "set"
    shutil.copytree(generated, target)
    return target


def test_should_write_one_file_per_data_key_with_private_modes(generated: Path) -> None:
    assert {p.name for p in generated.iterdir()} == {
        *(f"{TCP}-{s}" for s in SECRETS),
        "datastore-ca",
        "tenantcontrolplane.yaml",
    }
    assert stat.S_IMODE(generated.stat().st_mode) == 0o700
    for suffix, keys in SECRETS.items():
        directory = secret_dir(generated, suffix)
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert {p.name for p in directory.iterdir()} == keys
        for path in directory.iterdir():
            mode = 0o600 if holds_a_secret(path.name) else 0o644
            assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert stat.S_IMODE((generated / "datastore-ca" / "ca.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("cert", "ca", "purpose"),
    [
        ("ca", "ca", "any"),
        ("fp-ca", "fp-ca", "any"),
        ("apiserver", "ca", "sslserver"),
        ("kubelet", "ca", "sslclient"),
        ("fp-client", "fp-ca", "sslclient"),
        ("konnectivity", "ca", "sslserver"),
        ("konnectivity", "ca", "sslclient"),
        ("datastore", "datastore-bundled-ca", "sslclient"),
        ("datastore", "datastore-ca", "sslclient"),
    ],
)
def test_should_verify_every_chain_with_openssl(
    generated: Path, cert: str, ca: str, purpose: str
) -> None:
    ca_file, cert_file = str(generated / F[ca]), str(generated / F[cert])
    output = run(openssl(), "verify", "-CAfile", ca_file, "-purpose", purpose, cert_file)
    assert output.strip() == f"{cert_file}: OK"


@pytest.mark.parametrize(
    ("cert", "ca"), [("fp-client", "ca"), ("apiserver", "fp-ca"), ("datastore", "ca")]
)
def test_should_not_verify_a_certificate_against_another_ca(
    generated: Path, cert: str, ca: str
) -> None:
    done = subprocess.run(
        [openssl(), "verify", "-CAfile", str(generated / F[ca]), str(generated / F[cert])],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert b"unable to get local issuer certificate" in done.stdout + done.stderr


@pytest.mark.parametrize("conf", list(KUBECONFIGS))
def test_should_verify_every_kubeconfig_client_certificate_with_openssl(
    generated: Path, conf: str, tmp_path: Path
) -> None:
    path = generated / f"{TCP}-{conf}"
    cert, key = kubeconfig_client(path, tmp_path)
    ca = secret_dir(generated, "ca") / "ca.crt"
    verdict = run(openssl(), "verify", "-CAfile", str(ca), "-purpose", "sslclient", str(cert))
    assert verdict.strip() == f"{cert}: OK"
    assert "RSA key ok" in run(openssl(), "rsa", "-check", "-noout", "-in", str(key))
    subject = run(openssl(), "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", str(cert))
    assert f"CN={KUBECONFIGS[conf][0]}" in subject


def _dates(cert: Path) -> tuple[datetime, datetime]:
    text = run(openssl(), "x509", "-noout", "-startdate", "-enddate", "-in", str(cert))
    values = dict(line.split("=", 1) for line in text.strip().splitlines())
    return _openssl_time(values["notBefore"]), _openssl_time(values["notAfter"])


def _openssl_time(value: str) -> datetime:
    return datetime.strptime(value, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)


def test_should_show_apiserver_sans_usages_and_validity_in_openssl_text(generated: Path) -> None:
    cert = secret_dir(generated, "api-server-certificate") / "apiserver.crt"
    text = run(openssl(), "x509", "-text", "-noout", "-in", str(cert))
    for san in (
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:localhost",
        f"DNS:{TCP}",
        f"DNS:{TCP}.default.svc",
        f"DNS:{TCP}.default.svc.cluster.local",
        "DNS:api.example.com",
        "IP Address:10.96.0.1",
        "IP Address:127.0.0.1",
        f"IP Address:{ADDRESS}",
        "IP Address:10.0.0.10",
    ):
        assert san in text
    assert "X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment" in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    assert "Subject: CN = kube-apiserver" in text
    assert "Public-Key: (2048 bit)" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text
    not_before, not_after = _dates(cert)
    assert not_after - not_before == timedelta(days=365, minutes=5)
    assert abs(datetime.now(UTC) - timedelta(minutes=5) - not_before) < timedelta(minutes=2)


@pytest.mark.parametrize(
    ("path", "cn"),
    [("ca", "kubernetes"), ("fp-ca", "front-proxy-ca")],
)
def test_should_show_ca_constraints_usages_san_and_ten_years(
    generated: Path, path: str, cn: str
) -> None:
    cert = generated / F[path]
    text = run(openssl(), "x509", "-text", "-noout", "-in", str(cert))
    assert "CA:TRUE" in text
    assert "Digital Signature, Key Encipherment, Certificate Sign" in text
    assert f"DNS:{cn}" in text
    assert f"Subject: CN = {cn}" in text
    not_before, not_after = _dates(cert)
    assert not_after - not_before == timedelta(days=3650, minutes=5)


def test_should_write_pkcs1_rsa_keys_that_openssl_checks_and_that_match_their_certificates(
    generated: Path,
) -> None:
    pairs = [
        ("ca", "ca.crt", "ca.key"),
        ("ca", "tls.crt", "tls.key"),
        ("front-proxy-ca-certificate", "front-proxy-ca.crt", "front-proxy-ca.key"),
        ("api-server-certificate", "apiserver.crt", "apiserver.key"),
        (
            "api-server-kubelet-client-certificate",
            "apiserver-kubelet-client.crt",
            "apiserver-kubelet-client.key",
        ),
        ("front-proxy-client-certificate", "front-proxy-client.crt", "front-proxy-client.key"),
        ("datastore-certificate", "server.crt", "server.key"),
        ("konnectivity-certificate", "tls.crt", "tls.key"),
    ]
    for suffix, crt, key in pairs:
        directory = secret_dir(generated, suffix)
        key_path = directory / key
        assert key_path.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
        assert "RSA key ok" in run(openssl(), "rsa", "-check", "-noout", "-in", str(key_path))
        from_key = run(openssl(), "pkey", "-pubout", "-in", str(key_path))
        from_cert = run(openssl(), "x509", "-noout", "-pubkey", "-in", str(directory / crt))
        assert from_key == from_cert, f"{suffix}/{key} does not match {crt}"


def test_should_write_sa_pub_as_the_public_key_of_sa_key(generated: Path) -> None:
    directory = secret_dir(generated, "sa-certificate")
    assert "RSA key ok" in run(
        openssl(), "rsa", "-check", "-noout", "-in", str(directory / "sa.key")
    )
    public = run(openssl(), "rsa", "-pubout", "-in", str(directory / "sa.key"))
    assert public == (directory / "sa.pub").read_text()


def test_should_write_the_datastore_config_for_etcd(generated: Path) -> None:
    directory = secret_dir(generated, "datastore-config")
    assert (directory / "DB_CONNECTION_STRING").read_text().startswith("https://")
    assert (directory / "DB_USER").read_text() == "default_k8s_126"
    assert (directory / "DB_SCHEMA").read_text() == "default_k8s_126"
    assert len((directory / "DB_PASSWORD").read_text()) >= 24


@pytest.mark.parametrize("conf", list(KUBECONFIGS))
def test_should_load_every_kubeconfig_with_the_official_client(generated: Path, conf: str) -> None:
    path = generated / f"{TCP}-{conf}"
    user, server = KUBECONFIGS[conf]
    configuration = kube_client.Configuration()
    kube_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(path), client_configuration=configuration
    )
    assert configuration.host == server
    assert configuration.ssl_ca_cert is not None
    assert (
        Path(configuration.ssl_ca_cert).read_bytes()
        == (secret_dir(generated, "ca") / "ca.crt").read_bytes()
    )
    assert configuration.cert_file is not None
    assert configuration.key_file is not None
    assert Path(configuration.cert_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert Path(configuration.key_file).read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    contexts, active = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
        config_file=str(path)
    )
    assert active["name"] == f"{user}@{TCP}"
    assert active["context"] == {"cluster": TCP, "user": user}
    assert len(contexts) == 1


@pytest.mark.parametrize("conf", list(KUBECONFIGS))
def test_should_read_every_kubeconfig_with_kubectl(generated: Path, conf: str) -> None:
    path = generated / f"{TCP}-{conf}"
    user, server = KUBECONFIGS[conf]
    view = json.loads(
        run(kubectl(), "config", "view", "--raw", "--kubeconfig", str(path), "-o", "json")
    )
    assert view["current-context"] == f"{user}@{TCP}"
    assert view["clusters"][0]["name"] == TCP
    assert view["clusters"][0]["cluster"]["server"] == server
    ca = base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == (secret_dir(generated, "ca") / "ca.crt").read_bytes()
    assert view["users"][0]["name"] == user
    assert "client-key-data" in view["users"][0]["user"]
    minified = run(kubectl(), "config", "view", "--minify", "--kubeconfig", str(path), "-o", "json")
    assert json.loads(minified)["users"][0]["user"]["client-key-data"] in (
        "DATA+OMITTED",
        "REDACTED",
    )


def test_should_mint_ecdsa_keys_that_openssl_accepts(tmp_path: Path) -> None:
    out = tmp_path / "ec"
    assert main([*GENERATE, "--algorithm", "ecdsa", "--out", str(out)]) == 0
    directory = secret_dir(out, "api-server-certificate")
    key = directory / "apiserver.key"
    assert key.read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")
    run(openssl(), "ec", "-check", "-noout", "-in", str(key))
    text = run(openssl(), "x509", "-text", "-noout", "-in", str(directory / "apiserver.crt"))
    assert "prime256v1" in text
    assert "Digital Signature" in text
    assert "Key Encipherment" not in text
    ca = secret_dir(out, "ca") / "ca.crt"
    assert (
        run(openssl(), "verify", "-CAfile", str(ca), str(directory / "apiserver.crt"))
        .strip()
        .endswith(": OK")
    )


def test_should_report_a_fresh_set_valid_and_exit_zero(
    generated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["certs", "check", str(generated)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["CERTIFICATE", "EXPIRES", "RESIDUAL", "TIME", "SIGNER", "STATUS"]
    authority = lines.index(
        next(line for line in lines if line.startswith("CERTIFICATE AUTHORITY"))
    )
    certificates = [line for line in lines[1:authority] if line]
    authorities = [line for line in lines[authority + 1 :] if line]
    assert len(certificates) == 11
    assert {line.split()[0] for line in authorities} == {
        f"{TCP}-ca",
        f"{TCP}-front-proxy-ca-certificate",
        "datastore-ca",
    }
    assert all(line.rstrip().endswith("valid") for line in certificates + authorities)
    api = next(line for line in certificates if line.startswith(f"{TCP}-api-server-certificate "))
    assert "364d" in api
    assert " ca " in api
    assert all("9y" in line for line in authorities)


def _replace_apiserver(root: Path, validity: timedelta) -> None:
    ca_dir = secret_dir(root, "ca")
    signer = load_signer((ca_dir / "ca.crt").read_bytes(), (ca_dir / "ca.key").read_bytes())
    tcp = TcpSpec.from_resource(yaml.safe_load((root / "tenantcontrolplane.yaml").read_bytes()))
    data = mint_secret_data(
        SecretKind.APISERVER, tcp, now=datetime.now(UTC), signer=signer, validity=validity
    )
    for key, value in data.items():
        (secret_dir(root, "api-server-certificate") / key).write_bytes(value)


def test_should_flag_an_expiring_certificate_and_exit_non_zero(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _replace_apiserver(copy, timedelta(hours=2))
    capsys.readouterr()
    assert main(["certs", "check", str(copy)]) == 1
    out = capsys.readouterr().out
    api = next(
        line for line in out.splitlines() if line.startswith(f"{TCP}-api-server-certificate ")
    )
    assert api.split()[-1] == "expiring"
    assert "1h" in api.split()
    assert "- api-server-certificate: apiserver.crt expires at" in out
    assert main(["certs", "check", str(copy), "--deadline", "1h"]) == 0


def test_should_flag_a_mismatched_key_as_invalid(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubelet = (
        secret_dir(copy, "api-server-kubelet-client-certificate") / "apiserver-kubelet-client.key"
    )
    shutil.copy(kubelet, secret_dir(copy, "api-server-certificate") / "apiserver.key")
    (secret_dir(copy, "scheduler-kubeconfig") / "scheduler.conf").unlink()
    capsys.readouterr()
    assert main(["certs", "check", str(copy)]) == 1
    out = capsys.readouterr().out
    assert "invalid: key-mismatch" in out
    assert "invalid: missing-key" in out


def test_should_refuse_to_overwrite_a_set_without_force(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (secret_dir(copy, "ca") / "ca.crt").read_bytes()
    assert main([*GENERATE, "--out", str(copy)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (secret_dir(copy, "ca") / "ca.crt").read_bytes() == before
    assert main([*GENERATE, "--out", str(copy), "--force"]) == 0
    assert (secret_dir(copy, "ca") / "ca.crt").read_bytes() != before


def test_should_exit_two_when_the_tcp_manifest_is_missing(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "tenantcontrolplane.yaml").unlink()
    assert main(["certs", "check", str(copy)]) == 2
    assert "tenantcontrolplane.yaml not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("90m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45s", timedelta(seconds=45)),
    ],
)
def test_should_parse_deadlines_like_kubeadm_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "1x", "1h 30m", "-1h"])
def test_should_reject_malformed_deadlines(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        parse_duration(text)

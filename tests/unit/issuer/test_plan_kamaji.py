"""Re-issuing Kamaji-made Secrets loses nothing: every Kamaji key, unknown keys, the password.

Kubeconfigs written by the plan are read back with the official client's loader
(`kubernetes.config`) and their client certificates checked with openssl.
"""

from __future__ import annotations

import base64
import functools
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from libs.contracts.messages import Reason, RotateCommand
from libs.pki import SecretKind, TcpSpec, renewal_reasons
from services.issuer.gather import existing_of
from services.issuer.plan import DataStoreFacts, Gathered, IssueSettings, Write, plan
from tests.fixtures.kamaji import Flavour, KamajiSet, kamaji_set, secret_data

K = SecretKind
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CFG = IssueSettings()
KAMAJI_ADMIN_KEYS = {"admin.conf", "admin.svc", "super-admin.conf", "super-admin.svc"}
# key: (subject as openssl prints it, server)
ADMIN_IDENTITIES = {
    "admin.conf": ("CN=kubernetes-admin,O=kubeadm:cluster-admins", "https://172.18.255.200:6443"),
    "admin.svc": ("CN=kubernetes-admin,O=kubeadm:cluster-admins", "https://k8s-126.default.svc:6443"),
    "super-admin.conf": ("CN=kubernetes-super-admin,O=system:masters", "https://172.18.255.200:6443"),
    "super-admin.svc": ("CN=kubernetes-super-admin,O=system:masters", "https://k8s-126.default.svc:6443"),
}  # fmt: skip


@functools.cache
def made(driver: str = "etcd", flavour: Flavour = Flavour.HEAD) -> KamajiSet:
    return kamaji_set(now=NOW - timedelta(days=30), driver=driver, flavour=flavour)


def gathered(s: KamajiSet, *, extra: dict[str, dict[str, bytes]] | None = None) -> Gathered:
    secrets = {}
    for name, obj in s.secrets.items():
        kind = K(name.removeprefix(f"{s.tcp['metadata']['name']}-"))
        more = (extra or {}).get(kind.value, {})
        data = {**secret_data(obj), **more}
        encoded = {k: base64.b64encode(v).decode() for k, v in data.items()}
        secrets[kind] = existing_of({**obj, "data": encoded})
    pki = secret_data(s.datastore_objects[0])
    spec = s.datastore_objects[1]["spec"]
    datastore = DataStoreFacts(
        name=s.datastore_objects[1]["metadata"]["name"],
        driver=spec["driver"],
        endpoints=tuple(spec["endpoints"]),
        ca_cert=pki["ca.crt"],
        ca_key=pki.get("ca.key"),
        client_cert=pki["tls.crt"],
        client_key=pki["tls.key"],
    )
    return Gathered(TcpSpec.from_resource(s.tcp), s.tcp["metadata"]["uid"], secrets, datastore)


def command(*kinds: SecretKind) -> RotateCommand:
    return RotateCommand(
        id="rot-kamaji",
        namespace="default",
        tcp="k8s-126",
        secrets=tuple(k.value for k in kinds),
        reason=Reason.REQUESTED,
        requested_at=NOW,
    )


def written(g: Gathered, kind: SecretKind) -> tuple[Write, dict[str, bytes]]:
    [write] = plan(command(kind), g, NOW, CFG).writes
    data: dict[str, Any] = write.body["data"]
    return write, {k: base64.b64decode(v) for k, v in data.items()}


def openssl(*args: str) -> str:
    out = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def load_official(path: Path) -> client.Configuration:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=cfg, persist_config=False)
    return cfg


def test_admin_kubeconfig_reissue_writes_every_kamaji_key_and_keeps_an_unknown_one(
    tmp_path: Path,
) -> None:
    s = made()
    g = gathered(s, extra={"admin-kubeconfig": {"robot.conf": b"kept as it is"}})
    write, data = written(g, K.ADMIN_KUBECONFIG)
    assert set(data) == {*KAMAJI_ADMIN_KEYS, "robot.conf"}
    assert data["robot.conf"] == b"kept as it is"
    ca_pem = s.data("ca")["ca.crt"]
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca_pem)
    for key, (subject, server) in ADMIN_IDENTITIES.items():
        assert data[key] != s.data("admin-kubeconfig")[key]  # re-issued, not copied
        path = tmp_path / key
        path.write_bytes(data[key])
        cfg = load_official(path)
        assert cfg.host == server
        assert Path(cfg.ssl_ca_cert).read_bytes() == ca_pem
        assert openssl("verify", "-CAfile", str(ca_file), cfg.cert_file).endswith(": OK")
        printed = openssl("x509", "-in", cfg.cert_file, "-noout", "-subject", "-nameopt", "RFC2253")
        assert printed == f"subject={subject}"
        assert openssl("x509", "-in", cfg.cert_file, "-noout", "-pubkey") == openssl(
            "pkey", "-in", cfg.key_file, "-pubout"
        )
        assert "TLS Web Client Authentication" in openssl(
            "x509", "-in", cfg.cert_file, "-noout", "-ext", "extendedKeyUsage"
        )
    reasons = renewal_reasons(K.ADMIN_KUBECONFIG, data, g.tcp, now=NOW, current_ca_pem=ca_pem)
    assert reasons == ()
    assert write.replace_version is not None  # a replace of the existing Secret


def test_the_seed_one_key_admin_kubeconfig_gets_kamajis_four_keys_on_reissue() -> None:
    _, data = written(gathered(made(flavour=Flavour.SEED)), K.ADMIN_KUBECONFIG)
    assert set(data) == KAMAJI_ADMIN_KEYS


def test_a_new_admin_kubeconfig_has_the_seed_key_only() -> None:
    g = gathered(made())
    secrets = {k: v for k, v in g.secrets.items() if k is not K.ADMIN_KUBECONFIG}
    fresh = Gathered(g.tcp, g.tcp_uid, secrets, g.datastore)
    _, data = written(fresh, K.ADMIN_KUBECONFIG)
    assert set(data) == {"admin.conf"}  # `kubectl get secret` shows DATA 1, as the seed


@pytest.mark.parametrize(
    ("driver", "connection"), [("etcd", b""), ("PostgreSQL", b"postgres.kamaji-system.svc:5432")]
)
def test_datastore_config_reissue_keeps_user_schema_and_password(
    driver: str, connection: bytes
) -> None:
    s = made(driver)
    before = s.data("datastore-config")
    _, data = written(gathered(s), K.DATASTORE_CONFIG)
    assert data == {**before, "DB_CONNECTION_STRING": connection}
    assert data["DB_PASSWORD"] == before["DB_PASSWORD"]
    assert data["DB_USER"] == before["DB_USER"] == s.tcp["metadata"]["uid"].encode()


def test_a_new_datastore_config_gets_a_new_password_and_the_tcp_user() -> None:
    g = gathered(made())
    secrets = {k: v for k, v in g.secrets.items() if k is not K.DATASTORE_CONFIG}
    _, data = written(Gathered(g.tcp, g.tcp_uid, secrets, g.datastore), K.DATASTORE_CONFIG)
    assert data["DB_PASSWORD"] != made().data("datastore-config")["DB_PASSWORD"]
    assert data["DB_USER"] == made().data("datastore-config")["DB_USER"]


def test_etcd_client_certificate_reissue_mints_what_kamaji_mints(tmp_path: Path) -> None:
    s = made()
    _, data = written(gathered(s), K.DATASTORE_CERTIFICATE)
    assert set(data) == {"ca.crt", "server.crt", "server.key"}
    (tmp_path / "ca.crt").write_bytes(s.datastore_ca.cert_pem)
    (tmp_path / "server.crt").write_bytes(data["server.crt"])
    assert openssl("verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "server.crt"))
    subject = openssl(
        "x509", "-in", str(tmp_path / "server.crt"), "-noout", "-subject", "-nameopt", "RFC2253"
    )
    assert subject == f"subject=CN={s.tcp['metadata']['uid']},O=system:masters"


def test_an_unknown_key_of_any_secret_is_kept() -> None:
    g = gathered(made(), extra={"api-server-certificate": {"note.txt": b"an operator's"}})
    _, data = written(g, K.APISERVER)
    assert data["note.txt"] == b"an operator's"
    assert set(data) == {"apiserver.crt", "apiserver.key", "note.txt"}

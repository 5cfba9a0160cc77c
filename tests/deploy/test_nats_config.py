"""The NATS server configuration of deploy/: users and permissions as the code needs them, the
wiring of passwords and ports, the three-server cluster, and the real server's own check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv import NatsServerError
from certlc_dev.devenv.nats_server import find_nats_server_binary
from libs.runtime import topology
from tests.deploy import natsconf
from tests.deploy.expected import (
    CREDENTIALS_SECRET,
    NATS_USERS,
    SERVER_AUTH_SECRET,
    SERVICE_USERS,
)
from tests.deploy.manifests import (
    DEPLOY,
    NAMESPACE,
    OVERLAYS,
    containers,
    env_of,
    generated,
    named,
    overlay,
    pod_spec,
)

WITH_NATS = ("default", "cluster")


def config_files(name: str) -> dict[str, str]:
    data: dict[str, str] = generated(overlay(name), "ConfigMap", "nats-config")["data"]
    return data


def users(name: str) -> dict[str, dict[str, Any]]:
    auth = natsconf.parse(config_files(name)["auth.conf"])
    listed = auth["authorization"]["users"]
    by_name = {user["user"]: user for user in listed}
    assert len(by_name) == len(listed), "a NATS user is defined twice"
    return by_name


def nats_container(name: str) -> dict[str, Any]:
    (container,) = containers(named(overlay(name), "StatefulSet", "nats"))
    return container


def port(container: dict[str, Any], port_name: str) -> int:
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port_name]
    return int(found)


@pytest.mark.parametrize("name", WITH_NATS)
def test_the_users_are_exactly_certlc_services_and_external(name: str) -> None:
    assert set(users(name)) == set(NATS_USERS)


@pytest.mark.parametrize("name", WITH_NATS)
@pytest.mark.parametrize("user", sorted(NATS_USERS))
def test_permissions_are_exactly_what_the_code_needs(name: str, user: str) -> None:
    want = NATS_USERS[user]
    permissions = users(name)[user]["permissions"]
    assert set(permissions) <= {"publish", "subscribe", "allow_responses"}
    for direction, expected in (("publish", want.publish), ("subscribe", want.subscribe)):
        rules = permissions[direction]
        assert set(rules) == {"allow"}, f"{user} {direction}: allow lists only, no deny"
        allowed = rules["allow"]
        assert len(allowed) == len(set(allowed)), f"{user} {direction}: duplicates"
        extra, missing = set(allowed) - expected, expected - set(allowed)
        assert not extra, f"{user} {direction}: not needed by the code: {extra}"
        assert not missing, f"{user} {direction}: needed by the code: {missing}"
    assert ("allow_responses" in permissions) == want.allow_responses


@pytest.mark.parametrize("user", sorted(NATS_USERS))
def test_no_user_may_use_the_whole_jetstream_api_or_everything(user: str) -> None:
    permissions = users("default")[user]["permissions"]
    for direction in ("publish", "subscribe"):
        for subject in permissions[direction]["allow"]:
            tokens = subject.split(" ")[0].split(".")
            assert tokens[0] not in (">", "*"), f"{user}: {subject}"
            assert not (tokens[0] == "$JS" and tokens[-1] == ">" and len(tokens) <= 3), subject
            assert ".DELETE." not in subject, subject
            assert ".PURGE." not in subject, subject


@pytest.mark.parametrize("service", sorted(SERVICE_USERS))
def test_each_service_ensures_the_streams_it_uses_and_the_consumers_it_pulls(service: str) -> None:
    """topology.for_service against what the service's user must publish: the streams it
    publishes to or follows, and the durables it fetches from, are exactly what it ensures."""
    publish = NATS_USERS[SERVICE_USERS[service]].publish
    pulled = {
        (c.stream, c.durable)
        for c in topology.CONSUMERS
        if f"$JS.API.CONSUMER.MSG.NEXT.{c.stream}.{c.durable}" in publish
    }
    used = {
        s.name
        for s in topology.streams()
        if set(s.subjects) & publish or f"$JS.API.CONSUMER.CREATE.{s.name}" in publish
    }
    streams, consumers = topology.for_service(service)
    assert {s.name for s in streams} == used | {stream for stream, _ in pulled}
    assert {(c.stream, c.durable) for c in consumers} == pulled


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` one or more at the end."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(want) == len(have)


@pytest.mark.parametrize("user", sorted(NATS_USERS))
def test_no_user_but_its_owner_may_touch_a_durable_consumer(user: str) -> None:
    """Create, delete, fetch from or acknowledge on a durable: its owner only, even through a
    wildcard. (CONSUMER.INFO, read-only, is not checked.)"""
    allowed = users("default")[user]["permissions"]["publish"]["allow"]
    service = user.removeprefix("certlc-")
    own = topology.for_service(service)[1] if service in SERVICE_USERS else ()
    for consumer in topology.CONSUMERS:
        if consumer in own:
            continue
        where = f"{consumer.stream}.{consumer.durable}"
        for subject in (
            f"$JS.API.CONSUMER.CREATE.{where}",
            f"$JS.API.CONSUMER.CREATE.{where}.certlc.audit.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{where}",
            f"$JS.API.CONSUMER.DELETE.{where}",
            f"$JS.API.CONSUMER.MSG.NEXT.{where}",
            f"$JS.ACK.{where}.1.1.1.1.1",
        ):
            reach = [pattern for pattern in allowed if matches(pattern, subject)]
            assert not reach, f"{user} may publish {subject} through {reach}"


def test_responses_are_allowed_once_and_briefly() -> None:
    responses = users("default")["certlc-lifecycle"]["permissions"]["allow_responses"]
    assert responses == {"max": 1, "expires": "1m"}


@pytest.mark.parametrize("name", WITH_NATS)
def test_password_hashes_come_from_the_server_auth_secret(name: str) -> None:
    """Server side: each password variable is set from the server's Secret (bcrypt hashes), under
    the key the service uses in the clients' Secret; the server reads no plaintext password."""
    env = env_of(nats_container(name))
    service_keys = {f"certlc-{service}": service for service in SERVICE_USERS}
    for user, entry in users(name).items():
        variable = entry["password"]
        assert isinstance(variable, natsconf.Var), f"{user}: password must not be in the file"
        ref = env[variable.name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == SERVER_AUTH_SECRET
        assert ref["key"] == service_keys.get(user, user.removeprefix("certlc-"))


@pytest.mark.parametrize("name", OVERLAYS)
@pytest.mark.parametrize("service", sorted(SERVICE_USERS))
def test_each_service_logs_in_as_its_own_user(name: str, service: str) -> None:
    """Its user name, and as its password file the key of the Secret the server reads."""
    deployment = named(overlay(name), "Deployment", f"certlc-{service}")
    (container,) = containers(deployment)
    env = env_of(container)
    assert env["CERTLC_NATS_USER"]["value"] == SERVICE_USERS[service]
    password_file = Path(env["CERTLC_NATS_PASSWORD_FILE"]["value"])
    (mount,) = [
        m for m in container["volumeMounts"] if password_file.parent == Path(m["mountPath"])
    ]
    (volume,) = [v for v in pod_spec(deployment)["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == CREDENTIALS_SECRET
    assert volume["secret"]["items"] == [{"key": service, "path": password_file.name}]


def test_the_credentials_script_creates_every_key() -> None:
    script = (DEPLOY / "nats-credentials.sh").read_text()
    match = re.search(r"^users=\(([^)]*)\)", script, re.MULTILINE)
    assert match, "nats-credentials.sh must list its users as users=(...)"
    keys = set(match.group(1).split())
    assert keys == set(SERVICE_USERS) | {"external"}
    assert f"name={CREDENTIALS_SECRET}" in script
    assert f"server_name={SERVER_AUTH_SECRET}" in script
    assert f'namespace="${{NAMESPACE:-{NAMESPACE}}}"' in script


@pytest.mark.parametrize("name", WITH_NATS)
def test_server_paths_and_ports_match_the_pod(name: str) -> None:
    files = config_files(name)
    conf = natsconf.parse(files["nats.conf"])
    assert [inc.path for inc in conf["include"]] == ["./auth.conf", "./cluster.conf"]
    assert {"nats.conf", "auth.conf", "cluster.conf"} == set(files)
    container = nats_container(name)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["command"][-1] == f"{mounts['config']}/nats.conf"
    assert conf["jetstream"]["store_dir"] == mounts["data"]
    assert Path(conf["pid_file"]).parent == Path(mounts["run"])
    assert conf["listen"] == f"0.0.0.0:{port(container, 'client')}"
    assert conf["http"] == f"0.0.0.0:{port(container, 'monitor')}"
    assert conf["server_name"] == natsconf.Var("SERVER_NAME")
    assert env_of(container)["SERVER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    statefulset = named(overlay(name), "StatefulSet", "nats")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert container["image"].startswith("nats:2.9")


def test_default_is_a_single_server() -> None:
    objects = overlay("default")
    assert named(objects, "StatefulSet", "nats")["spec"]["replicas"] == 1
    assert "cluster" not in natsconf.parse(config_files("default")["cluster.conf"])
    config = generated(objects, "ConfigMap", "certlc-config")["data"]
    assert config["CERTLC_STREAM_REPLICAS"] == "1"


def test_cluster_is_three_servers_with_routes_to_each_other() -> None:
    objects = overlay("cluster")
    statefulset = named(objects, "StatefulSet", "nats")
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    headless = named(objects, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    cluster = natsconf.parse(config_files("cluster")["cluster.conf"])["cluster"]
    route_port = port(nats_container("cluster"), "cluster")
    assert cluster["listen"] == f"0.0.0.0:{route_port}"
    svc = headless["metadata"]["name"]
    assert cluster["routes"] == [
        f"nats-route://nats-{i}.{svc}.{NAMESPACE}.svc:{route_port}" for i in range(replicas)
    ]
    assert cluster["no_advertise"] is True
    assert cluster["name"]
    # certlc asks for streams replicated on every server.
    config = generated(objects, "ConfigMap", "certlc-config")["data"]
    assert config["CERTLC_STREAM_REPLICAS"] == str(replicas)
    assert named(objects, "PodDisruptionBudget", "nats")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", WITH_NATS)
def test_only_nats_servers_reach_the_route_port(name: str) -> None:
    policy = named(overlay(name), "NetworkPolicy", "nats")
    selector = {"app.kubernetes.io/name": "nats"}
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule["ports"]}
        if "cluster" in ports:
            assert rule["from"] == [{"podSelector": {"matchLabels": selector}}]


def test_existing_nats_deploys_no_nats() -> None:
    objects = overlay("existing-nats")
    assert not [obj for obj in objects if obj["metadata"]["name"].startswith("nats")]
    server = generated(objects, "ConfigMap", "certlc-nats")["data"]["server"]
    assert server != generated(overlay("default"), "ConfigMap", "certlc-nats")["data"]["server"]


@pytest.mark.parametrize("name", WITH_NATS)
def test_the_real_server_accepts_the_configuration(name: str, tmp_path: Path) -> None:
    """`nats-server -t`: the server's own parser, variables set as in the pod."""
    try:
        binary = find_nats_server_binary()
    except NatsServerError as exc:
        pytest.fail(f"nats-server is needed for this test: {exc}", pytrace=False)
    for file, text in config_files(name).items():
        (tmp_path / file).write_text(text)
    env = {f"CERTLC_{user.removeprefix('certlc-').upper()}_PASSWORD": "x" for user in NATS_USERS}
    env["SERVER_NAME"] = "nats-0"
    done = subprocess.run(
        [binary, "-t", "-c", str(tmp_path / "nats.conf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    # And a missing password variable is an error at start, not an open door.
    del env["CERTLC_EXTERNAL_PASSWORD"]
    done = subprocess.run(
        [binary, "-t", "-c", str(tmp_path / "nats.conf")],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "CERTLC_EXTERNAL_PASSWORD" in done.stderr + done.stdout

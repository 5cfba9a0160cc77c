"""The certlc image, built from deploy/Dockerfile with buildah and run with podman.

The four services run as containers as a restricted pod would run them (read-only root,
uid 10001, no capabilities, no privilege escalation), on the host network, against a real
nats-server and the Kubernetes API stand-in; each mounts its own ServiceAccount's kubeconfig
read-only. They become ready, and a deleted Secret comes back with one rollout.

Skipped, with the reason, where podman cannot run containers; with CERTLC_REQUIRE_IMAGE_TEST=1
(as CI sets it) a skip is a failure instead.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv import identities
from certlc_dev.devenv.nats_server import NatsServer
from certlc_dev.devenv.stack import (
    SERVICES,
    free_port,
    seed_datastores,
    seed_tenant,
    service_ready,
)
from certlc_dev.kubesim import KubeSim
from tests.e2e.harness import BusTap, Stack, wait_for
from tests.image import podman

pytestmark = pytest.mark.slow

MAX_IMAGE_BYTES = 250 * 1000 * 1000  # podman reports sizes in SI units
UID = 10001


def _skip_or_fail(reason: str) -> None:
    message = f"image test not run: {reason}"
    print(message)
    if os.environ.get("CERTLC_REQUIRE_IMAGE_TEST") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    reason = podman.unavailable()
    if reason:
        _skip_or_fail(reason)
    base = podman.base_image()
    probe = podman.run(
        podman.podman(), "run", "--rm", "--pull=never", base, "true", check=False, timeout=120
    )
    if probe.returncode != 0:
        _skip_or_fail(f"podman cannot run a container here: {probe.stderr.strip()[-800:]}")
    tag = f"localhost/certlc-test:{uuid.uuid4().hex[:8]}"
    podman.build_image(tag, base)
    try:
        yield tag
    finally:
        podman.run(podman.podman(), "rmi", "--force", tag, check=False)


def in_image(image: str, *command: str) -> str:
    return podman.run(
        podman.podman(),
        "run",
        "--rm",
        "--pull=never",
        "--network",
        "host",
        image,
        *command,
        timeout=120,
    ).stdout


def test_the_image_is_small(image: str) -> None:
    size = podman.image_size(image)
    print(f"image size: {size / 1e6:.1f} MB")
    assert size <= MAX_IMAGE_BYTES, f"{size / 1e6:.1f} MB"


def test_the_image_holds_the_product_only(image: str) -> None:
    script = (
        "import importlib.util as u, os, sys; "
        "print(os.getuid(), sys.prefix); "
        "print(*[m for m in ('libs.kubesim', 'libs.devenv', 'certlc_dev', 'tests', 'pytest', "
        "'pip', 'setuptools') if u.find_spec(m) is not None])"
    )
    uid_line, present = in_image(image, "python", "-c", script).splitlines()
    assert uid_line == f"{UID} /opt/certlc"
    assert present == "", f"not part of the product, but in the image: {present}"


def test_the_image_has_no_build_material_and_compiles_what_starts(image: str) -> None:
    # The build's CA bundle was mounted into RUN steps only, and left nothing behind.
    listing = in_image(image, "sh", "-c", "test ! -e /run/secrets && echo absent")
    assert listing.strip() == "absent"
    # Bytecode ships for the modules the services import at start, and only for those.
    counts = in_image(
        image,
        "sh",
        "-c",
        "find /opt/certlc -name '*.pyc' | wc -l; find /opt/certlc -name '*.py' | wc -l",
    ).split()
    compiled, sources = map(int, counts)
    assert 100 < compiled < sources / 2, counts


@dataclass
class Container:
    name: str
    service: str
    port: int

    def ready(self) -> bool:
        return service_ready(self.port)

    def running(self) -> bool:
        out = podman.run(
            podman.podman(), "inspect", "--format", "{{.State.Running}}", self.name, check=False
        )
        return out.stdout.strip() == "true"

    def logs(self) -> str:
        out = podman.run(podman.podman(), "logs", self.name, check=False)
        return out.stdout + out.stderr


class ContainerSet:
    """The four services as podman containers (the `services` of an e2e `Stack`)."""

    def __init__(
        self, image: str, nats_url: str, kubeconfigs: dict[str, Path], workdir: Path
    ) -> None:
        self.image = image
        self.nats_url = nats_url
        self.kubeconfigs = kubeconfigs
        self.workdir = workdir
        self.containers: list[Container] = []
        self.suffix = uuid.uuid4().hex[:6]

    def _mount(self, service: str) -> list[str]:
        """The service's kubeconfig, as a Secret volume would give it: read-only, owner root,
        group 10001 (the pod's fsGroup), mode 0440, in a directory uid 10001 may enter."""
        source = self.kubeconfigs.get(service)
        if source is None:
            return ["--env", "CERTLC_KUBECONFIG="]
        directory = self.workdir / f"kube-{service}"
        directory.mkdir(mode=0o755)
        directory.chmod(0o755)
        target = directory / "config"
        shutil.copyfile(source, target)
        os.chown(target, 0, UID)
        target.chmod(0o440)
        return ["--volume", f"{directory}:/kube:ro", "--env", "CERTLC_KUBECONFIG=/kube/config"]

    def start(self, timeout: float = 60.0) -> None:
        for service in SERVICES:
            container = Container(f"certlc-{service}-{self.suffix}", service, free_port())
            podman.run(
                podman.podman(),
                "run",
                "--detach",
                "--pull=never",
                "--name",
                container.name,
                "--network",
                "host",
                "--read-only",
                "--user",
                f"{UID}:{UID}",
                "--cap-drop",
                "ALL",
                "--security-opt",
                "no-new-privileges",
                "--env",
                f"CERTLC_NATS_URL={self.nats_url}",
                "--env",
                f"CERTLC_HEALTH_PORT={container.port}",
                "--env",
                "CERTLC_ROLLOUT_SETTLE=1s",
                "--env",
                "CERTLC_SETTLE=300ms",
                *self._mount(service),
                self.image,
                f"certlc-{service}",
                timeout=120,
            )
            self.containers.append(container)
        deadline = time.monotonic() + timeout
        pending = list(self.containers)
        while pending:
            for c in list(pending):
                if c.ready():
                    pending.remove(c)
                elif not c.running():
                    raise AssertionError(f"{c.service} exited:\n{c.logs()[-4000:]}")
            if pending and time.monotonic() > deadline:
                logs = "\n".join(c.logs()[-2000:] for c in pending)
                raise AssertionError(f"not ready: {[c.service for c in pending]}\n{logs}")
            if pending:
                time.sleep(0.2)

    def by_name(self, service: str) -> list[Container]:
        return [c for c in self.containers if c.service == service]

    def logs(self) -> str:
        return "\n".join(f"--- {c.service}\n{c.logs()}" for c in self.containers)

    def stop(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        for c in self.containers:
            podman.run(podman.podman(), "stop", "--time", "10", c.name, check=False, timeout=60)
            state = podman.run(
                podman.podman(), "inspect", "--format", "{{.State.ExitCode}}", c.name, check=False
            )
            codes[c.service] = int(state.stdout.strip() or -1)
            podman.run(podman.podman(), "rm", "--force", c.name, check=False, timeout=60)
        return codes


@pytest.fixture(scope="module")
def stack(
    image: str, tmp_path_factory: pytest.TempPathFactory, kube_serving: Any
) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("image"))
    nats_server = NatsServer(workdir / "jetstream")
    nats_server.start()
    sim = KubeSim(serving=kube_serving, ready_delay=0.2, gc=True, rbac=True).start()
    kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
    kubeconfigs = identities.install(sim, workdir)
    seed_datastores(sim)
    tap = BusTap(nats_server.url).start()
    containers = ContainerSet(image, nats_server.url, kubeconfigs, workdir)
    stack = Stack(nats_server, sim, kubeconfig, containers, tap, workdir)  # type: ignore[arg-type]
    try:
        containers.start()
        yield stack
    finally:
        codes = containers.stop()
        tap.stop()
        sim.stop()
        nats_server.stop()
        assert all(code == 0 for code in codes.values()), codes


def test_the_services_run_from_the_image_and_a_deleted_secret_comes_back_with_one_rollout(
    stack: Stack,
) -> None:
    seed_tenant(stack.sim, "boxed")
    stack.first_issued("boxed", timeout=60)
    before = stack.quiet("boxed")
    old = stack.sim.get("secrets", "boxed-api-server-certificate")
    stack.sim.delete("secrets", "boxed-api-server-certificate")
    wait_for(
        lambda: (
            (s := stack.sim.try_get("secrets", "boxed-api-server-certificate"))
            and s["metadata"]["uid"] != old["metadata"]["uid"]
        ),
        30,
        "the deleted Secret to come back",
    )
    after = stack.quiet("boxed")
    assert len(after) == len(before) + 1, (before, after)
    metrics = urllib.request.urlopen(
        f"http://127.0.0.1:{stack.services.by_name('issuer')[0].port}/metrics", timeout=5
    ).read()
    assert b"certlc_secrets_written_total" in metrics


# --- compose.yaml with podman-compose --------------------------------------------------------

COMPOSE_PROJECT = "certlc-compose-test"
COMPOSE_SERVICES = ("nats", *SERVICES)


def _compose(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    return podman.run(
        "podman-compose", "-p", COMPOSE_PROJECT, *args, extra_env=env, timeout=timeout
    ).stdout


def _override(image: str, nats: str) -> str:
    """What the test changes in compose.yaml: the images, local ones (no registry here)."""
    services = {"nats": {"image": nats}} | {name: {"image": image} for name in SERVICES}
    return json.dumps({"services": services})


def test_compose_yaml_runs_with_podman_compose(
    image: str, tmp_path: Path, kube_serving: Any
) -> None:
    reason = podman.compose_unavailable()
    if reason:
        _skip_or_fail(reason)
    nats = podman.nats_image(podman.base_image())
    network = f"{COMPOSE_PROJECT}_default"  # podman-compose's name for the default network
    podman.run(podman.podman(), "network", "rm", "--force", network, check=False)
    podman.run(podman.podman(), "network", "create", network)
    gateway = podman.run(
        podman.podman(),
        "network",
        "inspect",
        "--format",
        "{{range .Subnets}}{{.Gateway}}{{end}}",
        network,
    ).stdout.strip()
    kube_dir = tmp_path / "kube"
    kube_dir.mkdir(mode=0o755)
    (tmp_path / "override.json").write_text(_override(image, nats))
    env = {"CERTLC_KUBE_DIR": str(kube_dir), "NATS_PORT": str(free_port())}
    files = ["-f", str(podman.REPO / "compose.yaml"), "-f", str(tmp_path / "override.json")]
    containers = {s: f"{COMPOSE_PROJECT}_{s}_1" for s in COMPOSE_SERVICES}
    sim: KubeSim | None = None
    try:
        # Parsed: the podman commands it would run name the local images and compose.yaml's
        # restrictions (podman-compose 1.0 has no `config` command).
        planned = _compose(
            "--dry-run", *files, "up", "-d", "--no-build", *COMPOSE_SERVICES, env=env
        )
        for expected in (image, nats, "--read-only", "--cap-drop ALL", "-u 10001:10001"):
            assert expected in planned, planned
        # NATS first: the network's bridge exists once a container is on it, and the stand-in
        # then listens on its gateway, the host as the containers see it.
        _compose(*files, "up", "-d", "--no-build", "nats", env=env)
        sim = KubeSim(host=gateway, ready_delay=0.2, gc=True).start()
        sim.write_kubeconfig(kube_dir / "config").chmod(0o644)  # readable by uid 10001
        seed_datastores(sim)
        # podman-compose 1.0 ignores `profiles`: name the services, or it starts k3s too.
        _compose(*files, "up", "-d", "--no-build", *SERVICES, env=env)

        def healthy() -> bool:
            # podman runs healthchecks from systemd timers, absent here: run each on demand.
            return all(
                podman.run(podman.podman(), "healthcheck", "run", c, check=False).returncode == 0
                for c in containers.values()
            )

        wait_for(healthy, 120, "every compose service healthy")
        seed_tenant(sim, "composed")
        wait_for(
            lambda: sim.try_get("secrets", "composed-api-server-certificate"),
            90,
            "the services in compose to issue the TCP's Secrets",
        )
        old = sim.get("secrets", "composed-api-server-certificate")
        sim.delete("secrets", "composed-api-server-certificate")
        wait_for(
            lambda: (
                (s := sim.try_get("secrets", "composed-api-server-certificate"))
                and s["metadata"]["uid"] != old["metadata"]["uid"]
            ),
            60,
            "the deleted Secret to come back",
        )
    except BaseException:
        for name in containers.values():
            logs = podman.run(podman.podman(), "logs", name, check=False)
            print(f"--- {name}\n{(logs.stdout + logs.stderr)[-3000:]}")
        raise
    finally:
        _compose(*files, "down", "-v", "-t", "5", env=env, timeout=300)
        podman.run(podman.podman(), "network", "rm", "--force", network, check=False)
        if sim is not None:
            sim.stop()

"""Fixtures of the CLI suite: the whole stack per module (nats-server, the Kubernetes API
stand-in, the four services as processes, as the end-to-end suite starts it), fresh TCPs, and
`cli(...)`, which runs `certlc` in-process and captures its exit code, stdout and stderr."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from libs.cli.main import main
from tests.e2e.harness import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
_names = itertools.count(1)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("cli")
    for s in start_stack(Path(workdir), kube_serving):
        seed_datastores(s.sim)
        yield s


@pytest.fixture
def tenant_factory(stack: Stack, request: pytest.FixtureRequest) -> Callable[[], str]:
    """Make a new TCP (etcd, konnectivity on) whose Secrets certlc has issued and rolled out."""

    def make() -> str:
        module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
        name = f"{module}-{next(_names)}"
        seed_tenant(stack.sim, name)
        try:  # generous: other suites may share the machine
            stack.first_issued(name, timeout=90)
        except AssertionError as exc:
            tails = "\n".join(
                f"--- {p.name}-{p.instance}\n{p.log_text()[-3000:]}"
                for p in stack.services.processes
            )
            raise AssertionError(f"{exc}\n{tails}") from None
        stack.quiet(name, 2.0)
        return name

    return make


@pytest.fixture
def tenant(tenant_factory: Callable[[], str]) -> str:
    return tenant_factory()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `certlc ARGS` in-process; argparse's SystemExit becomes the exit code."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 2
        captured = capsys.readouterr()
        return Result(int(code), captured.out, captured.err)

    return run


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def certlc_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m libs.cli.main ARGS` as a child process (text pipes)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "CERTLC_NATS_URL")}
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "libs.cli.main", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def certlc_run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    proc = certlc_process(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return Result(proc.returncode, out, err)

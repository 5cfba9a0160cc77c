"""Fixtures of the end-to-end suite: one stack per module (services started once), and a fresh
TenantControlPlane per test so tests do not see each other's Secrets."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from certlc_dev.devenv.stack import seed_datastores, seed_tenant
from tests.e2e.harness import Stack, start_stack

_names = itertools.count(1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    for s in start_stack(Path(workdir), kube_serving):
        seed_datastores(s.sim)
        yield s


@pytest.fixture
def tenant(stack: Stack, request: pytest.FixtureRequest) -> str:
    """A new TCP (etcd, konnectivity on) whose Secrets certlc has issued and rolled out."""
    name = f"tcp-{next(_names)}"
    seed_tenant(stack.sim, name)
    stack.first_issued(name)
    stack.quiet(name)
    return name

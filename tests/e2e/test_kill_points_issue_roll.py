"""Kill points of the issuer and rollout: SIGKILL at each phase of a rotation, and while a
deletion happens; every Secret comes back valid and rolled out within 15 s of the restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Stack
from tests.e2e.killpoints import kill_point_stack, points, run_point

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kube_serving: Any) -> Iterator[Stack]:
    yield from kill_point_stack(Path(tmp_path_factory.mktemp("e2e-kill-ir")), kube_serving)


@points("issuer", "rollout")
def test_a_kill_at_this_point_loses_nothing(stack: Stack, service: str, point: str) -> None:
    run_point(stack, service, point)

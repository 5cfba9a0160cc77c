"""Fixtures of the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from certlc_dev.devenv import NatsServer
from tests.deploy.natsserver import deployed_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """deploy/'s NATS server (tests.deploy.natsserver), one per test module."""
    with deployed_server(tmp_path_factory.mktemp("nats-auth")) as nats_server:
        yield nats_server

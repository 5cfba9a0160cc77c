"""One retry layer: a read is tried once more on a retryable error, a write is not retried."""

from __future__ import annotations

import pytest

from libs.kube import aio
from libs.kube.errors import RetryableKubeError


class Api:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    def _call(self, name: str) -> str:
        self.calls.append(name)
        if len(self.calls) <= self.failures:
            raise RetryableKubeError(503, "ServiceUnavailable", "etcd leader election")
        return "ok"

    def get_secret(self) -> str:
        return self._call("get")

    def create_secret(self) -> str:
        return self._call("create")


async def test_a_read_is_retried_once() -> None:
    api = Api(failures=1)
    assert await aio.call(api.get_secret) == "ok"
    assert api.calls == ["get", "get"]


async def test_a_read_that_keeps_failing_reaches_the_handler_after_two_calls() -> None:
    api = Api(failures=5)
    with pytest.raises(RetryableKubeError):
        await aio.call(api.get_secret)
    assert api.calls == ["get", "get"]


async def test_a_write_is_not_retried_here() -> None:
    api = Api(failures=1)
    with pytest.raises(RetryableKubeError):
        await aio.call(api.create_secret)
    assert api.calls == ["create"]

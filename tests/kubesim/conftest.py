"""Fixtures of the stand-in's conformance tests: the official client's API groups."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client


@pytest.fixture
def apps(kube_api: Any) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api)


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)

"""Shared pytest configuration: fixtures for a real nats-server and the Kubernetes API stand-in."""

pytest_plugins = ["tests.fixtures.nats", "tests.fixtures.kube"]

"""Benchmark of the Kubernetes API stand-in with 20,000 realistic Secrets.

The stand-in runs in its own process (as it does for services under test) and this process is
the client. Printed figures: creating the Secrets (over HTTPS, and through the in-process
Python API of a second instance), listing them all (raw HTTP and the official client), a
watch from "0" receiving every ADDED (raw HTTP and the official client's `Watch`), and the
latency of a watch event. Run from the repository root:

    python -m benchmarks.kubesim_bench [--count N] [--http] [--workers N]
    python benchmarks/kubesim_bench.py
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config, watch

from certlc_dev.kubesim import KubeSim

NAMESPACE = "bench"
DATA_BYTES = 2600  # raw bytes per Secret: ~3.8 KiB per object as JSON


def secret_body(index: int, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A Secret shaped like a Kamaji certificate Secret."""
    blob = os.urandom(DATA_BYTES // 2)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"tcp-{index:05d}-api-server-certificate",
            "namespace": namespace,
            "labels": {
                "kamaji.clastix.io/project": "kamaji",
                "kamaji.clastix.io/name": f"tcp-{index:05d}",
                "kamaji.clastix.io/component": "api-server-certificate",
            },
            "annotations": {"kamaji.clastix.io/checksum": f"{index:032x}"},
        },
        "type": "Opaque",
        "data": {
            "apiserver.crt": base64.b64encode(blob).decode(),
            "apiserver.key": base64.b64encode(blob[::-1]).decode(),
        },
    }


@dataclass(frozen=True)
class Target:
    """How to reach the server process."""

    port: int
    token: str
    ca_pem: bytes | None
    kubeconfig: str


def serve(https: bool, pipe: Connection) -> None:
    """Child process: run a stand-in until told to stop."""
    with KubeSim(https=https, controllers=False) as sim:
        for name in (NAMESPACE, "latency"):
            sim.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        pipe.send(Target(sim.port, sim.token, sim.ca_cert_pem, sim.kubeconfig()))
        pipe.recv()


class Raw:
    """Keep-alive HTTP(S) connections to the stand-in, no client library."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.headers = {
            "Authorization": f"Bearer {target.token}",
            "Content-Type": "application/json",
        }
        self.context = None
        if target.ca_pem is not None:
            self.context = ssl.create_default_context(cadata=target.ca_pem.decode())

    def connect(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.target.port, context=self.context, timeout=120
            )
        return http.client.HTTPConnection("127.0.0.1", self.target.port, timeout=120)

    def request(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, bytes]:
        conn.request(method, path, body=body, headers=self.headers)
        response = conn.getresponse()
        return response.status, response.read()

    def get(self, path: str) -> bytes:
        conn = self.connect()
        try:
            status, body = self.request(conn, "GET", path)
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return body

    def stream_lines(self, path: str) -> Iterator[bytes]:
        conn = self.connect()
        try:
            conn.request("GET", path, headers=self.headers)
            response = conn.getresponse()
            while line := response.readline():
                yield line
        finally:
            conn.close()


def timed(label: str, action: Callable[[], Any], note: str = "") -> Any:
    started = time.perf_counter()
    result = action()
    print(f"{label:<60} {time.perf_counter() - started:8.3f} s {note}")
    return result


def create_over_http(raw: Raw, bodies: list[bytes], workers: int, namespace: str) -> None:
    """POST every body over `workers` keep-alive connections in parallel."""
    chunks = [bodies[i::workers] for i in range(workers)]
    errors: list[str] = []

    def work(chunk: list[bytes]) -> None:
        conn = raw.connect()
        try:
            for body in chunk:
                status, reply = raw.request(
                    conn, "POST", f"/api/v1/namespaces/{namespace}/secrets", body
                )
                if status != 201:
                    errors.append(reply.decode()[:200])
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} creates failed, first: {errors[0]}")


def watch_all_raw(raw: Raw, expected: int) -> int:
    count = 0
    for line in raw.stream_lines(
        f"/api/v1/namespaces/{NAMESPACE}/secrets?watch=true&resourceVersion=0&timeoutSeconds=300"
    ):
        if line.startswith(b'{"type":"ADDED"'):
            count += 1
            if count == expected:
                break
    return count


def watch_all_client(core: client.CoreV1Api, expected: int) -> int:
    w = watch.Watch()
    received = 0
    for _ in w.stream(
        core.list_namespaced_secret, NAMESPACE, resource_version="0", timeout_seconds=300
    ):
        received += 1
        if received == expected:
            w.stop()
    return received


def watch_latency(raw: Raw, rounds: int) -> list[float]:
    """Seconds from sending a create to reading its ADDED event on an open watch."""
    conn = raw.connect()
    latencies: list[float] = []
    try:
        listed = json.loads(raw.request(conn, "GET", "/api/v1/namespaces/latency/secrets")[1])
        lines = raw.stream_lines(
            "/api/v1/namespaces/latency/secrets?watch=true&timeoutSeconds"
            f"=300&resourceVersion={listed['metadata']['resourceVersion']}"
        )
        try:
            for i in range(rounds):
                body = json.dumps({"metadata": {"name": f"l{i}"}, "data": {"k": "dg=="}})
                started = time.perf_counter()
                raw.request(conn, "POST", "/api/v1/namespaces/latency/secrets", body.encode())
                next(lines)
                latencies.append(time.perf_counter() - started)
        finally:
            lines.close()
    finally:
        conn.close()
    return latencies


def in_process_creates(bodies: list[dict[str, Any]]) -> None:
    with KubeSim(https=False, controllers=False) as sim:
        sim.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        secrets = sim.resource("secrets")
        timed(
            f"create {len(bodies)} via the in-process Python API",
            lambda: [sim.api.create(secrets, NAMESPACE, dict(b)) for b in bodies],
        )


def measure(target: Target, bodies: list[bytes], workers: int) -> None:
    count = len(bodies)
    raw = Raw(target)
    started = time.perf_counter()
    create_over_http(raw, bodies, workers, NAMESPACE)
    elapsed = time.perf_counter() - started
    print(
        f"{f'create {count} over HTTP ({workers} keep-alive connections)':<60} "
        f"{elapsed:8.3f} s ({count / elapsed:,.0f}/s)"
    )
    path = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    for attempt in (1, 2):
        body = timed(f"list {count} (raw HTTP, body read) #{attempt}", lambda: raw.get(path))
    print(f"{'  list body size':<60} {len(body) / 1e6:8.1f} MB")
    decoded = timed(f"list {count} (raw HTTP + json.loads)", lambda: json.loads(raw.get(path)))
    assert len(decoded["items"]) == count
    del body, decoded
    with tempfile.TemporaryDirectory() as directory:
        kubeconfig = Path(directory) / "kubeconfig"
        kubeconfig.write_text(target.kubeconfig)
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            core = client.CoreV1Api(api)
            listed = timed(
                f"list {count} (official client, typed models)",
                lambda: core.list_namespaced_secret(NAMESPACE),
            )
            assert len(listed.items) == count
            del listed
            assert (
                timed(
                    f'watch from "0": {count} ADDED (raw HTTP)', lambda: watch_all_raw(raw, count)
                )
                == count
            )
            assert (
                timed(
                    f'watch from "0": {count} ADDED (official client Watch)',
                    lambda: watch_all_client(core, count),
                )
                == count
            )
        finally:
            api.close()
    latencies = sorted(watch_latency(raw, 300))
    print(
        f"{'watch event latency (POST sent -> event read), median':<60} "
        f"{statistics.median(latencies) * 1000:8.2f} ms"
    )
    print(
        f"{'watch event latency, p99':<60} "
        f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:8.2f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    parser.add_argument("--workers", type=int, default=4, help="HTTP create connections")
    args = parser.parse_args(argv)
    objects = [secret_body(i) for i in range(args.count)]
    encoded = [json.dumps(o).encode() for o in objects]
    print(
        f"{args.count} Secrets, {sum(map(len, encoded)) / args.count / 1024:.1f} KiB each as "
        f"JSON; {'HTTP' if args.http else 'HTTPS'}; {os.cpu_count()} CPUs; server in its own "
        "process"
    )
    in_process_creates(objects)
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=serve, args=(not args.http, child), daemon=True)
    server.start()
    try:
        target: Target = parent.recv()
        measure(target, encoded, args.workers)
    finally:
        parent.send("stop")
        server.join(timeout=30)
        parent.close()
        child.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`KubeSim`: the Kubernetes API stand-in as one object to start, use and stop.

Wires the store, API, controllers, fault injection, authentication and the HTTP(S) server,
writes kubeconfigs, and exposes `faults` plus the Python object API of `objects.py`, which goes
through the same API rules as HTTP clients, for tests that seed or inspect state directly.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from certlc_dev.kubesim.api import Api
from certlc_dev.kubesim.app import Application
from certlc_dev.kubesim.auth import Authorizer, TokenAuthenticator, allow_all, render_kubeconfig
from certlc_dev.kubesim.deployments import DeploymentController
from certlc_dev.kubesim.endpoints import Endpoints
from certlc_dev.kubesim.faults import Faults
from certlc_dev.kubesim.garbage import GarbageCollector
from certlc_dev.kubesim.http import SimHTTPServer
from certlc_dev.kubesim.objects import ObjectApi
from certlc_dev.kubesim.rbac import RbacAuthorizer
from certlc_dev.kubesim.resources import Registry
from certlc_dev.kubesim.snapshot import Snapshotter, load, save
from certlc_dev.kubesim.store import DEFAULT_HISTORY, Store
from certlc_dev.kubesim.tokens import DEFAULT_EXPIRATION, TokenIssuer
from libs.pki.serving import ServingMaterial, make_serving_material

log = logging.getLogger("kubesim")

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _tls_context(material: ServingMaterial) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="kubesim-tls-") as directory:
        cert, key = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert.write_bytes(material.cert_pem)
        key.write_bytes(material.key_pem)
        key.chmod(0o600)
        context.load_cert_chain(cert, key)
    return context


class KubeSim(ObjectApi):
    """A running (after `start()`) Kubernetes API stand-in.

    The Python API for seeding and inspecting state (`create`, `get`, `list`, `patch`,
    `update_status`, `delete`, `wait_for`, `wait_for_rollout`) comes from `ObjectApi`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        https: bool = True,
        tokens: Mapping[str, str] | None = None,
        require_auth: bool | None = None,
        serving: ServingMaterial | None = None,
        authorizer: Authorizer | None = None,
        rbac: bool = False,
        gc: bool = False,
        controllers: bool = True,
        ready_delay: float = 0.2,
        history_limit: int = DEFAULT_HISTORY,
        bookmark_interval: float = 1.0,
        snapshot: str | Path | None = None,
        snapshot_interval: float | None = None,
        namespaces: Sequence[str] = DEFAULT_NAMESPACES,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.host = host
        self.registry = Registry()
        self.store = Store(self.registry, history_limit=history_limit)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.api = Api(self.store, clock=self.clock)
        self.faults = Faults()
        self.faults.cut_hook = self._cut_watches
        self.faults.compact_hook = self._compact
        self.authenticator = TokenAuthenticator(
            tokens, clock=self.clock, account_exists=self._account_exists
        )
        self.tokens = TokenIssuer(self.api, self.authenticator, self.clock)
        if authorizer is None:
            authorizer = RbacAuthorizer(self.store, self.registry) if rbac else allow_all
        self.authorizer = authorizer
        if require_auth is None:  # kubectl never sends a bearer token over plain HTTP
            require_auth = https
        self._require_auth = require_auth
        self.serving = serving
        if https and serving is None:
            hosts = sorted({host, "127.0.0.1", "localhost"})
            self.serving = make_serving_material(hosts, self.clock())
        self._https = https
        self._gc = gc
        self._controllers = controllers
        self._ready_delay = ready_delay
        self._snapshot_path = Path(snapshot) if snapshot is not None else None
        self._snapshot_interval = snapshot_interval
        endpoints = Endpoints(self.api, clock=self.clock, bookmark_interval=bookmark_interval)
        self.application = Application(
            self.registry,
            endpoints,
            self.faults,
            authenticator=self.authenticator if require_auth else None,
            authorizer=authorizer,
            tokens=self.tokens,
            server_address=lambda: f"{self.host}:{self.port}",
            snapshot=self.save_snapshot,
        )
        self._requested_port = port
        self._server: SimHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._background: list[DeploymentController | GarbageCollector | Snapshotter] = []
        self._namespaces = tuple(namespaces)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KubeSim:
        """Load the snapshot (if any), start controllers and listen; returns self."""
        if self._server is not None:
            return self
        if self._snapshot_path is not None and self._snapshot_path.exists():
            count = load(self.store, self._snapshot_path)
            log.info("loaded %d objects from %s", count, self._snapshot_path)
        namespaces = self.registry.resolve("namespaces")
        for name in self._namespaces:
            if self.store.get(namespaces, "", name) is None:
                self.api.create(namespaces, "", {"metadata": {"name": name}})
        if self._controllers:
            self._background.append(DeploymentController(self.api, ready_delay=self._ready_delay))
        if self._gc:
            self._background.append(GarbageCollector(self.api))
        if self._snapshot_path is not None and self._snapshot_interval:
            self._background.append(
                Snapshotter(self.store, self._snapshot_path, self._snapshot_interval)
            )
        for worker in self._background:
            worker.start()
        context = _tls_context(self.serving) if self._https and self.serving else None
        self._server = SimHTTPServer((self.host, self._requested_port), self.application, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="kubesim-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close watches and connections, stop threads, save the snapshot (if configured)."""
        server, self._server = self._server, None
        if server is None:
            return
        self.store.close_watches()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join()
        for worker in reversed(self._background):
            worker.stop()
        self._background.clear()
        if self._snapshot_path is not None:
            self.save_snapshot()

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save_snapshot(self) -> str | None:
        if self._snapshot_path is None:
            return None
        save(self.store, self._snapshot_path)
        return str(self._snapshot_path)

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._https else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def token(self) -> str:
        """A valid bearer token (the first configured one)."""
        return self.authenticator.first_token()

    @property
    def ca_cert_pem(self) -> bytes | None:
        return self.serving.ca_cert_pem if self._https and self.serving else None

    def kubeconfig(self, *, token: str | None = None, namespace: str = "default") -> str:
        return render_kubeconfig(
            self.url, token or self.token, self.ca_cert_pem, namespace=namespace
        )

    def write_kubeconfig(
        self, path: str | Path, *, token: str | None = None, namespace: str = "default"
    ) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.kubeconfig(token=token, namespace=namespace))
        target.chmod(0o600)
        return target

    # ------------------------------------------------------------------ service accounts

    def _account_exists(self, namespace: str, name: str, uid: str) -> bool:
        stored = self.store.get(self.registry.resolve("serviceaccounts"), namespace, name)
        return stored is not None and stored.uid == uid

    def service_account_token(
        self, namespace: str, name: str, *, expiration_seconds: int = DEFAULT_EXPIRATION
    ) -> str:
        """A token for an existing ServiceAccount, as the TokenRequest API issues it."""
        answer = self.tokens.issue(namespace, name, {"expirationSeconds": expiration_seconds})
        return str(answer["status"]["token"])

    # ------------------------------------------------------------------ fault hooks

    def _cut_watches(self, resource: str | None, namespace: str | None, abrupt: bool) -> int:
        rt = self.resource(resource) if resource else None
        count = 0
        for sub in self.store.subscriptions():
            if rt is not None and sub.rt is not rt:
                continue
            if namespace is not None and sub.namespace not in (None, namespace):
                continue
            sub.close("cut-abrupt" if abrupt else "cut")
            count += 1
        return count

    def _compact(self, resource: str | None) -> int:
        return self.store.compact(self.resource(resource) if resource else None)

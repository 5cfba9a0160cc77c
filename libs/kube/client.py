"""`KubeClient`: the calls certlc makes, over the official client, with objects as dicts.

Every call goes through `_call`, which maps the client's exceptions onto `libs.kube.errors` and
decodes the raw response body with msgspec. Calls are synchronous (the official client is);
async services run them with `asyncio.to_thread`. Lists take `limit` and `continue_token`, so a
caller holding thousands of Secrets can read them a page at a time instead of in one response.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec
import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from libs.kube.errors import KubeError, RetryableKubeError, classify

Obj = dict[str, Any]

KAMAJI_GROUP: Final = "kamaji.clastix.io"
KAMAJI_VERSION: Final = "v1alpha1"
TCP_PLURAL: Final = "tenantcontrolplanes"
DATASTORE_PLURAL: Final = "datastores"

_json = msgspec.json.Decoder()


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient from a kubeconfig file, or from the pod's service account when None."""
    if kubeconfig:
        return k8s_config.new_client_from_config(config_file=kubeconfig, context=context)
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


def api_error(exc: ApiException) -> KubeError:
    """The typed error for an ApiException, with the Status reason and message when present."""
    status = int(exc.status or 0)
    reason, message = str(exc.reason or ""), str(exc.body or exc.reason or "")
    if exc.body:
        try:
            body = _json.decode(exc.body)
        except (msgspec.DecodeError, TypeError):
            body = None
        if isinstance(body, dict):
            reason = str(body.get("reason") or reason)
            message = str(body.get("message") or message)
    retry_after: float | None = None
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is not None:
        try:
            retry_after = float(value)
        except ValueError:
            retry_after = None
    return classify(status, reason, message, retry_after)


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
    try:
        response = fn(*args, _preload_content=False, **kwargs)
        data = response.data
    except ApiException as exc:
        raise api_error(exc) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise RetryableKubeError(0, "TransportError", str(exc)) from exc
    decoded = _json.decode(data) if data else {}
    if not isinstance(decoded, dict):
        raise KubeError(0, "BadResponse", f"expected a JSON object, got {type(decoded).__name__}")
    return decoded


def _paging(limit: int | None, continue_token: str) -> Obj:
    """The client's keyword arguments for one page of a list."""
    kwargs: Obj = {}
    if limit:
        kwargs["limit"] = limit
    if continue_token:
        kwargs["_continue"] = continue_token
    return kwargs


class KubeClient:
    """The Kubernetes calls certlc makes. Thread-safe as the underlying ApiClient is."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    # The client's API classes are large modules, imported on first use: a service that never
    # touches Deployments does not pay for AppsV1Api at start-up.
    @functools.cached_property
    def core(self) -> Any:
        return k8s.CoreV1Api(self.api_client)

    @functools.cached_property
    def apps(self) -> Any:
        return k8s.AppsV1Api(self.api_client)

    @functools.cached_property
    def custom(self) -> Any:
        return k8s.CustomObjectsApi(self.api_client)

    @classmethod
    def from_kubeconfig(cls, kubeconfig: str | None = None) -> KubeClient:
        return cls(load_api_client(kubeconfig))

    def close(self) -> None:
        self.api_client.close()

    # --- Secrets -------------------------------------------------------------------------

    def list_secrets(
        self,
        namespace: str | None = None,
        label_selector: str = "",
        *,
        limit: int | None = None,
        continue_token: str = "",
    ) -> Obj:
        kwargs = _paging(limit, continue_token)
        if namespace is None:
            return _call(
                self.core.list_secret_for_all_namespaces, label_selector=label_selector, **kwargs
            )
        return _call(
            self.core.list_namespaced_secret, namespace, label_selector=label_selector, **kwargs
        )

    def get_secret(self, namespace: str, name: str) -> Obj:
        return _call(self.core.read_namespaced_secret, name, namespace)

    def create_secret(self, namespace: str, body: Obj) -> Obj:
        return _call(self.core.create_namespaced_secret, namespace, body)

    def replace_secret(self, namespace: str, name: str, body: Obj) -> Obj:
        """PUT; `body.metadata.resourceVersion` makes it conditional (409 when stale)."""
        return _call(self.core.replace_namespaced_secret, name, namespace, body)

    def delete_secret(
        self,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        preconditions: Obj = {}
        if uid:
            preconditions["uid"] = uid
        if resource_version:
            preconditions["resourceVersion"] = resource_version
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions or None}
        return _call(self.core.delete_namespaced_secret, name, namespace, body=body)

    def get_namespace(self, name: str) -> Obj:
        return _call(self.core.read_namespace, name)

    # --- TenantControlPlanes and DataStores -----------------------------------------------

    def list_tcps(
        self, namespace: str | None = None, *, limit: int | None = None, continue_token: str = ""
    ) -> Obj:
        kwargs = _paging(limit, continue_token)
        if namespace is None:
            return _call(
                self.custom.list_cluster_custom_object,
                KAMAJI_GROUP,
                KAMAJI_VERSION,
                TCP_PLURAL,
                **kwargs,
            )
        return _call(
            self.custom.list_namespaced_custom_object,
            KAMAJI_GROUP,
            KAMAJI_VERSION,
            namespace,
            TCP_PLURAL,
            **kwargs,
        )

    def get_tcp(self, namespace: str, name: str) -> Obj:
        return _call(
            self.custom.get_namespaced_custom_object,
            KAMAJI_GROUP,
            KAMAJI_VERSION,
            namespace,
            TCP_PLURAL,
            name,
        )

    def patch_tcp_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        """JSON merge patch of the TCP's /status subresource."""
        return _call(
            self.custom.patch_namespaced_custom_object_status,
            KAMAJI_GROUP,
            KAMAJI_VERSION,
            namespace,
            TCP_PLURAL,
            name,
            patch,
        )

    def list_datastores(self, *, limit: int | None = None, continue_token: str = "") -> Obj:
        return _call(
            self.custom.list_cluster_custom_object,
            KAMAJI_GROUP,
            KAMAJI_VERSION,
            DATASTORE_PLURAL,
            **_paging(limit, continue_token),
        )

    def get_datastore(self, name: str) -> Obj:
        return _call(
            self.custom.get_cluster_custom_object,
            KAMAJI_GROUP,
            KAMAJI_VERSION,
            DATASTORE_PLURAL,
            name,
        )

    # --- Deployments and Events -----------------------------------------------------------

    def get_deployment(self, namespace: str, name: str) -> Obj:
        return _call(self.apps.read_namespaced_deployment, name, namespace)

    def patch_deployment(self, namespace: str, name: str, patch: Obj) -> Obj:
        """Strategic merge patch (the client's default for a dict on a built-in kind)."""
        return _call(self.apps.patch_namespaced_deployment, name, namespace, patch)

    def create_event(self, namespace: str, body: Obj) -> Obj:
        return _call(self.core.create_namespaced_event, namespace, body)

    # --- watches --------------------------------------------------------------------------

    def watch_stream(
        self,
        resource: str,
        *,
        resource_version: str,
        label_selector: str = "",
        timeout_seconds: int = 300,
    ) -> Iterator[tuple[str, Obj]]:
        """Raw watch events `(type, object)` of `resource` ("secrets", "tcps", "datastores")
        from `resource_version`, bookmarks included; ends when the server closes the stream.

        Raises `Gone` when the server answers 410 (the caller re-lists). The stream is read with
        the client's own transport and line splitter; events are decoded with msgspec, since the
        client's `Watch(deserialize=False)` neither tracks resourceVersions nor handles ERROR.
        """
        fn, args = self._watch_target(resource)
        kwargs: Obj = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout_seconds,
            "_preload_content": False,
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        try:
            response = fn(*args, **kwargs)
        except ApiException as exc:
            raise api_error(exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableKubeError(0, "TransportError", str(exc)) from exc
        try:
            for line in iter_resp_lines(response):
                if not line or line.isspace():
                    continue
                event = _json.decode(line)
                kind, obj = str(event.get("type", "")), event.get("object") or {}
                if kind == "ERROR":
                    raise classify(
                        int(obj.get("code") or 500),
                        str(obj.get("reason") or ""),
                        str(obj.get("message") or "watch error"),
                    )
                yield kind, obj
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableKubeError(0, "TransportError", str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise RetryableKubeError(0, "BadWatchEvent", str(exc)) from exc
        finally:
            response.close()
            response.release_conn()

    def list_resource(
        self,
        resource: str,
        label_selector: str = "",
        *,
        limit: int | None = None,
        continue_token: str = "",
    ) -> Obj:
        """One page (or, without `limit`, all) of `resource` across namespaces; the next page's
        token is the listing's `metadata.continue`."""
        paging: dict[str, Any] = {"limit": limit, "continue_token": continue_token}
        if resource == "secrets":
            return self.list_secrets(None, label_selector, **paging)
        if resource == "tcps":
            return self.list_tcps(**paging)
        if resource == "datastores":
            return self.list_datastores(**paging)
        raise ValueError(f"unknown resource {resource!r}")

    def _watch_target(self, resource: str) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        if resource == "secrets":
            return self.core.list_secret_for_all_namespaces, ()
        if resource == "tcps":
            return self.custom.list_cluster_custom_object, (
                KAMAJI_GROUP,
                KAMAJI_VERSION,
                TCP_PLURAL,
            )
        if resource == "datastores":
            return self.custom.list_cluster_custom_object, (
                KAMAJI_GROUP,
                KAMAJI_VERSION,
                DATASTORE_PLURAL,
            )
        raise ValueError(f"unknown resource {resource!r}")

"""Rotate requests from external tooling, and the fleet state folded from events."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from libs.contracts.api import RotateRequest, ServiceErrorCode, Target
from libs.contracts.messages import SecretDeleted, TcpDeleted
from libs.pki.profiles import CA_SIGNED_KINDS, SecretKind
from services.lifecycle.policy import Issued, TcpState
from services.lifecycle.requests import Accepted, Rejected, resolve
from services.lifecycle.state import FleetState
from tests.unit.lifecycle.test_policy import NOW, healthy, secret, tcp

K = SecretKind


def request(target: Target, secret_name: str = "", **kw: str) -> RotateRequest:
    return RotateRequest(
        namespace="default", tcp="k8s-126", target=target, secret=secret_name, requester="ops", **kw
    )


def state(**kw: object) -> TcpState:
    return TcpState(tcp(**kw), healthy())


@pytest.mark.parametrize(
    ("target", "secret_name", "expected"),
    [
        (Target.X509, "", {K.APISERVER, K.APISERVER_KUBELET_CLIENT, K.FRONT_PROXY_CLIENT,
                           K.KONNECTIVITY_CERTIFICATE}),
        (Target.KUBECONFIG, "", {K.ADMIN_KUBECONFIG, K.CONTROLLER_MANAGER_KUBECONFIG,
                                 K.SCHEDULER_KUBECONFIG, K.KONNECTIVITY_KUBECONFIG}),
        (Target.CA, "", {K.CA, *CA_SIGNED_KINDS}),
        (Target.SECRET, "k8s-126-admin-kubeconfig", {K.ADMIN_KUBECONFIG}),
        (Target.SECRET, "api-server-certificate", {K.APISERVER}),
        (Target.SECRET, "k8s-126-front-proxy-ca-certificate",
         {K.FRONT_PROXY_CA, K.FRONT_PROXY_CLIENT}),
    ],
)  # fmt: skip
def test_should_accept_a_request_for_each_target(
    target: Target, secret_name: str, expected: set[SecretKind]
) -> None:
    verdict = resolve(request(target, secret_name), state())
    assert isinstance(verdict, Accepted)
    assert set(verdict.kinds) == expected
    assert verdict.ca_rotation is (K.CA in expected)


@pytest.mark.parametrize(
    ("req", "st", "code", "words"),
    [
        (request(Target.X509), None, ServiceErrorCode.NOT_FOUND, "unknown TenantControlPlane"),
        (request(Target.SECRET), state(), ServiceErrorCode.BAD_REQUEST, "needs the field 'secret'"),
        (request(Target.SECRET, "k8s-126-nope"), state(), ServiceErrorCode.NOT_FOUND, "no Secret"),
        (request(Target.SECRET, "konnectivity-kubeconfig"), state(konnectivity=False),
         ServiceErrorCode.NOT_FOUND, "not managed"),
        (request(Target.CA), state(phase="CertificateAuthorityRotating"),
         ServiceErrorCode.CONFLICT, "in progress"),
        (request(Target.X509), state(paused=True), ServiceErrorCode.LOCKED, "paused"),
        (request(Target.SECRET, "ca"), TcpState(tcp(), healthy(CA=secret(K.CA, paused=True))),
         ServiceErrorCode.LOCKED, "k8s-126-ca is paused"),
    ],
)  # fmt: skip
def test_should_reject_with_the_documented_code(
    req: RotateRequest, st: TcpState | None, code: ServiceErrorCode, words: str
) -> None:
    verdict = resolve(req, st)
    assert isinstance(verdict, Rejected)
    assert verdict.code is code
    assert words in verdict.message


def test_should_give_a_retried_request_the_same_id() -> None:
    a = resolve(request(Target.X509, request_id="abc"), state())
    b = resolve(request(Target.X509, request_id="abc"), state())
    c = resolve(request(Target.X509, request_id="abd"), state())
    assert isinstance(a, Accepted)
    assert isinstance(b, Accepted)
    assert isinstance(c, Accepted)
    assert a.id == b.id != c.id


def test_should_fold_events_into_a_view_per_tcp() -> None:
    fleet = FleetState()
    assert fleet.apply(tcp()) == ("default", "k8s-126")
    assert fleet.apply(secret(K.APISERVER, rv="5")) == ("default", "k8s-126")
    view = fleet.view(("default", "k8s-126"))
    assert view is not None
    assert set(view.secrets) == {K.APISERVER}
    fleet.apply(
        SecretDeleted(namespace="default", tcp="k8s-126", name="k8s-126-api-server-certificate",
                      kind="api-server-certificate", uid="u", resource_version="9")
    )  # fmt: skip
    view = fleet.view(("default", "k8s-126"))
    assert view is not None
    assert view.secrets == {}
    assert view.deleted_versions == {K.APISERVER: "9"}


def test_should_ignore_secrets_of_unknown_kinds() -> None:
    fleet = FleetState()
    stray = msgspec.structs.replace(secret(K.APISERVER), kind="something-else")
    assert fleet.apply(stray) is None
    assert fleet.secrets == {}


def test_should_forget_a_deleted_tcp_and_a_tcp_recreated_under_the_same_name() -> None:
    fleet = FleetState()
    fleet.apply(tcp())
    fleet.apply(secret(K.APISERVER))
    fleet.apply(tcp(uid="uid-2"))
    view = fleet.view(("default", "k8s-126"))
    assert view is not None
    assert view.secrets == {}
    fleet.apply(TcpDeleted(namespace="default", name="k8s-126", uid="uid-2", resource_version="3"))
    assert fleet.view(("default", "k8s-126")) is None


def test_should_keep_issue_history_only_for_the_loop_window() -> None:
    fleet = FleetState()
    key = ("default", "k8s-126")
    fleet.record(key, [Issued(K.APISERVER, "1", NOW - timedelta(hours=2))], NOW, timedelta(hours=1))
    assert fleet.history[key] == []
    fleet.record(key, [Issued(K.APISERVER, "2", NOW)], NOW, timedelta(hours=1))
    assert [h.evidence for h in fleet.history[key]] == ["2"]

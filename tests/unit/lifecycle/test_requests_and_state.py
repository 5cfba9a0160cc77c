"""Rotate requests from external tooling, and the fleet state folded from events."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from libs.contracts.api import RotateRequest, ServiceErrorCode, Target
from libs.contracts.messages import SecretDeleted, TcpDeleted
from libs.contracts.records import Phase
from libs.pki.profiles import CA_SIGNED_KINDS, SecretKind
from services.lifecycle.policy import TcpState
from services.lifecycle.requests import Accepted, Rejected, resolve
from services.lifecycle.state import FleetState
from tests.unit.lifecycle.test_policy import NOW, healthy, record, secret, tcp

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
        (request(Target.CA), TcpState(tcp(), healthy(), rotations=(
            record({K.CA: "1"}, ca_rotation=True, phase=Phase.ROLLING_OUT, rid="ca1"),)),
         ServiceErrorCode.CONFLICT, "CA rotation ca1 of default/k8s-126 is rolling-out"),
        (request(Target.X509), TcpState(tcp(), healthy(), rotations=(
            record({K.CA: "1"}, ca_rotation=True, phase=Phase.FAILED, rid="ca2"),)),
         ServiceErrorCode.CONFLICT, "is failed; try again when it completes"),
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


def test_should_prune_old_completed_records_and_those_of_gone_tcps_only() -> None:
    fleet = FleetState()
    fleet.apply(tcp())
    old = NOW - timedelta(hours=2)
    fleet.put_record(record({K.APISERVER: "1"}, at=old, phase=Phase.COMPLETED, rid="done"))
    fleet.put_record(record({K.APISERVER: "2"}, at=old, phase=Phase.FAILED, rid="failed"))
    fleet.put_record(record({K.APISERVER: "3"}, at=NOW, phase=Phase.COMPLETED, rid="recent"))
    fleet.put_record(record({K.CA: "1"}, at=old, tcp="gone", rid="orphan"))
    assert fleet.prune(NOW, timedelta(hours=1)) == 2
    assert set(fleet.rotations[("default", "k8s-126")]) == {"failed", "recent"}
    assert fleet.rotations[("default", "gone")] == {}


def test_should_show_only_the_records_of_the_current_tcp_uid() -> None:
    fleet = FleetState()
    fleet.apply(tcp())
    fleet.put_record(record({K.APISERVER: "1"}, rid="mine"))
    fleet.put_record(record({K.APISERVER: "1"}, rid="older-tcp", tcp_uid="uid-0"))
    view = fleet.view(("default", "k8s-126"))
    assert view is not None
    assert [r.id for r in view.rotations] == ["mine"]

"""The target rule: which Secrets each rotate target re-issues."""

from __future__ import annotations

import pytest

from libs.contracts.api import Target
from libs.contracts.targets import target_kinds
from libs.pki.profiles import CA_SIGNED_KINDS, SecretKind, kinds_for

K = SecretKind
ALL = kinds_for(konnectivity=True)
NO_KONNECTIVITY = kinds_for(konnectivity=False)


@pytest.mark.parametrize(
    ("target", "kind", "present", "expected"),
    [
        (Target.X509, None, ALL, {K.APISERVER, K.APISERVER_KUBELET_CLIENT,
                                  K.FRONT_PROXY_CLIENT, K.KONNECTIVITY_CERTIFICATE}),
        (Target.X509, None, NO_KONNECTIVITY, {K.APISERVER, K.APISERVER_KUBELET_CLIENT,
                                              K.FRONT_PROXY_CLIENT}),
        (Target.KUBECONFIG, None, ALL, {K.ADMIN_KUBECONFIG, K.CONTROLLER_MANAGER_KUBECONFIG,
                                        K.SCHEDULER_KUBECONFIG, K.KONNECTIVITY_KUBECONFIG}),
        (Target.CA, None, ALL, {K.CA, *CA_SIGNED_KINDS}),
        (Target.CA, None, NO_KONNECTIVITY,
         {K.CA, *(k for k in CA_SIGNED_KINDS if k in NO_KONNECTIVITY)}),
        (Target.SECRET, K.FRONT_PROXY_CA, ALL, {K.FRONT_PROXY_CA, K.FRONT_PROXY_CLIENT}),
        (Target.SECRET, K.SA, ALL, {K.SA}),
        (Target.SECRET, K.KONNECTIVITY_KUBECONFIG, NO_KONNECTIVITY, set()),
        (Target.SECRET, None, ALL, set()),
    ],
)  # fmt: skip
def test_a_target_re_issues_exactly_these(
    target: Target, kind: SecretKind | None, present: tuple[SecretKind, ...], expected: set[K]
) -> None:
    got = target_kinds(target, kind, present)
    assert set(got) == expected
    assert len(got) == len(set(got))

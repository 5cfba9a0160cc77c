"""Which Secrets a rotate target re-issues: one rule, for lifecycle (which decides) and for the
CLI's dry run (which shows the decision without asking for it). Pure.

`x509` and `kubeconfig` are the Secrets with that lifecycle label, `ca` is the CA and everything
it signs, a Secret is itself plus what it signs (for the two CAs).
"""

from __future__ import annotations

from collections.abc import Sequence

from libs.contracts.api import Target
from libs.pki.profiles import Lifecycle, SecretKind, dependents, profile


def target_kinds(
    target: Target, kind: SecretKind | None, present: Sequence[SecretKind]
) -> tuple[SecretKind, ...]:
    """The Secrets `target` re-issues among `present` (the kinds the TCP has); `kind` names the
    Secret of `Target.SECRET`. Empty when that Secret is not among them."""
    match target:
        case Target.CA:
            return (SecretKind.CA, *dependents(SecretKind.CA, present))
        case Target.X509:
            return tuple(k for k in present if profile(k).lifecycle is Lifecycle.X509)
        case Target.SA:
            return (SecretKind.SA,) if SecretKind.SA in present else ()
        case Target.KUBECONFIG:
            return tuple(k for k in present if profile(k).lifecycle is Lifecycle.KUBECONFIG)
        case _:
            if kind is None or kind not in present:
                return ()
            return (kind, *dependents(kind, present))

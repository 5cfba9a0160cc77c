"""By when a rotation's new material must be in use: the order in which the rollout budget
serves waiting rollouts (libs/contracts/budget.py). Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from libs.contracts.messages import Reason, SecretObserved
from libs.pki.profiles import SecretKind


def rotation_deadline(
    reason: Reason,
    kinds: Sequence[SecretKind],
    secrets: Mapping[SecretKind, SecretObserved],
    now: datetime,
) -> datetime:
    """A renewal's deadline is the earliest NotAfter among the certificates it replaces; a
    missing, invalid or requested Secret is due now (a broken control plane, or an operator
    waiting), so it goes before every renewal that still has time."""
    if reason is not Reason.EXPIRING:
        return now
    ends = [
        s.cert.not_after
        for kind in kinds
        if (s := secrets.get(kind)) is not None and s.cert is not None
    ]
    return min(ends, default=now)

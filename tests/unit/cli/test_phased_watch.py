"""`certlc rotate --wait` on a step of a phased rotation: it ends when that step is rolled out,
not on the step's rollout alone, and says what comes next."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.cli._rotate import Outcome, RotationWatch
from libs.contracts import api
from libs.contracts.api import RotateAccepted

TCP = "k8s-126"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def step_done(
    step: str, next_step: str, moves_on_at: datetime | None = None
) -> api.RotationStepDone:
    return api.RotationStepDone(
        namespace="default",
        tcp=TCP,
        rotation_id="r1",
        at=AT,
        secret="ca",
        step=step,
        next_step=next_step,
        moves_on_at=moves_on_at,
    )


def test_a_step_ends_when_it_is_rolled_out() -> None:
    accepted = RotateAccepted(
        id="r1", namespace="default", tcp=TCP, secrets=("ca", "admin-kubeconfig"), phased="ca",
        step="swap",
    )  # fmt: skip
    watch = RotationWatch(accepted)
    watch.observe(
        api.RolloutStarted(
            namespace="default", tcp=TCP, rotation_id="r1", at=AT, deployment=TCP, secrets=("ca",)
        )
    )
    rolled = api.RolloutCompleted(
        namespace="default", tcp=TCP, rotation_id="r1", at=AT, deployment=TCP, duration_seconds=2
    )
    assert watch.observe(rolled)[1] is None  # the step ends with its step-done event
    assert watch.observe(step_done("prepare", "swap")) == ([], None)  # an earlier step
    lines, outcome = watch.observe(step_done("swap", "complete"))
    assert lines == ["03:04:05  step swap rolled out"]
    assert outcome == Outcome(True, "swap rolled out; complete waits for --complete")
    last = RotationWatch(
        RotateAccepted(id="r1", namespace="default", tcp=TCP, secrets=("ca",), step="complete")
    )
    assert last.observe(step_done("complete", ""))[1] == Outcome(
        True, "complete rolled out; the phased rotation is complete"
    )

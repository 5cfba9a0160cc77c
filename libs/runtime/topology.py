"""The JetStream topology of certlc: its streams and durable consumers, declared once.

Each service ensures, at start, only its own part of the topology (`for_service`): every stream
it publishes to or reads from, and the durable consumers it consumes. A stream is thus created by
whichever of its users starts first, so the services can start in any order; each stream has one
declaration, so every service ensures the same configuration (idempotent, safe when several
processes do it at once). A service's NATS user may administer exactly that part
(deploy/nats/auth.conf), and no other.

    watcher    publishes certlc.events.>                     CERTLC_EVENTS
    lifecycle  follows CERTLC_EVENTS (ordered consumer),     CERTLC_EVENTS, CERTLC_ROTATE,
               publishes certlc.rotate.>, certlc.audit.>     CERTLC_AUDIT
    issuer     consumes CERTLC_ROTATE (durable issuer),      CERTLC_ROTATE, CERTLC_ISSUED,
               publishes certlc.issued.>, certlc.audit.>     CERTLC_AUDIT; consumer issuer
    rollout    consumes CERTLC_ISSUED (durable rollout) and  CERTLC_ISSUED, CERTLC_AUDIT;
               CERTLC_AUDIT (durable rollout-failures),      consumers rollout,
               publishes certlc.audit.>                      rollout-failures

    CERTLC_EVENTS  certlc.events.>  limits, one message kept per subject: the change feed and a
                                    compacted snapshot of what the watcher saw
    CERTLC_ROTATE  certlc.rotate.>  work queue: rotate commands, consumed by issuer
    CERTLC_ISSUED  certlc.issued.>  work queue: written Secrets, consumed by rollout
    CERTLC_AUDIT   certlc.audit.>   limits, 30 days: the public audit trail; rollout follows
                                    it to record failures and warnings (failed rotations,
                                    loop-guard trips, expiring CAs and external datastore
                                    certificates, rejected annotations) as Warning Events

    KeyValue bucket CERTLC_ROTATIONS (stream KV_CERTLC_ROTATIONS): the rotation records
    (libs/contracts/records.py), newest value per key, 7 days after the last write. lifecycle
    writes and follows them, issuer and rollout read and move them on, `certlc status` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from libs.bus.specs import BucketSpec, ConsumerSpec, Retention, StreamSpec
from libs.contracts import subjects
from libs.contracts.budget import SLOTS_BUCKET
from libs.contracts.records import RECORD_TTL, ROTATIONS_BUCKET

DUPLICATE_WINDOW = 120.0
AUDIT_MAX_AGE = timedelta(days=30).total_seconds()
# How long a delivered message may go without an ack or an in-progress heartbeat before the
# server delivers it again: the time a message whose process died waits. The consumer loop sends
# a heartbeat every DEFAULT_HEARTBEAT_INTERVAL (2 s) while a handler runs, so 6 s leaves two
# heartbeats of margin for a busy event loop and a slow network, and a SIGKILLed handler's
# message is handled again within about 6 s (docs/architecture.md, "Delivery").
ACK_WAIT = 6.0


def streams(replicas: int = 1) -> tuple[StreamSpec, ...]:
    return (
        StreamSpec(
            name=subjects.EVENTS_STREAM,
            subjects=(subjects.EVENTS_SUBJECTS,),
            max_msgs_per_subject=1,
            duplicate_window=DUPLICATE_WINDOW,
            replicas=replicas,
            description="watcher facts about Secrets, TCPs and DataStores (newest per subject)",
        ),
        StreamSpec(
            name=subjects.ROTATE_STREAM,
            subjects=(subjects.ROTATE_SUBJECTS,),
            retention=Retention.WORK_QUEUE,
            duplicate_window=DUPLICATE_WINDOW,
            replicas=replicas,
            description="rotate commands for the issuer",
        ),
        StreamSpec(
            name=subjects.ISSUED_STREAM,
            subjects=(subjects.ISSUED_SUBJECTS,),
            retention=Retention.WORK_QUEUE,
            duplicate_window=DUPLICATE_WINDOW,
            replicas=replicas,
            description="Secrets written by the issuer, for rollout",
        ),
        StreamSpec(
            name=subjects.AUDIT_STREAM,
            subjects=(subjects.AUDIT_SUBJECTS,),
            max_age=AUDIT_MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            replicas=replicas,
            description="rotation audit events for external tooling",
        ),
    )


ISSUER_CONSUMER = ConsumerSpec(
    stream=subjects.ROTATE_STREAM,
    durable=subjects.ISSUER_DURABLE,
    ack_wait=ACK_WAIT,
    description="issuer: mints and writes Secrets",
)
ROLLOUT_CONSUMER = ConsumerSpec(
    stream=subjects.ISSUED_STREAM,
    durable=subjects.ROLLOUT_DURABLE,
    ack_wait=ACK_WAIT,
    description="rollout: rolls the control plane out, updates TCP status",
)
# The whole audit stream: the types recorded as Warning Events (services/rollout/failures.py,
# WARNINGS) have no common subject token, and nats-server 2.9 takes one filter subject per
# consumer (it ignores a list of them). The other types are acknowledged at once. Every message
# is delivered, the oldest first; rollout records no Event for a report older than a Kubernetes
# Event lives, so a consumer created on a long audit trail posts no stale ones.
ROLLOUT_FAILURES_CONSUMER = ConsumerSpec(
    stream=subjects.AUDIT_STREAM,
    durable=subjects.ROLLOUT_FAILURES_DURABLE,
    filter_subject=subjects.AUDIT_SUBJECTS,
    ack_wait=ACK_WAIT,
    description="rollout: Warning Events on the TCP for failures and warnings",
)
CONSUMERS = (ISSUER_CONSUMER, ROLLOUT_CONSUMER, ROLLOUT_FAILURES_CONSUMER)


SERVICES = ("watcher", "lifecycle", "issuer", "rollout")

# The streams each service publishes to or reads from, and the durable consumers it consumes.
_STREAMS_OF: Mapping[str, tuple[str, ...]] = {
    "watcher": (subjects.EVENTS_STREAM,),
    "lifecycle": (subjects.EVENTS_STREAM, subjects.ROTATE_STREAM, subjects.AUDIT_STREAM),
    "issuer": (subjects.ROTATE_STREAM, subjects.ISSUED_STREAM, subjects.AUDIT_STREAM),
    "rollout": (subjects.ISSUED_STREAM, subjects.AUDIT_STREAM),
}
_CONSUMERS_OF: Mapping[str, tuple[ConsumerSpec, ...]] = {
    "watcher": (),
    "lifecycle": (),
    "issuer": (ISSUER_CONSUMER,),
    "rollout": (ROLLOUT_CONSUMER, ROLLOUT_FAILURES_CONSUMER),
}


def rotations_bucket(replicas: int = 1) -> BucketSpec:
    return BucketSpec(
        name=ROTATIONS_BUCKET,
        history=1,
        ttl=RECORD_TTL.total_seconds(),
        replicas=replicas,
        description="certlc rotation records (docs/architecture.md, 'The rotation record')",
    )


def slots_bucket(replicas: int = 1) -> BucketSpec:
    """The rollout budget's one document (libs/contracts/budget.py); its entries carry leases,
    so the bucket needs no TTL."""
    return BucketSpec(
        name=SLOTS_BUCKET,
        history=1,
        replicas=replicas,
        description="certlc rollout budget: who rolls out, who waits (docs/operations.md)",
    )


SLOTS_STREAM = f"KV_{SLOTS_BUCKET}"
SLOTS_SUBJECTS = f"$KV.{SLOTS_BUCKET}.>"


# The services that read and write the rotation records (each may create the bucket).
RECORD_USERS = ("lifecycle", "issuer", "rollout")
RECORDS_STREAM = f"KV_{ROTATIONS_BUCKET}"  # the bucket's stream, as JetStream names it
RECORDS_SUBJECTS = f"$KV.{ROTATIONS_BUCKET}.>"


def for_service(
    name: str, replicas: int = 1
) -> tuple[tuple[StreamSpec, ...], tuple[ConsumerSpec, ...]]:
    """The streams and durable consumers service `name` ensures at start, and may administer.

    The streams come from `streams(replicas)` (one declaration for all services), in its order;
    every consumer's stream is among them, so a service can start on an empty server.
    """
    if name not in _STREAMS_OF:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICES)}")
    wanted = _STREAMS_OF[name]
    return (
        tuple(spec for spec in streams(replicas) if spec.name in wanted),
        _CONSUMERS_OF[name],
    )

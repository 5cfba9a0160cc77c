"""Every subject, stream and durable consumer name certlc uses, spelled once.

Subject layout (all lower case; Kubernetes names are encoded with `names.encode_token`):

    certlc.events.secret.<ns>.<tcp>.<secret>   watcher -> lifecycle   SecretObserved / SecretDeleted
    certlc.events.tcp.<ns>.<tcp>               watcher -> lifecycle   TcpObserved / TcpDeleted
    certlc.events.datastore.<name>             watcher -> lifecycle   DataStoreObserved / ...Deleted
    certlc.events.watcher.synced               watcher -> lifecycle   WatcherSynced
    certlc.rotate.<ns>.<tcp>                   lifecycle -> issuer    RotateCommand
    certlc.issued.<ns>.<tcp>                   issuer -> rollout      SecretsWritten
    certlc.audit.<ns>.<tcp>.<event>            everyone -> tooling    audit events (public)
    certlc.audit.*.*.rotation-failed           issuer -> rollout      RotationFailed, as Events
    certlc.api.v1.rotate                       tooling -> lifecycle   RotateRequest (request/reply)
    certlc.api.v1.schedule                     tooling -> lifecycle   ScheduleRequest (req/reply)
    certlc.members.<service>                   replica -> replicas    heartbeat (core NATS)

The events stream keeps only the newest message per subject, so it is at once the change feed
and a compacted snapshot of what the watcher last saw: a service that restarts rebuilds its
state by reading the last message of every subject.
"""

from __future__ import annotations

from typing import Final

from libs.contracts.names import decode_token, encode_token

PREFIX: Final = "certlc"

# Streams.
EVENTS_STREAM: Final = "CERTLC_EVENTS"
ROTATE_STREAM: Final = "CERTLC_ROTATE"
ISSUED_STREAM: Final = "CERTLC_ISSUED"
AUDIT_STREAM: Final = "CERTLC_AUDIT"

EVENTS_SUBJECTS: Final = f"{PREFIX}.events.>"
ROTATE_SUBJECTS: Final = f"{PREFIX}.rotate.>"
ISSUED_SUBJECTS: Final = f"{PREFIX}.issued.>"
AUDIT_SUBJECTS: Final = f"{PREFIX}.audit.>"

# Durable pull consumers (one per consuming service; replicas share it).
LIFECYCLE_DURABLE: Final = "lifecycle"
ISSUER_DURABLE: Final = "issuer"
ROLLOUT_DURABLE: Final = "rollout"
# Rollout's second durable, on the audit stream: failures it records as Kubernetes Events.
ROLLOUT_FAILURES_DURABLE: Final = "rollout-failures"

# Request/reply (public API) and its queue group.
API_ROTATE: Final = f"{PREFIX}.api.v1.rotate"
API_SCHEDULE: Final = f"{PREFIX}.api.v1.schedule"
API_QUEUE_GROUP: Final = "certlc-lifecycle"
# The rotate responder as a NATS service (services API, ADR-32): `$SRV.PING.certlc` finds every
# lifecycle instance; its endpoint is named `rotate`.
API_SERVICE: Final = "certlc"
API_ENDPOINT: Final = "rotate"
API_SCHEDULE_ENDPOINT: Final = "schedule"

WATCHER_SYNCED: Final = f"{PREFIX}.events.watcher.synced"


def members(service: str) -> str:
    """Where the replicas of `service` hear each other (libs/bus/members.py); no stream."""
    return f"{PREFIX}.members.{service}"


def secret_event(namespace: str, tcp: str, secret: str) -> str:
    ns, name = encode_token(namespace), encode_token(tcp)
    return f"{PREFIX}.events.secret.{ns}.{name}.{encode_token(secret)}"


def tcp_event(namespace: str, tcp: str) -> str:
    return f"{PREFIX}.events.tcp.{encode_token(namespace)}.{encode_token(tcp)}"


def datastore_event(name: str) -> str:
    return f"{PREFIX}.events.datastore.{encode_token(name)}"


def rotate(namespace: str, tcp: str) -> str:
    return f"{PREFIX}.rotate.{encode_token(namespace)}.{encode_token(tcp)}"


def issued(namespace: str, tcp: str) -> str:
    return f"{PREFIX}.issued.{encode_token(namespace)}.{encode_token(tcp)}"


def audit(namespace: str, tcp: str, event: str) -> str:
    return f"{PREFIX}.audit.{encode_token(namespace)}.{encode_token(tcp)}.{event}"


def audit_filter(namespace: str | None = None, tcp: str | None = None) -> str:
    """A subscription filter over the audit stream, for one namespace or one TCP."""
    if namespace is None:
        return AUDIT_SUBJECTS
    if tcp is None:
        return f"{PREFIX}.audit.{encode_token(namespace)}.>"
    return f"{PREFIX}.audit.{encode_token(namespace)}.{encode_token(tcp)}.>"


def audit_events(event: str) -> str:
    """A filter over the audit stream: one audit event type (its subject token), every TCP."""
    return f"{PREFIX}.audit.*.*.{event}"


def tcp_of(subject: str) -> tuple[str, str] | None:
    """(namespace, tcp) named by a per-TCP subject, None for any other subject.

    Used as the ordering key: messages about one TCP are handled in order.
    """
    parts = subject.split(".")
    if len(parts) < 4 or parts[0] != PREFIX:
        return None
    if parts[1] in ("rotate", "issued", "audit") or (
        parts[1] == "events" and parts[2] in ("secret", "tcp")
    ):
        offset = 3 if parts[1] == "events" else 2
        if len(parts) < offset + 2:
            return None
        return decode_token(parts[offset]), decode_token(parts[offset + 1])
    return None

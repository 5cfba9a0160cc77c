"""What deploy/ must grant, derived from the code's own constants, never copied from deploy/.

NATS: subjects and stream/consumer names come from libs.contracts.subjects and
libs.runtime.topology. RBAC: the verbs the brief allows each service (and test_rbac checks
that they cover every Kubernetes call the service's code makes).
"""

from __future__ import annotations

from dataclasses import dataclass

from libs.bus import discovery_subjects
from libs.bus.specs import ConsumerSpec
from libs.contracts import subjects
from libs.runtime import topology

INBOX = "_INBOX.>"  # nats-py's default inbox prefix: JetStream API replies, pulled messages


def topology_admin(service: str) -> frozenset[str]:
    """What a service ensures at start (topology.for_service), and only that: read, create and
    update its streams, read and create its own durable consumers; never delete."""
    streams, consumers = topology.for_service(service)
    allowed = {
        f"$JS.API.STREAM.{op}.{stream.name}"
        for stream in streams
        for op in ("INFO", "CREATE", "UPDATE")
    }
    for consumer in consumers:
        allowed.add(f"$JS.API.CONSUMER.INFO.{consumer.stream}.{consumer.durable}")
        allowed.add(create_subject(consumer))
    return frozenset(allowed)


def create_subject(consumer: ConsumerSpec) -> str:
    """nats-py's consumer create subject on nats-server >= 2.9 (named consumer)."""
    subject = f"$JS.API.CONSUMER.CREATE.{consumer.stream}.{consumer.durable}"
    return f"{subject}.{consumer.filter_subject}" if consumer.filter_subject else subject


def pull(consumer: ConsumerSpec) -> frozenset[str]:
    """Fetch from and acknowledge on one durable pull consumer."""
    return frozenset(
        {
            f"$JS.API.CONSUMER.MSG.NEXT.{consumer.stream}.{consumer.durable}",
            f"$JS.ACK.{consumer.stream}.{consumer.durable}.>",
        }
    )


def ordered_follow(stream: str) -> frozenset[str]:
    """An ordered consumer (libs.bus.replay, libs.bus.read): an ephemeral push consumer with flow
    control, created without a name (the server names it; no durable can be created there)."""
    return frozenset({f"$JS.API.CONSUMER.CREATE.{stream}", f"$JS.FC.{stream}.>"})


def ordered_read(stream: str) -> frozenset[str]:
    """libs.bus.read as `certlc audit` uses it: the stream's last sequence and the reader's
    backlog (STREAM.INFO, CONSUMER.INFO of its server-named consumer: `*`, read-only), no
    delete (the server removes the consumer after its inactive threshold), no fetch, no ack."""
    return ordered_follow(stream) | {
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
    }


def bucket(stream: str, keys: str) -> frozenset[str]:
    """A KeyValue bucket (nats-py): create it if missing (its stream), read a key
    (STREAM.MSG.GET: the bucket has no direct get), write a key by compare-and-set (a publish
    on the key's subject)."""
    return frozenset(
        {
            keys,
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.STREAM.CREATE.{stream}",
            f"$JS.API.STREAM.MSG.GET.{stream}",
        }
    )


def records(*, follow: bool = False) -> frozenset[str]:
    """The rotation records; `follow`: an ordered consumer on them."""
    stream = topology.RECORDS_STREAM
    allowed = bucket(stream, topology.RECORDS_SUBJECTS)
    return allowed | (ordered_follow(stream) if follow else frozenset())


def slots_read() -> frozenset[str]:
    """The rollout budget's document, read only (`certlc status`)."""
    stream = topology.SLOTS_STREAM
    return frozenset({f"$JS.API.STREAM.INFO.{stream}", f"$JS.API.STREAM.MSG.GET.{stream}"})


@dataclass(frozen=True)
class NatsPermissions:
    publish: frozenset[str]
    subscribe: frozenset[str]
    allow_responses: bool = False


AUDIT = subjects.AUDIT_STREAM
NATS_USERS: dict[str, NatsPermissions] = {
    "certlc-watcher": NatsPermissions(
        publish=frozenset({subjects.EVENTS_SUBJECTS}) | topology_admin("watcher"),
        subscribe=frozenset({INBOX}),
    ),
    "certlc-lifecycle": NatsPermissions(
        publish=frozenset(
            {subjects.ROTATE_SUBJECTS, subjects.AUDIT_SUBJECTS, subjects.members("lifecycle")}
        )
        | ordered_follow(subjects.EVENTS_STREAM)
        | records(follow=True)
        | topology_admin("lifecycle"),
        subscribe=frozenset(
            {
                f"{subjects.API_ROTATE} {subjects.API_QUEUE_GROUP}",
                f"{subjects.API_SCHEDULE} {subjects.API_QUEUE_GROUP}",
                subjects.members("lifecycle"),
                INBOX,
            }
        )
        | frozenset(discovery_subjects(subjects.API_SERVICE)),
        allow_responses=True,
    ),
    "certlc-issuer": NatsPermissions(
        publish=frozenset({subjects.ISSUED_SUBJECTS, subjects.AUDIT_SUBJECTS})
        | pull(topology.ISSUER_CONSUMER)
        | records()
        | topology_admin("issuer"),
        subscribe=frozenset({INBOX}),
    ),
    "certlc-rollout": NatsPermissions(
        publish=frozenset({subjects.AUDIT_SUBJECTS})
        | pull(topology.ROLLOUT_CONSUMER)
        | pull(topology.ROLLOUT_FAILURES_CONSUMER)
        | records()
        | bucket(topology.SLOTS_STREAM, topology.SLOTS_SUBJECTS)
        | topology_admin("rollout"),
        subscribe=frozenset({INBOX}),
    ),
    # Tooling: the rotate and schedule APIs, and the audit trail live or through its own
    # ordered consumers, the rotation records read the same way (`certlc status`); nothing that
    # writes a record, names, fetches from, acknowledges on or deletes a durable consumer.
    "certlc-external": NatsPermissions(
        publish=frozenset({subjects.API_ROTATE, subjects.API_SCHEDULE})
        | frozenset(discovery_subjects(subjects.API_SERVICE))
        | ordered_read(AUDIT)
        | ordered_read(topology.RECORDS_STREAM)
        | slots_read(),
        subscribe=frozenset({subjects.AUDIT_SUBJECTS, INBOX}),
    ),
}

# The NATS user and the key of Secret certlc-nats-credentials of each certlc service.
SERVICE_USERS = {
    "watcher": "certlc-watcher",
    "lifecycle": "certlc-lifecycle",
    "issuer": "certlc-issuer",
    "rollout": "certlc-rollout",
}
CREDENTIALS_SECRET = "certlc-nats-credentials"
# The NATS server's Secret: bcrypt hashes of those passwords, same keys.
SERVER_AUTH_SECRET = "certlc-nats-server-auth"

# RBAC: (apiGroup, resource) -> verbs, per service. The lifecycle has no Kubernetes access.
KAMAJI = "kamaji.clastix.io"
RBAC: dict[str, dict[tuple[str, str], frozenset[str]]] = {
    "watcher": {
        ("", "secrets"): frozenset({"get", "list", "watch"}),
        (KAMAJI, "tenantcontrolplanes"): frozenset({"get", "list", "watch"}),
        (KAMAJI, "datastores"): frozenset({"get", "list", "watch"}),
    },
    "issuer": {
        (KAMAJI, "tenantcontrolplanes"): frozenset({"get"}),
        (KAMAJI, "datastores"): frozenset({"get"}),
        ("", "secrets"): frozenset({"get", "create", "update", "delete"}),
    },
    "rollout": {
        ("apps", "deployments"): frozenset({"get", "patch"}),
        ("", "secrets"): frozenset({"get"}),
        (KAMAJI, "tenantcontrolplanes"): frozenset({"get"}),
        (KAMAJI, "tenantcontrolplanes/status"): frozenset({"patch", "update"}),
        ("", "events"): frozenset({"create", "patch"}),
    },
    "lifecycle": {},
}

# The permission each libs.kube.client.KubeClient method needs; informer resources by name.
KUBE_METHODS: dict[str, tuple[str, str, str]] = {
    "list_secrets": ("", "secrets", "list"),
    "get_secret": ("", "secrets", "get"),
    "create_secret": ("", "secrets", "create"),
    "replace_secret": ("", "secrets", "update"),
    "delete_secret": ("", "secrets", "delete"),
    "list_tcps": (KAMAJI, "tenantcontrolplanes", "list"),
    "get_tcp": (KAMAJI, "tenantcontrolplanes", "get"),
    "patch_tcp_status": (KAMAJI, "tenantcontrolplanes/status", "patch"),
    "list_datastores": (KAMAJI, "datastores", "list"),
    "get_datastore": (KAMAJI, "datastores", "get"),
    "get_deployment": ("apps", "deployments", "get"),
    "patch_deployment": ("apps", "deployments", "patch"),
    "create_event": ("", "events", "create"),
}
INFORMER_RESOURCES = {
    "secrets": ("", "secrets"),
    "tcps": (KAMAJI, "tenantcontrolplanes"),
    "datastores": (KAMAJI, "datastores"),
}

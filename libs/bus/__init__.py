"""The messaging layer: the only package that imports `nats` and `nkeys` (import-linter).

Authentication (`auth`: a `.creds` file, an nkey seed, or a user with a password file; checked
there, applied by `connect`). Admin (`topology`: streams, consumers) is apart from data
(`publish`, `consume`, `service`, `kv`), and both take a `Bus` from `connect`. The value types
and errors that handlers and their unit tests need (`errors`, `specs`, `delivery`, `backoff`)
live in modules that do not import `nats` themselves: code that must stay statically nats-free
(import-linter) imports those modules directly, e.g. `from libs.bus.errors import TemporaryError`.
"""

from __future__ import annotations

from libs.bus.auth import NatsAuth, NatsAuthError, resolve_auth
from libs.bus.backoff import Backoff
from libs.bus.connect import Bus, connect
from libs.bus.consume import Handler, run_consumer
from libs.bus.delivery import Delivery, OrderingKey, Request, by_subject, by_tokens
from libs.bus.errors import (
    BusAuthError,
    BusConnectError,
    BusError,
    HandlerError,
    KeyConflictError,
    PermanentError,
    PublishError,
    ServiceError,
    TemporaryError,
    TopologyError,
)
from libs.bus.kv import KvBucket, KvEntry, LazyBucket, ensure_bucket, open_bucket
from libs.bus.publish import PublishAck, publish, publish_until_acked
from libs.bus.service import Discovery, RequestHandler, discovery_subjects, serve
from libs.bus.specs import (
    BucketSpec,
    ConsumerSpec,
    DeliverPolicy,
    Discard,
    Retention,
    Storage,
    StreamSpec,
)
from libs.bus.topology import Outcome, TopologyReport, ensure_topology

__all__ = [
    # connection
    "Bus",
    "connect",
    "Backoff",
    "NatsAuth",
    "NatsAuthError",
    "resolve_auth",
    # topology
    "StreamSpec",
    "ConsumerSpec",
    "BucketSpec",
    "Retention",
    "Storage",
    "Discard",
    "DeliverPolicy",
    "ensure_topology",
    "TopologyReport",
    "Outcome",
    # publish / consume
    "publish",
    "publish_until_acked",
    "PublishAck",
    "run_consumer",
    "Handler",
    "Delivery",
    "OrderingKey",
    "by_subject",
    "by_tokens",
    # request/reply
    "serve",
    "Discovery",
    "discovery_subjects",
    "Request",
    "RequestHandler",
    # key/value
    "LazyBucket",
    "ensure_bucket",
    "KvBucket",
    "KvEntry",
    "open_bucket",
    # errors
    "HandlerError",
    "TemporaryError",
    "PermanentError",
    "ServiceError",
    "BusError",
    "BusConnectError",
    "BusAuthError",
    "TopologyError",
    "PublishError",
    "KeyConflictError",
]

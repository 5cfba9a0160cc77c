"""The Prometheus metrics of certlc, declared once (names in the style of cert-manager).

Each service exports the ones it updates on `/metrics`:

    certlc_certificate_expiration_timestamp_seconds{namespace,tcp,secret,kind}   lifecycle
    certlc_certificate_not_before_timestamp_seconds{...}                          lifecycle
    certlc_certificate_renewal_timestamp_seconds{...}   when certlc will renew it (for a CA:
                                                        when the expiry warning starts)
    certlc_rotations_requested_total{reason}            lifecycle
    certlc_loop_guard_trips_total{kind}                 lifecycle
    certlc_partitions_owned{service}                    lifecycle (this replica's share)
    certlc_members{service}                             lifecycle (live replicas it hears)
    certlc_evaluations_total{service}                   lifecycle (TCPs decided by this replica)
    certlc_rotations_total{reason,result}               issuer (result: success, failed, retried)
    certlc_secrets_written_total{kind,action}           issuer
    certlc_issuer_reserved_keys{algorithm}              issuer (keys generated ahead, held)
    certlc_issuer_keys_taken_total{source}              issuer (reserve, or on-demand)
    certlc_rollouts_total{result}                       rollout (completed, failed, unchanged)
    certlc_rollout_duration_seconds                     rollout (histogram)
    certlc_consumer_pending_messages{consumer}          issuer, rollout (lag of their consumer)
    certlc_rollout_started_timestamp_seconds{namespace,tcp}  rollout (a rollout being waited on)
    certlc_rollout_timeout_seconds                      rollout (CERTLC_ROLLOUT_TIMEOUT)
    certlc_rollout_budget_slots{scope}                  rollout (CERTLC_ROLLOUT_BUDGET, scope
                                                        fleet; _PER_NAMESPACE, scope namespace)
    certlc_rollout_slots_in_use                         rollout (TCPs rolling out, as last seen)
    certlc_rollout_queue_length                         rollout (TCPs waiting for a slot)
    certlc_rollout_queue_earliest_deadline_timestamp_seconds  rollout (the first waiter's
                                                        deadline; 0 when nobody waits)
    certlc_ready                                        every service (1: /readyz answers 200)

deploy/components/monitoring holds the alerts and the dashboard built on them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_CERT_LABELS = ("namespace", "tcp", "secret", "kind")

CERT_EXPIRATION = Gauge(
    "certlc_certificate_expiration_timestamp_seconds",
    "NotAfter of the certificate in a managed Secret (Unix time)",
    _CERT_LABELS,
)
CERT_NOT_BEFORE = Gauge(
    "certlc_certificate_not_before_timestamp_seconds",
    "NotBefore of the certificate in a managed Secret (Unix time)",
    _CERT_LABELS,
)
CERT_RENEWAL = Gauge(
    "certlc_certificate_renewal_timestamp_seconds",
    "When certlc renews the certificate (for a CA: when its expiry warning starts), Unix time",
    _CERT_LABELS,
)
DATASTORE_CLIENT_EXPIRATION = Gauge(
    "certlc_datastore_client_certificate_expiration_timestamp_seconds",
    "NotAfter of the client certificate a MySQL, PostgreSQL or NATS DataStore references, which "
    "certlc copies to its TCPs but cannot renew (Unix time)",
    ("datastore",),
)
ROTATIONS_REQUESTED = Counter(
    "certlc_rotations_requested_total", "Rotate commands published, by reason", ("reason",)
)
LOOP_GUARD_TRIPS = Counter(
    "certlc_loop_guard_trips_total", "Re-issues refused by the loop guard", ("kind",)
)
ROTATIONS = Counter(
    "certlc_rotations_total", "Rotate commands handled by the issuer", ("reason", "result")
)
SECRETS_WRITTEN = Counter(
    "certlc_secrets_written_total", "Secrets written by the issuer", ("kind", "action")
)
ROLLOUTS = Counter("certlc_rollouts_total", "Control-plane rollouts, by result", ("result",))
ROLLOUT_DURATION = Histogram(
    "certlc_rollout_duration_seconds",
    "From the Deployment patch to every replica updated and available",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
CONSUMER_PENDING = Gauge(
    "certlc_consumer_pending_messages", "Messages not yet delivered to the consumer", ("consumer",)
)
ROLLOUT_STARTED = Gauge(
    "certlc_rollout_started_timestamp_seconds",
    "When the rollout being waited on was started (Unix time); gone once it ends",
    ("namespace", "tcp"),
)
ROLLOUT_TIMEOUT = Gauge(
    "certlc_rollout_timeout_seconds", "How long a rollout may take (CERTLC_ROLLOUT_TIMEOUT)"
)
ROLLOUT_BUDGET = Gauge(
    "certlc_rollout_budget_slots",
    "TCPs that may roll out at once (CERTLC_ROLLOUT_BUDGET, _PER_NAMESPACE); 0: no limit",
    ("scope",),
)
ROLLOUT_SLOTS_IN_USE = Gauge(
    "certlc_rollout_slots_in_use", "TCPs rolling out under the budget, as this replica last saw"
)
ROLLOUT_QUEUE = Gauge(
    "certlc_rollout_queue_length", "TCPs waiting for a rollout slot, as this replica last saw"
)
ROLLOUT_QUEUE_DEADLINE = Gauge(
    "certlc_rollout_queue_earliest_deadline_timestamp_seconds",
    "Deadline (earliest NotAfter) of the first TCP waiting for a rollout slot; 0: none waits",
)
PARTITIONS_OWNED = Gauge(
    "certlc_partitions_owned",
    "Partitions of the fleet this replica works on (CERTLC_PARTITIONS in all)",
    ("service",),
)
MEMBERS = Gauge("certlc_members", "Live replicas of the service, as this one hears", ("service",))
EVALUATIONS = Counter(
    "certlc_evaluations_total", "TCPs decided by this replica (its share of the work)", ("service",)
)
READY = Gauge("certlc_ready", "1 when the service is ready (/readyz answers 200), else 0")

RESERVED_KEYS = Gauge(
    "certlc_issuer_reserved_keys",
    "Private keys generated ahead and held in the issuer's memory, ready for issuance",
    ("algorithm",),
)
KEYS_TAKEN = Counter(
    "certlc_issuer_keys_taken_total",
    "New private keys used for issuance, from the reserve or generated on demand",
    ("source",),
)

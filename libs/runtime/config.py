"""Every setting of certlc, one Struct for all services (each reads what it needs), so one
environment can configure the whole system and an unknown `CERTLC_*` variable is an error.

See docs/configuration.md for the reference; defaults are the production ones.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

from libs.bus.auth import NatsAuth, NatsAuthError, resolve_auth
from libs.contracts.budget import Budget
from libs.contracts.partitions import DEFAULT_PARTITIONS
from libs.contracts.windows import WindowError, parse_windows
from libs.pki.errors import PkiError
from libs.pki.keys import parse_key_algorithm
from libs.pki.overrides import FleetProfile
from libs.pki.profiles import LEAF_VALIDITY
from libs.pki.steps import DEFAULT_SA_OVERLAP

MAX_PARTITIONS = 4096  # far more than replicas; each one re-deals them when a replica comes or goes
MAX_KEY_RESERVE = 1024  # keys per algorithm: an RSA-4096 key object is about 4 KB


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # connections
    nats_url: str = "nats://127.0.0.1:4222"
    # NATS authentication, at most one method (libs/bus/auth.py); secrets only in files
    nats_credentials: str = ""  # .creds file (JWT + nkey seed)
    nats_nkey_seed: str = ""  # nkey seed file
    nats_user: str = ""  # with nats_password_file
    nats_password_file: str = ""
    nats_tls_ca: str = ""  # CA file for tls:// servers; empty: the system CAs
    kubeconfig: str = ""  # empty: in-cluster service account
    health_port: int = 8080  # 0: any free port; -1: no health endpoint
    log_level: str = "info"
    stream_replicas: int = 1
    # replicas of a service share the fleet by partition (libs/contracts/partitions.py); the
    # count is fixed for a fleet, the lease is how long a silent replica keeps its share
    partitions: int = DEFAULT_PARTITIONS
    member_lease: timedelta = timedelta(seconds=5)
    # watcher
    watch_label_selector: str = "kamaji.clastix.io/project=kamaji"
    watch_timeout: timedelta = timedelta(minutes=5)
    resync: timedelta = timedelta(hours=10)  # publish every object's facts again; 0: never
    datastore_poll: timedelta = timedelta(seconds=30)  # re-read the DataStores' CAs; 0: never
    # lifecycle
    renew_deadline: timedelta = timedelta(hours=24)
    renew_jitter: float = 0.25  # renewals spread over this share of the deadline, earlier
    ca_warning: timedelta = timedelta(days=365)
    sa_overlap: timedelta = DEFAULT_SA_OVERLAP  # both SA public keys trusted this long after swap
    # when due renewals may happen (libs/contracts/windows.py); empty: whenever due
    maintenance_window: str = ""
    window_margin: timedelta = timedelta(hours=2)  # no window fits: renew at NotAfter - this
    loop_window: timedelta = timedelta(minutes=10)
    loop_limit: int = 3
    settle: timedelta = timedelta(milliseconds=300)
    reevaluate: timedelta = timedelta(minutes=3)  # every TCP decided again; 0: never
    resend_after: timedelta = timedelta(seconds=30)  # a command nobody took up is sent again
    # issuer
    key_algorithm: str = "RSA-2048"  # kubeadm's encryptionAlgorithm values; rsa, ecdsa too
    leaf_validity: timedelta = timedelta(0)  # 0: the profile's (one year)
    retry_initial: timedelta = timedelta(seconds=5)  # first retry of a failed issuance
    retry_max: timedelta = timedelta(hours=1)  # the doubling stops here
    key_reserve: int = 32  # keys generated ahead and held in memory, per algorithm; 0: none
    # rollout
    rollout_settle: timedelta = timedelta(seconds=1)
    rollout_timeout: timedelta = timedelta(minutes=10)
    rollout_recheck: timedelta = timedelta(seconds=1)  # first re-check of a rollout; doubles
    rollout_recheck_max: timedelta = timedelta(seconds=10)
    rollout_budget: int = 0  # TCPs rolling out at once across the fleet; 0: no limit
    rollout_budget_per_namespace: int = 0  # ... and in one namespace; 0: no limit
    rollout_budget_lease: timedelta = timedelta(seconds=30)  # a slot nobody renews comes back
    # concurrency
    max_concurrency: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.renew_jitter <= 1:
            raise ValueError(f"renew_jitter must be within 0 and 1, got {self.renew_jitter}")
        if not 1 <= self.partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be within 1 and {MAX_PARTITIONS}")
        if self.member_lease < timedelta(seconds=1):
            raise ValueError("member_lease must be at least 1s (heartbeats go every quarter)")
        if not 0 <= self.key_reserve <= MAX_KEY_RESERVE:
            raise ValueError(f"key_reserve must be within 0 and {MAX_KEY_RESERVE}")
        if self.rollout_budget < 0 or self.rollout_budget_per_namespace < 0:
            raise ValueError("rollout_budget and rollout_budget_per_namespace are 0 or more")
        if self.rollout_budget_lease < 2 * self.rollout_recheck_max:
            raise ValueError(
                "rollout_budget_lease must be at least twice rollout_recheck_max "
                f"({self.rollout_recheck_max}): a rollout renews its slot at each re-check"
            )
        try:
            parse_windows(self.maintenance_window)
        except WindowError as exc:
            raise ValueError(f"maintenance_window: {exc}") from None
        try:
            parse_key_algorithm(self.key_algorithm)
        except PkiError as exc:
            raise ValueError(f"key_algorithm: {exc}") from None
        try:
            self.nats_auth()
        except NatsAuthError as exc:  # msgspec reports it as a validation error
            raise ValueError(str(exc)) from None

    def fleet_profile(self) -> FleetProfile:
        """The fleet's certificate profile, which a TCP's annotations override."""
        leaf = self.leaf_validity
        return FleetProfile(
            key_algorithm=parse_key_algorithm(self.key_algorithm),
            leaf_validity=leaf if leaf > timedelta(0) else LEAF_VALIDITY,
            renew_before=self.renew_deadline,
            jitter=self.renew_jitter,
            windows=parse_windows(self.maintenance_window),
        )

    def rollout_budget_of(self) -> Budget:
        """The rollout budget these settings give (libs/contracts/budget.py)."""
        return Budget(
            total=self.rollout_budget,
            per_namespace=self.rollout_budget_per_namespace,
            lease=self.rollout_budget_lease,
        )

    def nats_auth(self) -> NatsAuth:
        """The NATS authentication these settings choose (no file read: `check_files`)."""
        return resolve_auth(
            self.nats_url,
            credentials=self.nats_credentials,
            nkey_seed=self.nats_nkey_seed,
            user=self.nats_user,
            password_file=self.nats_password_file,
            tls_ca=self.nats_tls_ca,
        )

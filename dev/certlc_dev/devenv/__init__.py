"""Local development environment: real processes (nats-server) for tests and the demo.

Nothing here is used in production; it exists so tests and `certlc` demo commands run against
the real NATS server instead of mocks.
"""

from certlc_dev.devenv.nats_cluster import NatsCluster, free_tcp_ports
from certlc_dev.devenv.nats_server import (
    NATS_SERVER_BIN_ENV,
    NatsServer,
    NatsServerError,
    NatsServerNotFoundError,
    find_nats_server_binary,
)

__all__ = [
    "NATS_SERVER_BIN_ENV",
    "NatsCluster",
    "NatsServer",
    "NatsServerError",
    "NatsServerNotFoundError",
    "find_nats_server_binary",
    "free_tcp_ports",
]

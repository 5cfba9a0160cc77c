"""certlc's Kubernetes API stand-in: a real HTTP(S) server for the official clients and kubectl.

Start one with `KubeSim(...).start()` (or as a context manager), point clients at
`write_kubeconfig(path)`, and stop it with `stop()`. See docs/kube-stand-in.md.
"""

from certlc_dev.kubesim.auth import Attributes, Identity
from certlc_dev.kubesim.errors import ApiError
from certlc_dev.kubesim.faults import FaultRule, Faults
from certlc_dev.kubesim.server import KubeSim

__all__ = ["KubeSim", "Faults", "FaultRule", "ApiError", "Identity", "Attributes"]

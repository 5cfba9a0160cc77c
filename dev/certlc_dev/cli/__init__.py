"""The `certlc-dev` command: the demo and the Kubernetes API stand-in."""

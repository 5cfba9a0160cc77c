"""Conformance tests of the Kubernetes API stand-in (certlc_dev.kubesim)."""

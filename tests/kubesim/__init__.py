"""Conformance tests of the Kubernetes API stand-in (libs.kubesim)."""

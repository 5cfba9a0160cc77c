"""Typed access to the Kubernetes API: the only package that imports the `kubernetes` client.

Objects cross this boundary as plain JSON dicts (decoded with msgspec, much faster than the
client's model classes for thousands of Secrets); failures cross it as the typed errors of
`libs.kube.errors`, which import nothing from the client.
"""

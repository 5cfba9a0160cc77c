"""certlc's development kit: the Kubernetes API stand-in and the local environment.

Not part of the product: the image never contains it, and `libs` and `services` never import it
(an import-linter contract). Tests, benchmarks and the `certlc-dev` command use it.
"""

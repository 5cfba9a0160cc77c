"""Benchmarks that print figures (never timed tests): `python -m benchmarks.pipeline_bench` for
certlc's speed and memory targets (see docs/benchmarks.md), `python -m benchmarks.kubesim_bench`
for the Kubernetes API stand-in."""

# Shortcuts; each target does its own set-up (scripts/bootstrap.sh).
.PHONY: demo test bench

demo:
	./scripts/demo

test:
	./scripts/test

bench:
	bash scripts/bootstrap.sh && .venv/bin/python -m benchmarks.pipeline_bench

# The Kubernetes controller at scale (issue 15): for each count in SCALE_ROLLOUTS, a fresh control
# plane (`make tools`' binaries), one `rollouts controller`, N copies of the seed's Rollout (1 replica)
# to all Healthy, an update of all to all Paused, then SCALE_IDLE seconds of idle CPU. Writes the
# table into docs/benchmarks.md (between the scale markers) and appends docs/bench/scale.jsonl.
# Argo's controller is not in the run yet (docs/benchmarks.md says what is missing).
.PHONY: bench-scale
SCALE_ROLLOUTS ?= 100,300
SCALE_IDLE ?= 30

bench-scale: install tools
	$(BIN)/python bench/scale_bench.py --rollouts $(SCALE_ROLLOUTS) --idle $(SCALE_IDLE) \
	  --json docs/bench/scale.jsonl --docs docs/benchmarks.md

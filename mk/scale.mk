# The Kubernetes controller at scale (issue 15): for each count in SCALE_ROLLOUTS, a fresh control
# plane (`make tools`' binaries), then Argo Rollouts' own controller (built by `make tools`) and ours,
# one after the other, each alone in a namespace of its own: N copies of the seed's Rollout (1 replica)
# to all Healthy, an update of all to all Paused, then SCALE_IDLE seconds of idle CPU. Appends the rows
# to docs/bench/scale.jsonl (tagged SCALE_SERIES), writes that series' table and ratios into
# docs/benchmarks.md (between the scale markers) and its plots into docs/img/scale-*.png.
.PHONY: bench-scale
SCALE_ROLLOUTS ?= 100,300,1000
SCALE_IDLE ?= 60
SCALE_SERIES ?= same-run-$(shell date -u +%Y-%m-%d)

bench-scale: install tools
	nice $(BIN)/python bench/scale_bench.py --rollouts $(SCALE_ROLLOUTS) --idle $(SCALE_IDLE) \
	  --json docs/bench/scale.jsonl --series $(SCALE_SERIES) --docs docs/benchmarks.md --plots docs/img

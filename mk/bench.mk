# Benchmarks: ratios against baselines measured in the same run (docs/benchmarks.md).
.PHONY: bench soak

bench: install
	@test -x /usr/sbin/nginx || { echo "bench: installing nginx-light for the baseline"; \
	  (apt-get update -qq && apt-get install -y -qq nginx-light) >/dev/null; }
	$(BIN)/python bench/proxy_bench.py --seconds 5 --connections 32

# Long runs that do not belong in `make test`: the tests marked soak (large counts), then the proxy
# switch and kill-point tests under load, many times.
soak: install
	$(BIN)/pytest -q -s -p no:cacheprovider -m soak $(PYTEST_ARGS)
	@for i in $$(seq $${SOAK_RUNS:-5}); do echo "soak run $$i"; \
	  $(BIN)/pytest -q -p no:cacheprovider tests/local/test_proxy.py tests/local/test_e2e_traffic.py \
	    tests/local/test_e2e_killpoints.py || exit 1; done

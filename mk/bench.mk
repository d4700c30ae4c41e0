# Benchmarks: ratios against baselines measured in the same run (docs/benchmarks.md).
.PHONY: bench soak

# The proxy against nginx and HAProxy (installed with apt-get when missing; Debian starts HAProxy's
# service on install, which is stopped: the bench runs its own), at 1, 32 and 256 connections, and
# 100 switches; writes docs/benchmarks.md's generated section, docs/bench/latest.json, docs/img/bench-*.png.
bench: install
	@test -x /usr/sbin/nginx -a -x /usr/sbin/haproxy || { echo "bench: installing nginx-light and haproxy for the baselines"; \
	  (apt-get update -qq && apt-get install -y -qq nginx-light haproxy) >/dev/null; \
	  (service haproxy stop || true) >/dev/null 2>&1; }
	$(BIN)/python bench/proxy_bench.py --seconds 5 --connections 1,32,256 --switches 100 --out docs
	$(BIN)/python bench/switch_bench.py --switches 100

# Long runs that do not belong in `make test`: the tests marked soak (large counts), then the proxy
# switch and kill-point tests under load, many times.
soak: install
	$(BIN)/pytest -q -s -p no:cacheprovider -m soak $(PYTEST_ARGS)
	@for i in $$(seq $${SOAK_RUNS:-5}); do echo "soak run $$i"; \
	  $(BIN)/pytest -q -p no:cacheprovider tests/local/test_proxy.py tests/local/test_e2e_traffic.py \
	    tests/local/test_e2e_killpoints.py || exit 1; done

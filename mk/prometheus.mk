# The Prometheus server for the prometheus metric provider's tests
# (tests/local/test_prometheus_provider.py): Debian's prometheus package from apt-get, started by the
# tests on 127.0.0.1 with their own config and data dir (the package's service is not used). A no-op
# once it is there.
PROMETHEUS ?= /usr/bin/prometheus
.PHONY: prometheus

prometheus:
	@if [ ! -x $(PROMETHEUS) ]; then \
	  echo "installing prometheus with apt-get (for the prometheus metric provider's tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends prometheus; \
	fi

# Both test targets run the provider tests, so both need the server first.
test test-fast: prometheus

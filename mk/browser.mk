# The browser for the dashboard's tests (tests/web/test_browser.py): Debian's chromium from apt-get,
# driven by the playwright PyPI package (never `playwright install`). A no-op once it is there.
CHROMIUM ?= /usr/bin/chromium
.PHONY: browser

browser:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing chromium with apt-get (for the dashboard's browser tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y chromium; \
	fi

# Both test targets run the browser tests, so both need the browser first.
test test-fast: browser

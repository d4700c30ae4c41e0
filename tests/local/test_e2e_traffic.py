"""End to end: steady traffic through the production port of a real server across a promote and an
abort fails no request (issue 3, "Traffic").

The client is its own process (proxy_loadclient.py): two threads, one opening a new connection per
request and one keeping a connection alive, GET / about every 10 ms each, never retrying, for at
most 150 s. Every non-200 answer or connection error counts as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import (
    LoadClient,
    Servers,
    seed_docs,
    servers_fixture,
    summary,
    with_env,
)

from pyrollouts.testing.serverharness import free_port, http_body

NS = "e2e-traffic"


@pytest.fixture
def servers() -> Iterator[Servers]:
    yield from servers_fixture()


def test_no_request_fails_across_promote_and_abort(servers: Servers) -> None:
    srv = servers.start()
    prod, preview = free_port(), free_port()
    docs = seed_docs(NS, prod, preview, replicas=2, welcome="V2")
    manifest = servers.state_dir.parent / "traffic.yaml"
    assert srv.apply(docs, manifest).code == 0
    srv.wait_for("revision 1 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=60)
    assert http_body(prod) == "V2"

    load = LoadClient(prod, servers.state_dir.parent, max_seconds=150, interval=0.01)
    try:
        srv.wait_for("the client running", lambda: load.proc.poll() is None and http_body(prod) == "V2")

        # Promote: V3 comes up on preview, then takes production; V2 is scaled down after the
        # scale-down delay (30 s, passed on the test clock) while the client keeps going.
        assert srv.apply(with_env(docs, WELCOME="V3"), manifest).code == 0
        srv.wait_for("V3 paused on preview", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
        srv.wait_for("V3 answering on preview", lambda: http_body(preview) == "V3", timeout=10)
        assert http_body(prod) == "V2"
        r = srv.cli("promote", "super-hello", "-n", NS)
        assert r.code == 0, r
        srv.wait_for("V3 in production", lambda: http_body(prod) == "V3", timeout=30)
        srv.wait_for("revision 2 healthy", lambda: srv.info(NS)["status"] == "Healthy", timeout=30)
        srv.advance(40)
        srv.wait_for(
            "revision 1 scaled down",
            lambda: summary(srv.info(NS))["revisions"][1]["pods"] == 0,
            timeout=40,
        )

        # Abort: V4 comes up on preview and is aborted; production never leaves V3, and V4's
        # replicas go after the abort's scale-down delay (preview keeps V4's selector, as Argo).
        assert srv.apply(with_env(docs, WELCOME="V4"), manifest).code == 0
        srv.wait_for("V4 paused on preview", lambda: srv.info(NS)["status"] == "Paused", timeout=60)
        srv.wait_for("V4 answering on preview", lambda: http_body(preview) == "V4", timeout=10)
        assert http_body(prod) == "V3"
        r = srv.cli("abort", "super-hello", "-n", NS)
        assert r.code == 0, r
        srv.wait_for("aborted", lambda: srv.info(NS)["status"] == "Degraded", timeout=30)
        srv.advance(40)
        srv.wait_for(
            "revision 3 scaled down",
            lambda: summary(srv.info(NS))["revisions"][3]["pods"] == 0,
            timeout=40,
        )
        assert http_body(prod) == "V3"
        assert load.proc.poll() is None, "the client must send until the end of the run"
    except BaseException:
        load.kill()
        raise
    result = load.stop()

    assert result["failed"] == 0, result
    assert result["total"] >= 200, result  # a steady stream, not a handful
    seen = result["seen"]
    assert seen.get("V2", 0) > 0 and seen.get("V3", 0) > 0, seen  # both revisions answered
    assert set(seen) == {"V2", "V3"}, seen  # the aborted V4 never reached production
    end = summary(srv.info(NS))
    assert (end["phase"], end["active"], end["stable"]) == ("Degraded", 2, 2), end

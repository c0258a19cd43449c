"""The transport every connection shares: TCP keepalive on every socket headroom
holds (clients, data nodes, the main server, the pollers), and control connections
bounded by the configured timeouts rather than fixed internal constants."""
import re
import subprocess
import time

import pytest
import redis

from cluster import Cluster


@pytest.fixture
def own():
    made = []

    def make(**kw):
        c = Cluster(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def sockets_of(pid):
    """Established TCP sockets of process `pid`, as `ss -tnpo` prints them."""
    out = subprocess.run(["ss", "-tnpoH", "state", "established"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"pid={pid}," in line]


def test_every_connection_has_tcp_keepalive(own):
    c = own(settings={"timeouts": "{connect_ms: 1000, request_ms: 5000, tcp_keepalive_s: 30}"})
    c.proxy.wait_nodes_up()
    client = c.proxy.client()
    client.set("k", "v")  # a client connection, and the data path to one node
    socks = sockets_of(c.proxy.proc.pid)
    # one client, four data nodes, four pollers, two connections to the main server
    assert len(socks) >= 11, socks
    without = [s for s in socks if "timer:(keepalive" not in s]
    assert not without, without
    # the configured idle time: ss shows the time left until the first probe
    left = [int(m.group(1)) for s in socks if (m := re.search(r"timer:\(keepalive,(\d+)sec", s))]
    assert left and max(left) <= 30, socks


def test_placements_are_bounded_by_request_ms(own):
    c = own(settings={"timeouts": "{connect_ms: 1000, request_ms: 200}"})
    c.proxy.wait_nodes_up()
    r = c.proxy.client(socket_timeout=30)
    assert r.set("before", "v") is True
    c.main.pause()
    try:
        start = time.time()
        with pytest.raises(redis.ResponseError, match="main server"):
            r.set("new-key-while-main-hangs", "v")
        waited = time.time() - start
        # request_ms is 200 ms; the fixed 3 s bound headroom used to apply is far above
        assert waited < 2.0, waited
        assert r.get("before") == b"v"
    finally:
        c.main.resume()

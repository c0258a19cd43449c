"""The transport every connection shares: TCP keepalive on every socket headroom
holds (clients, data nodes, the main server, the pollers), and control connections
bounded by the configured timeouts rather than fixed internal constants."""
import re
import subprocess
import time

import pytest
import redis


def sockets_of(pid):
    """Established TCP sockets of process `pid`, as `ss -tnpo` prints them."""
    out = subprocess.run(["ss", "-tnpoH", "state", "established"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if f"pid={pid}," in line]


def test_every_connection_has_tcp_keepalive(own):
    c = own(settings={"timeouts": "{connect_ms: 1000, request_ms: 5000, tcp_keepalive_s: 30}"})
    c.proxy.wait_nodes_up()
    client = c.proxy.client()
    client.set("k", "v")  # a client connection, and the data path to one node
    # ss shows one timer per socket: a socket with bytes in flight at that instant
    # (a heartbeat, a poll) shows its retransmission timer instead, so each socket
    # is sampled until it has shown its keepalive timer once.
    seen, left = {}, []
    deadline = time.time() + 20
    while True:
        socks = sockets_of(c.proxy.proc.pid)
        for s in socks:
            ends = tuple(s.split()[2:4])
            m = re.search(r"timer:\(keepalive,(\d+)sec", s)
            seen[ends] = seen.get(ends, False) or m is not None
            if m:
                left.append(int(m.group(1)))
        # one client, four data nodes, four pollers, two connections to the main server
        if len(socks) >= 11 and all(seen.get(tuple(s.split()[2:4])) for s in socks):
            break
        assert time.time() < deadline, [s for s in socks if not seen.get(tuple(s.split()[2:4]))]
        time.sleep(0.1)
    # the configured idle time: ss shows the time left until the first probe
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

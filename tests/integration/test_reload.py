"""Reloading the config without a restart (proxy/reload.cpp): a node added to two
proxies reloaded one after the other (SIGHUP, HEADROOM RELOAD), the node list every
proxy must share, a bad config and a refused removal leaving the running config."""
import signal

import pytest
import redis

from cluster import Cluster, Headroom, wait_for
from test_moves import nodes_report, wait_settled


def node_line(n):
    return f"  - {{name: {n.name}, address: 127.0.0.1:{n.port}}}"


def rewrite_nodes(proxy, nodes):
    """The proxy's config file with `nodes` as its node list."""
    with open(proxy.config) as f:
        lines = f.read().splitlines()
    start = lines.index("nodes:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("  - "):
        end += 1
    lines[start + 1:end] = [node_line(n) for n in nodes]
    with open(proxy.config, "w") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture
def three_node_proxies():
    """Two proxies whose configs name node1..node3 (node4 runs, unused)."""
    c = Cluster()
    c.proxy.stop()
    c.proxies.clear()
    for name in ("ra", "rb"):
        c.proxies.append(Headroom(c.workdir, c.main, c.nodes[:3], name=name))
    c.proxy = c.proxies[0]
    yield c
    c.close()


def test_a_node_added_by_reload_takes_new_keys_and_is_filled_by_the_rebalancer(three_node_proxies):
    c = three_node_proxies
    a, b = c.proxies
    ra, rb = a.client(), b.client()
    pipe = ra.pipeline(transaction=False)
    for i in range(300):
        pipe.set(f"old{i}", b"v" * 20_000)
    pipe.execute()
    node4 = c.nodes[3]
    assert node4.client.dbsize() == 0
    for p in (a, b):
        rewrite_nodes(p, c.nodes)
    # a first, by SIGHUP: it records the longer list; b, not reloaded yet, places nothing.
    a.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "node4" in nodes_report(ra), 30, "a has node4")
    def b_refuses():
        try:
            rb.set("placed-by-b", "x")
            rb.delete("placed-by-b")
            return False
        except redis.ResponseError as e:
            assert "node list differs" in str(e)
            return True
    wait_for(b_refuses, 30, "b refuses to place while its node list differs")
    assert rb.get("old7") == b"v" * 20_000  # keys it knows keep serving
    # b by HEADROOM RELOAD.
    assert rb.execute_command("HEADROOM", "RELOAD") == b"OK"
    wait_for(lambda: not b_refuses(), 30, "b places again")
    # New keys go to node4 at once (the emptiest), from either proxy.
    for i in range(40):
        (ra if i % 2 else rb).set(f"new{i}", "x")
    assert node4.client.dbsize() > 0
    # The rebalancer fills it with existing keys.
    ra.execute_command("HEADROOM", "REBALANCE")
    wait_for(lambda: sum(node4.client.exists(f"old{i}") for i in range(300)) >= 30, 60, "old keys moved to node4")
    wait_settled(c)
    for i in range(300):
        assert rb.get(f"old{i}") == b"v" * 20_000


def test_a_bad_config_or_a_refused_removal_leaves_the_running_one(three_node_proxies):
    c = three_node_proxies
    a = c.proxies[0]
    r = a.client()
    for i in range(100):
        r.set(f"k{i}", i)
    with open(a.config) as f:
        good = f.read()
    with open(a.config, "w") as f:
        f.write(good + "limits: {max_clients: 0}\n")
    with pytest.raises(redis.ResponseError, match="limits.max_clients"):
        r.execute_command("HEADROOM", "RELOAD")
    a.proc.send_signal(signal.SIGHUP)  # logged, and nothing changes
    assert r.get("k5") == b"5"
    # Removing a node that holds keys: refused, with how many and what to do.
    held = c.nodes[0].client.dbsize()
    assert held > 0
    with open(a.config, "w") as f:
        f.write(good)
    rewrite_nodes(a, c.nodes[1:3])
    with pytest.raises(redis.ResponseError, match=rf"node node1 holds keys \({held} directory entries.*drain it first"):
        r.execute_command("HEADROOM", "RELOAD")
    assert set(nodes_report(r)) >= {"node1", "node2", "node3"}
    assert all(r.get(f"k{i}") == str(i).encode() for i in range(100))
    with open(a.log) as f:
        assert "limits.max_clients" in f.read()

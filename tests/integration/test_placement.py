"""Placement: a new key goes to the node with the most free memory; writes with
skewed value sizes leave the nodes' used memory close to even."""
import random
import time


def used(node):
    return node.client.info("memory")["used_memory"]


def test_new_keys_go_to_the_node_with_most_free_memory(r, clean):
    # Fill three nodes unevenly behind the proxy's back; node3 stays the emptiest.
    fill = {"node1": 6, "node2": 3, "node3": 0, "node4": 9}  # megabytes
    for n in clean.nodes:
        for i in range(fill[n.name]):
            n.client.set(f"ballast:{n.name}:{i}", "b" * (1 << 20))
    time.sleep(0.5)  # > poll_interval_ms: headroom has read the new figures
    for i in range(20):
        r.set(f"new:{i}", "v" * 100)
        assert clean.node_of(f"new:{i}") == ["node3"], i
    # once node3 has taken 3 MB it is level with node2, and both share new keys
    p = r.pipeline(transaction=False)
    for i in range(700):
        p.set(f"bulk:{i}", "w" * 8000)
    p.execute()
    holders = {clean.node_of(f"bulk:{i}")[0] for i in range(700)}
    assert "node3" in holders and "node2" in holders and "node4" not in holders


def test_skewed_value_sizes_spread_memory_evenly(r, clean):
    baseline = {n.name: used(n) for n in clean.nodes}
    rnd = random.Random(42)
    p = r.pipeline(transaction=False)
    total = 0
    for i in range(12000):
        # long tail: most values small, a few large
        size = int(min(65536, 100 * (1 / (1 - rnd.random())) ** 1.2))
        total += size
        p.set(f"skew:{i}", "s" * size)
        if i % 200 == 199:
            p.execute()
            p = r.pipeline(transaction=False)
    p.execute()
    time.sleep(0.3)
    # headroom evens out used memory itself (not growth: nodes started from different baselines)
    final = {n.name: used(n) for n in clean.nodes}
    ratio = max(final.values()) / min(final.values())
    print(f"\nskewed writes: {total / 1e6:.1f} MB of values; baseline {baseline}; used_memory {final}; "
          f"max/min {ratio:.3f}")
    assert ratio < 1.5, final


def test_nodes_of_different_sizes_fill_in_proportion():
    from cluster import Cluster
    c = Cluster(maxmemory=("32mb", "64mb", "64mb", "128mb"))
    try:
        r = c.proxy.client()
        p = r.pipeline(transaction=False)
        for i in range(6000):
            p.set(f"prop:{i}", "p" * 4000)
            if i % 500 == 499:
                p.execute()
                p = r.pipeline(transaction=False)
        p.execute()
        time.sleep(0.3)
        fills = {}
        for n in c.nodes:
            info = n.client.info("memory")
            fills[n.name] = info["used_memory"] / info["maxmemory"]
        print(f"\nfill ratios: {fills}")
        assert max(fills.values()) - min(fills.values()) < 0.1, fills
    finally:
        c.close()

"""Placement: a new key goes to the node with the most free memory; writes with
skewed value sizes leave the nodes' used memory close to even."""
import random
import time

from cluster import wait_for


def used(node):
    return node.client.info("memory")["used_memory"]


def wait_counted(proxy_client, nodes, timeout=30):
    """Waits until the proxy counts each node's memory as the node has it now. Memory
    written behind headroom's back counts once it has lasted Ledger::kTransientMs over
    the polls (a poll's one-off excess may be a large value's query buffer)."""
    deadline = time.time() + timeout
    while True:
        seen = proxy_client.info("nodes")
        if all(float(seen[n.name]["fill"]) * int(seen[n.name]["capacity"]) >= 0.99 * used(n) for n in nodes):
            return
        assert time.time() < deadline, seen
        time.sleep(0.1)


def test_new_keys_go_to_the_node_with_most_free_memory(r, clean):
    # Fill three nodes unevenly behind the proxy's back; node3 stays the emptiest.
    fill = {"node1": 6, "node2": 3, "node3": 0, "node4": 9}  # megabytes
    for n in clean.nodes:
        for i in range(fill[n.name]):
            n.client.set(f"ballast:{n.name}:{i}", "b" * (1 << 20))
    wait_counted(r, clean.nodes)
    for i in range(20):
        r.set(f"new:{i}", "v" * 100)
        assert clean.node_of(f"new:{i}") == ["node3"], i
    # The fixture flushed the main server behind the proxy's back: a proxy that finds
    # that out only now (at these placements' messages) reloads under a new id. The
    # burst below measures placement, not a reload: it waits until that is over.
    wait_for(lambda: r.info("directory").get("directory_current") == 1 and
             clean.main.client.hexists("hr:proxies", str(r.info("directory").get("proxy_id"))), 30,
             "the proxy current and registered")
    wait_counted(r, clean.nodes)
    # Once node3 has taken the gap to node2 it is level with it, and both share new
    # keys. The gaps are the proxy's own figures (a 1 MiB ballast value takes more than
    # 1 MiB on its node): the burst fills the first gap and half of the next.
    seen = r.info("nodes")
    held = {n: float(seen[n]["fill"]) * int(seen[n]["capacity"]) for n in fill}
    gap, next_gap = held["node2"] - held["node3"], held["node1"] - held["node2"]
    assert gap > 0 and next_gap > 0, held
    count = int((gap + next_gap / 2) / 8300)  # a value of 8000 takes 8 KiB and the key's overhead
    p = r.pipeline(transaction=False)
    for i in range(count):
        p.set(f"bulk:{i}", "w" * 8000)
    p.execute()
    holders = {clean.node_of(f"bulk:{i}")[0] for i in range(count)}
    assert holders == {"node2", "node3"}, (holders, held)


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
        assert max(fills.values()) - min(fills.values()) <= 0.02, fills
    finally:
        c.close()


def test_a_new_keys_bytes_are_counted_once_while_its_write_is_in_flight():
    """From placement to the poll that includes it, a new key's bytes count once in
    the node's projected fill: not once as a reservation and again as bytes written."""
    import socket
    import tempfile

    from cluster import Headroom, RedisServer, bucket_of

    workdir = tempfile.mkdtemp(prefix="headroom-it-")
    main = RedisServer(workdir, "main", "0")
    node = RedisServer(workdir, "node1", "100mb")
    p = None
    try:
        # One node, polled once at start: no poll runs during the test.
        p = Headroom(workdir, main, [node], settings={"poll_interval_ms": "60000",
                                                       "timeouts": "{connect_ms: 1000, request_ms: 30000}"})
        p.wait_nodes_up()
        r = p.client(socket_timeout=30)

        def projected():
            n = r.info("nodes")["node1"]
            return float(n["fill"]) * int(n["capacity"]) - int(n["used_memory"])

        assert projected() < 64 * 1024
        size = 10 << 20
        node.pause()
        s = socket.create_connection(("127.0.0.1", p.port))
        s.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (size, b"x" * size))
        deadline = time.time() + 20
        while main.client.hget(bucket_of("big"), "big") is None:  # placed; the write waits on the node
            assert time.time() < deadline
            time.sleep(0.05)
        time.sleep(0.2)
        in_flight = projected()
        node.resume()
        s.settimeout(30)
        assert s.recv(5) == b"+OK\r\n"
        s.close()
        done = projected()
        # Counted once is about 1.2x: 10 MiB and the string's header take jemalloc's
        # 12 MiB size class, as on the node. Counted twice would be 2.4x.
        assert 0.9 * size < in_flight < 1.4 * size, in_flight / size
        assert 0.9 * size < done < 1.4 * size, done / size
    finally:
        if p is not None:
            p.stop()
        node.stop()
        main.stop()


def slow_poll_cluster():
    """Four nodes polled once at start: between polls only what headroom counts moves
    a node's projected fill."""
    from cluster import Cluster
    c = Cluster(settings={"poll_interval_ms": "60000"})
    c.proxy.wait_nodes_up()
    return c


def counted(r, node):
    """The bytes a node's projected fill holds beyond its last poll."""
    n = r.info("nodes")[node]
    return float(n["fill"]) * int(n["capacity"]) - int(n["used_memory"])


def test_overwrites_and_deletes_are_not_growth():
    c = slow_poll_cluster()
    try:
        r = c.proxy.client(socket_timeout=30)
        assert r.set("hot", "x") is True
        hot = c.node_of("hot")[0]
        p = r.pipeline(transaction=False)
        for i in range(40):
            p.set(f"gone:{i}", "g" * 1000)
        p.execute()
        before = counted(r, hot)
        # 20 MB of writes that grow nothing: the same key overwritten, keys deleted.
        p = r.pipeline(transaction=False)
        for i in range(200):
            p.set("hot", "h" * 100_000)
        for i in range(40):
            p.delete(f"gone:{i}")
        p.execute()
        assert counted(r, hot) - before < 1_000_000, counted(r, hot) - before
        # The node that only took overwrites takes its share of new keys.
        for i in range(40):
            r.set(f"after:{i}", "a" * 1000)
        share = sum(c.node_of(f"after:{i}") == [hot] for i in range(40))
        assert share >= 6, share
    finally:
        c.close()


def test_growth_between_polls_is_counted_once_and_diverts_new_keys():
    c = slow_poll_cluster()
    try:
        r = c.proxy.client(socket_timeout=30)
        chunk = "c" * 100_000
        for k in ("list", "str", "set", "hash"):
            r.set(f"{{g}}:seed:{k}", "x")  # every {g} key lives on one node
        node = c.node_of("{g}:seed:list")[0]
        before = counted(r, node)
        p = r.pipeline(transaction=False)
        for i in range(25):
            p.rpush("{g}:list", chunk)          # 2.5 MB appended
            p.append("{g}:str", chunk)          # 2.5 MB appended
            p.sadd("{g}:set", f"{i}:" + chunk)  # 2.5 MB of new members
            p.hset("{g}:hash", f"f{i}", chunk)  # 2.5 MB of new fields
        p.execute()
        grown = counted(r, node) - before
        assert 9_000_000 < grown < 12_000_000, grown
        # Members and fields already there add nothing.
        p = r.pipeline(transaction=False)
        for i in range(25):
            p.sadd("{g}:set", f"{i}:" + chunk)
            p.hset("{g}:hash", f"f{i}", chunk)
        p.execute()
        assert counted(r, node) - before - grown < 1_000_000, counted(r, node) - before - grown
        # New keys go elsewhere until the others have taken as much.
        for i in range(30):
            r.set(f"new:{i}", "n" * 1000)
            assert c.node_of(f"new:{i}") != [node], i
    finally:
        c.close()


def heavy_tailed_sizes(n=20000, seed=42):
    """The issue's heavy-tailed input: min(64 x Pareto(0.8), 8 MiB) bytes per key."""
    rnd = random.Random(seed)
    return [min(int(64 * rnd.paretovariate(0.8)), 8 << 20) for _ in range(n)]


def spread_through(c, proxies, sizes):
    """Writes key:i with sizes[i] bytes, the keys dealt round-robin to the proxies, all
    writing at once (one client each, pipelined 200); returns used_memory max/min over
    the nodes, less each node's empty baseline."""
    import threading
    base = [used(n) for n in c.nodes]
    errors = []

    def writer(j, proxy):
        try:
            r = proxy.client(socket_timeout=60)
            p = r.pipeline(transaction=False)
            for k, i in enumerate(range(j, len(sizes), len(proxies))):
                p.set(f"key:{i}", b"v" * sizes[i])
                if k % 200 == 199:
                    p.execute()
                    p = r.pipeline(transaction=False)
            p.execute()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(j, p)) for j, p in enumerate(proxies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    time.sleep(0.5)
    grown = [used(n) - b for n, b in zip(c.nodes, base)]
    return max(grown) / min(grown), grown


def test_heavy_tailed_values_spread_evenly_through_one_two_and_four_proxies():
    # Online placement with exact sizes gives 1.002 on this input; before the ledger's
    # fixes one proxy gave 1.09-1.15 (1.6-2.0 at times) and four 1.9-2.2.
    from cluster import Cluster
    c = Cluster(maxmemory=("512mb",) * 4)
    try:
        sizes = heavy_tailed_sizes()
        proxies = [c.proxy, c.add_proxy("headroom-b"), c.add_proxy("headroom-c"), c.add_proxy("headroom-d")]
        for p in proxies:
            p.wait_nodes_up()
        for count in (1, 2, 4):
            c.flushall()
            ratio, grown = spread_through(c, proxies[:count], sizes)
            print(f"\n{count} proxies: used_memory max/min {ratio:.3f} {grown}")
            assert ratio <= 1.15, (count, grown)
    finally:
        c.close()


def placed_on(c, key):
    """The node the directory names for `key` (where it was placed, even if evicted since)."""
    from cluster import bucket_of
    v = c.main.client.hget(bucket_of(key), key)
    return v.decode().split(" ")[0] if v else None


def test_full_lru_nodes_keep_taking_new_keys_evenly():
    # A cache: every node evicts (allkeys-lru) and is full. Used memory sits at
    # maxmemory on each, so "most free memory" cannot tell them apart; new keys must
    # still be placed (each one makes its node evict), spread evenly.
    from cluster import Cluster
    c = Cluster(maxmemory=("8mb",) * 4, node_extra=("--maxmemory-policy", "allkeys-lru"))
    try:
        r = c.proxy.client(socket_timeout=30)
        p = r.pipeline(transaction=False)
        for i in range(12000):  # about 50 MB for 32 MB of nodes
            p.set(f"fill:{i}", "f" * 4000)
            if i % 200 == 199:
                p.execute()
                p = r.pipeline(transaction=False)
        p.execute()
        for n in c.nodes:
            info = n.client.info("memory")
            assert info["used_memory"] > 0.95 * info["maxmemory"], (n.name, info["used_memory"])
        wait_counted(r, c.nodes)  # every node full, as the proxy sees it
        counts = {n.name: 0 for n in c.nodes}
        p = r.pipeline(transaction=False)
        for i in range(2000):
            p.set(f"new:{i}", "n" * 1000)
        assert all(x is True for x in p.execute())
        gone = 0
        for i in range(2000):
            node = placed_on(c, f"new:{i}")
            if node is None:  # evicted already, and its entry removed after it: where it went is not known
                gone += 1
            else:
                counts[node] += 1
        print(f"\nnew keys per full LRU node: {counts} ({gone} evicted and their entries removed)")
        assert gone < 1000, gone
        assert max(counts.values()) / max(1, min(counts.values())) <= 1.2, counts
    finally:
        c.close()


def test_a_full_noeviction_node_gets_no_new_key_from_any_proxy():
    import threading

    import redis

    from cluster import Cluster
    c = Cluster(maxmemory=("16mb",) * 4)
    try:
        second = c.add_proxy("headroom-second")
        # node1 at its maxmemory, the others at about 90%, all behind headroom's back.
        for n in c.nodes:
            target = n.client.info("memory")["maxmemory"] * (1.0 if n.name == "node1" else 0.9)
            i = 0
            try:
                while n.client.info("memory")["used_memory"] < target:
                    n.client.set(f"ballast:{i}", "b" * 100_000)
                    i += 1
            except redis.ResponseError as e:  # OOM: node1 is at its maxmemory
                assert "OOM" in str(e), e
        for px in (c.proxy, second):
            wait_counted(px.client(socket_timeout=30), c.nodes)
        node1_keys = c.nodes[0].client.dbsize()

        def burst(proxy, tag):
            pp = proxy.client(socket_timeout=30).pipeline(transaction=False)
            for i in range(2000):
                pp.set(f"burst:{tag}:{i}", "x" * 2000)
            pp.execute(raise_on_error=False)

        # Bursts through two proxies at once, more than the other nodes can take.
        ts = [threading.Thread(target=burst, args=(px, t)) for px, t in ((c.proxy, "a"), (second, "b"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        placed = {}
        for t in "ab":
            for i in range(2000):
                node = placed_on(c, f"burst:{t}:{i}")
                placed[node] = placed.get(node, 0) + 1
        print(f"\nburst keys by node: {placed}")
        assert "node1" not in placed, placed
        assert c.nodes[0].client.dbsize() == node1_keys
        assert sum(v for k, v in placed.items() if k is not None) > 0, placed  # the others took some
        second.stop()
        c.proxies.remove(second)
    finally:
        c.close()

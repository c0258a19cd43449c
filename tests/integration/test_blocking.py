"""Blocking commands through headroom (issue 13): BLPOP, BRPOP, BLMOVE, BRPOPLPUSH,
BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP, XREAD/XREADGROUP BLOCK, each on a connection of
the client's own to the keys' node, the client's timeout honoured; a blocking read of
a key that does not exist yet places it (the producer's push goes where the consumer
waits) and its entry is held while anyone waits; a client that leaves while blocked
loses no element."""
import socket
import threading
import time

import pytest
import redis

from cluster import keys_on_two_nodes, leased, wait_for


def blocked_on_nodes(c):
    return sum(int(n.client.info("clients")["blocked_clients"]) for n in c.nodes)


def test_blocking_pops_get_what_another_client_pushes(clean, r, ref):
    other = clean.proxy.client(decode_responses=True)
    cases = [
        (lambda c: c.blpop(["bq:l"], timeout=10), lambda: other.rpush("bq:l", "a"), ("bq:l", "a")),
        (lambda c: c.brpop(["bq:r"], timeout=10), lambda: other.rpush("bq:r", "a", "b"), ("bq:r", "b")),
        (lambda c: c.blmove("bq:src", "bq:dst", 10, "LEFT", "RIGHT"), lambda: other.rpush("bq:src", "m"), "m"),
        (lambda c: c.brpoplpush("bq:src2", "bq:dst2", 10), lambda: other.rpush("bq:src2", "n"), "n"),
        (lambda c: c.bzpopmin(["bq:z"], timeout=10), lambda: other.zadd("bq:z", {"x": 1, "y": 2}), ("bq:z", "x", 1.0)),
        (lambda c: c.bzpopmax(["bq:z2"], timeout=10), lambda: other.zadd("bq:z2", {"x": 1, "y": 2}),
         ("bq:z2", "y", 2.0)),
        (lambda c: c.execute_command("BLMPOP", 10, 1, "bq:m", "LEFT", "COUNT", 2), lambda: other.rpush("bq:m", 1, 2, 3),
         ["bq:m", ["1", "2"]]),
        (lambda c: c.xread({"bq:s": "$"}, block=10_000), lambda: other.xadd("bq:s", {"f": "v"}, id="1-1"),
         [["bq:s", [("1-1", {"f": "v"})]]]),
    ]
    for pop, push, want in cases:
        got = {}
        t = threading.Thread(target=lambda: got.update(v=pop(clean.proxy.client(decode_responses=True,
                                                                                 socket_timeout=30))))
        t.start()
        wait_for(lambda: blocked_on_nodes(clean) == 1, what="the consumer blocked on its node")
        push()
        t.join(30)
        assert not t.is_alive()
        assert got["v"] == want or list(got["v"]) == list(want), (got, want)
    # the destination lists got what BLMOVE and BRPOPLPUSH moved
    assert r.lrange("bq:dst", 0, -1) == ["m"] and r.lrange("bq:dst2", 0, -1) == ["n"]
    wait_for(lambda: leased(r) == 0, what="the leases given back")


def test_the_clients_timeout_is_honoured(clean, r):
    start = time.time()
    assert r.blpop(["bq:empty"], timeout=1) is None
    waited = time.time() - start
    assert 0.9 <= waited < 10, waited
    start = time.time()
    assert r.xread({"bq:nostream": "$"}, block=500) == []
    assert 0.4 <= time.time() - start < 10
    # beyond request_ms (5 s here) a block is not cut short
    start = time.time()
    assert r.execute_command("BRPOP", "bq:empty", 6) is None
    assert time.time() - start >= 5.9


def test_a_blocking_read_of_a_new_key_places_it_where_the_producer_then_pushes(clean, r):
    second = clean.add_proxy("blocking-second") if len(clean.proxies) < 2 else clean.proxies[1]
    producer = second.client(decode_responses=True)
    for i in range(8):
        key = f"bq:new:{i}"
        got = {}
        t = threading.Thread(target=lambda: got.update(v=clean.proxy.client(decode_responses=True).blpop([key], 20)))
        t.start()
        wait_for(lambda: blocked_on_nodes(clean) == 1)
        (waiting_on,) = [n.name for n in clean.nodes if int(n.client.info("clients")["blocked_clients"]) == 1]
        assert producer.lpush(key, "job") == 1
        t.join(30)
        assert got["v"] == (key, "job")
        # the producer's push went to the node where the consumer waited
        assert producer.lpush(key, "again") == 1 and clean.node_of(key) == [waiting_on]


def test_a_waited_on_keys_entry_is_held_through_a_flushall(clean, r):
    """FLUSHALL makes every entry retiring; the coordinator removes each once its key is
    confirmed absent, except an entry a client waits on: the producer's push must reach
    the node where the consumer waits."""
    got = {}
    t = threading.Thread(target=lambda: got.update(v=clean.proxy.client(decode_responses=True).blpop(["bq:held"], 60)))
    t.start()
    wait_for(lambda: blocked_on_nodes(clean) == 1)
    assert r.set("bq:control", "v") is True
    entries = lambda: int(r.info("directory")["directory_entries"])  # noqa: E731
    assert entries() == 2
    assert r.flushall() is True
    wait_for(lambda: entries() == 1, what="the control key's entry removed")
    time.sleep(1)  # more settling rounds: the held entry stays
    assert entries() == 1
    assert r.lpush("bq:held", "job") == 1
    t.join(30)
    assert got["v"] == ("bq:held", "job")


def test_many_blocked_clients_each_get_one_element(own):
    c = own(settings={"limits": "{max_leases_per_node: 2000}"})
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    n = 2000
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", c.proxy.port))
        s.sendall(f"BLPOP bq:many:{i % 50} 0\r\n".encode())
        socks.append(s)
    wait_for(lambda: blocked_on_nodes(c) == n, timeout=120, what=f"{n} clients blocked")
    assert leased(r) == n
    for i in range(n):
        r.rpush(f"bq:many:{i % 50}", f"e{i}")
    got = []
    for s in socks:
        s.settimeout(60)
        data = b""
        while data.count(b"\r\n") < 5:
            data += s.recv(4096)
        got.append(data.split(b"\r\n")[4].decode())
        s.close()
    assert sorted(got) == sorted(f"e{i}" for i in range(n))
    wait_for(lambda: leased(r) == 0, timeout=60)


def test_consumers_that_leave_while_blocked_lose_no_element(clean, r):
    """Consumers block, then leave just as a producer pushes: Redis may pop for their
    connections before it learns they left. Nothing reached a client, so every element
    must still be in the list (headroom gives back what was popped for a gone client;
    with Redis directly those elements would be lost with the closed sockets)."""
    rounds, consumers = 5, 20
    for round_ in range(rounds):
        key = f"bq:jobs:{round_}"
        socks = []
        for _ in range(consumers):
            s = socket.create_connection(("127.0.0.1", clean.proxy.port))
            s.sendall(f"BLPOP {key} 0\r\n".encode())
            socks.append(s)
        wait_for(lambda: blocked_on_nodes(clean) == consumers, what=lambda: (blocked_on_nodes(clean), r.info("clients")))
        for s in socks:
            s.close()
        r.rpush(key, *[f"j{i}" for i in range(consumers)])
        wait_for(lambda: leased(r) == 0 and blocked_on_nodes(clean) == 0, what="the leases given back")
        # nothing reached a client: every element is still queued, in its order
        assert r.lrange(key, 0, -1) == [f"j{i}" for i in range(consumers)], round_
    print(f"given back: {r.info('stats')['total_blocking_given_back']} elements popped for consumers that had left")
    # consumers that stay get one element each, none twice
    got = []
    lock = threading.Lock()

    def consume():
        v = clean.proxy.client(decode_responses=True).blpop(["bq:jobs:0"], 30)
        with lock:
            got.append(v[1])

    threads = [threading.Thread(target=consume) for _ in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(got) == sorted(f"j{i}" for i in range(consumers)) and r.llen("bq:jobs:0") == 0


def test_an_element_popped_for_a_client_that_left_is_given_back(clean, r):
    """The race made sure: the node is paused while the producer's push and then the
    consumers' departure reach it, so it serves the blocked connections (pops) before
    it sees their CLIENT UNBLOCK. Nothing reached a client: all must come back."""
    consumers = 10
    socks = []
    for _ in range(consumers):
        s = socket.create_connection(("127.0.0.1", clean.proxy.port))
        s.sendall(b"BLPOP bq:race 0\r\n")
        socks.append(s)
    wait_for(lambda: blocked_on_nodes(clean) == consumers)
    (node,) = [n for n in clean.nodes if int(n.client.info("clients")["blocked_clients"]) == consumers]
    before = int(r.info("stats")["total_blocking_given_back"])
    producer = clean.proxy.client(decode_responses=True, socket_timeout=30)
    node.pause()
    try:
        pushed = threading.Thread(target=lambda: producer.rpush("bq:race", *[f"e{i}" for i in range(consumers)]))
        pushed.start()
        time.sleep(0.2)  # the push is on its way to the node
        for s in socks:
            s.close()
        time.sleep(0.3)  # headroom has seen them go, and sent CLIENT UNBLOCK for each
    finally:
        node.resume()
    pushed.join(30)
    wait_for(lambda: leased(r) == 0 and blocked_on_nodes(clean) == 0, what="the leases given back")
    assert sorted(r.lrange("bq:race", 0, -1)) == sorted(f"e{i}" for i in range(consumers))
    given = int(r.info("stats")["total_blocking_given_back"]) - before
    assert given > 0, "the node served no blocked connection before it saw them go: the race did not happen"
    print(f"{given} of {consumers} elements were popped for consumers that had left, and given back")


def test_blocking_keys_on_two_nodes_are_crossnode(clean, r):
    k = keys_on_two_nodes(clean, r, "bq:a", "bq", lambda key: r.rpush(key, "v"))
    with pytest.raises(redis.ResponseError, match="CROSSNODE"):
        r.blpop(["bq:a", k], timeout=1)


def test_client_unblock_of_a_blocked_headroom_client(clean, r):
    for how, want in (("TIMEOUT", None), ("ERROR", "UNBLOCKED")):
        consumer = clean.proxy.client(decode_responses=True, single_connection_client=True, socket_timeout=30)
        cid = consumer.client_id()
        got = {}

        def pop():
            try:
                got["v"] = consumer.blpop(["bq:unblock"], 0)
            except redis.ResponseError as e:
                got["v"] = str(e)

        t = threading.Thread(target=pop)
        t.start()
        wait_for(lambda: blocked_on_nodes(clean) == 1)
        assert r.execute_command("CLIENT", "UNBLOCK", cid, how) == 1
        t.join(30)
        assert got["v"] == want or (want and want in got["v"]), got
        assert r.execute_command("CLIENT", "UNBLOCK", cid) == 0  # not blocked now
        consumer.close()

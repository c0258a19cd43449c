"""Pub/sub through headroom (issue 13): channels live on the main server, one message
space for every headroom; a subscribed client has its own connection there;
headroom's own channel (the directory's change stream) is out of the clients'
namespace: no client can publish to it or read it."""
import socket
import time

import pytest
import redis


def next_message(p, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = p.get_message(timeout=0.2)
        if m is not None and m["type"] in ("message", "pmessage", "smessage"):
            return m
    return None


def test_subscribers_get_what_any_proxy_publishes(clean, r):
    other = clean.add_proxy("pubsub-other") if len(clean.proxies) < 2 else clean.proxies[1]
    publisher = other.client(decode_responses=True)
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("sport.*")
    for _ in range(2):
        assert p.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
    assert publisher.publish("news", "hello") == 1  # as Redis: the receivers
    m = next_message(p)
    assert (m["channel"], m["data"]) == ("news", "hello")
    assert publisher.publish("sport.tennis", "ace") == 1
    m = next_message(p)
    assert (m["pattern"], m["channel"], m["data"]) == ("sport.*", "sport.tennis", "ace")
    assert publisher.publish("nobody", "x") == 0
    assert sorted(publisher.pubsub_channels()) == ["news"]
    assert publisher.pubsub_numsub("news", "nobody") == [("news", 1), ("nobody", 0)]
    assert publisher.pubsub_numpat() == 1
    p.close()


def test_the_subscribed_state_answers_as_redis(clean, r, ref):
    def session(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.settimeout(10)
        # (UNSUBSCRIBE names its channels: of all, it confirms them in the server's own order)
        s.sendall(b"SUBSCRIBE a b\r\nPING\r\nGET k\r\nPING x\r\nUNSUBSCRIBE a b\r\nGET k\r\nUNSUBSCRIBE\r\n")
        want_end = b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        data = b""
        while not data.endswith(want_end):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return data

    got, want = session(clean.proxy.port), session(clean.reference.port)
    assert got == want
    assert b"only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context" in got


def test_headrooms_own_channel_is_out_of_the_clients_namespace(clean, r):
    spy = r.pubsub()
    spy.psubscribe("*")
    assert spy.get_message(timeout=5)["type"] == "psubscribe"
    main_watch = clean.main.client.pubsub()
    main_watch.subscribe("headroom:dir:events")
    main_watch.get_message(timeout=5)
    # a placement: a message on the directory's channel, which no client sees
    assert r.set("ps:new-key", "v") is True
    m = next_message(main_watch, timeout=5)
    assert m is not None and m["data"].startswith(b"P")
    assert next_message(spy, timeout=1) is None
    # a client's publish to that name reaches the clients' channel of that name, not headroom's
    forged = "P99 forged\n5:node1\nps:xx"
    assert r.publish("headroom:dir:events", forged) == 1  # the spy's pattern
    assert next_message(spy)["channel"] == "headroom:dir:events"
    assert next_message(main_watch, timeout=1) is None
    assert r.get("ps:xx") is None and r.info("directory")["directory_current"] == 1
    spy.close()
    main_watch.close()


def test_resp3_subscribers_get_pushes_and_may_send_any_command(clean, r):
    s = socket.create_connection(("127.0.0.1", clean.proxy.port))
    s.settimeout(10)
    s.sendall(b"HELLO 3\r\nSUBSCRIBE r3ch\r\nSET ps:k v\r\nGET ps:k\r\n")
    data = b""
    while not data.endswith(b"$1\r\nv\r\n"):
        data += s.recv(65536)
    assert b">3\r\n$9\r\nsubscribe\r\n$4\r\nr3ch\r\n:1\r\n+OK\r\n" in data
    assert r.publish("r3ch", "m") == 1
    data = b""
    while not data.endswith(b"$1\r\nm\r\n"):
        data += s.recv(65536)
    assert data == b">3\r\n$7\r\nmessage\r\n$4\r\nr3ch\r\n$1\r\nm\r\n"
    s.close()


def test_a_subscriber_that_leaves_is_unsubscribed(clean, r):
    p = clean.proxy.client().pubsub()
    p.subscribe("gone")
    p.get_message(timeout=5)
    assert r.pubsub_numsub("gone") == [("gone", 1)]
    p.close()
    deadline = time.time() + 20
    while r.pubsub_numsub("gone") != [("gone", 0)]:
        assert time.time() < deadline
        time.sleep(0.05)


def test_publish_with_the_main_server_down_is_a_clear_error(own):
    c = own()
    r = c.proxy.client(decode_responses=True)
    c.main.stop()
    with pytest.raises(redis.ResponseError, match="main server"):
        deadline = time.time() + 20
        while time.time() < deadline:
            r.publish("x", "y")
            time.sleep(0.1)


def collect(p, want, timeout=30):
    """Messages until `want(messages)` holds (or the timeout): the messages."""
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline and not want(got):
        m = p.get_message(timeout=0.2)
        if m is not None and m["type"] in ("message", "pmessage"):
            got.append(m)
    return got


def test_keyevent_notifications_of_every_node_reach_a_subscriber(clean, r):
    # headroom's own setting on every node (Egx) publishes del and expired events.
    p = r.pubsub()
    p.subscribe("__keyevent@0__:del")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    keys = [f"ev{i}" for i in range(100)]
    for k in keys:
        r.set(k, "v" * 20000)  # large enough that placement spreads them
    assert len({n for k in keys for n in clean.node_of(k)}) >= 2  # the keys live on several nodes
    for k in keys:
        assert r.delete(k) == 1
    got = collect(p, lambda ms: len(ms) >= len(keys))
    assert sorted(m["data"] for m in got) == sorted(keys)  # each once, from whichever node held it
    assert {m["channel"] for m in got} == {"__keyevent@0__:del"}
    # After UNSUBSCRIBE, nothing more comes (the node connections unsubscribed too).
    p.unsubscribe("__keyevent@0__:del")
    assert p.get_message(timeout=5)["type"] == "unsubscribe"
    r.set("ev-after", "v")
    r.delete("ev-after")
    assert collect(p, lambda ms: False, timeout=1) == []
    p.close()


def test_keyspace_notifications_by_pattern_are_merged_and_follow_a_node_restart(own):
    c = own(node_extra=("--notify-keyspace-events", "KEA"))
    r = c.proxy.client(decode_responses=True)
    p = r.pubsub()
    p.psubscribe("__keyspace@0__:*")
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    plain = r.pubsub()
    plain.subscribe("news")  # not a notification channel: hears none of it
    assert plain.get_message(timeout=5)["type"] == "subscribe"
    keys = [f"ks{i}" for i in range(40)]
    for k in keys:
        r.set(k, "v")
    got = collect(p, lambda ms: len(ms) >= len(keys))
    assert sorted(m["channel"] for m in got) == sorted(f"__keyspace@0__:{k}" for k in keys)
    assert {(m["pattern"], m["data"]) for m in got} == {("__keyspace@0__:*", "set")}
    assert collect(plain, lambda ms: False, timeout=1) == []
    # Pub/sub through headroom is the main server's: PUBLISH to a notification
    # channel name reaches the subscriber as it would on one Redis.
    assert r.publish("__keyspace@0__:forged", "x") == 1
    assert collect(p, lambda ms: len(ms) >= 1)[0]["channel"] == "__keyspace@0__:forged"

    # A node restarts: its connection comes back and subscribes again.
    on_node1 = next(k for k in keys if c.node_of(k) == ["node1"])
    c.nodes[0].stop()
    c.nodes[0].start()

    def heard():
        try:
            r.set(on_node1, "again")  # the entry still names node1: written there
        except redis.ResponseError:  # headroom has not reconnected to it yet
            time.sleep(0.1)
            return False
        return any(m["channel"] == f"__keyspace@0__:{on_node1}" for m in collect(p, lambda ms: len(ms) >= 1, 0.5))
    deadline = time.time() + 30
    while not heard():
        assert time.time() < deadline, "no notification from the restarted node"
    p.close()
    plain.close()


def test_pipelined_subscribes_with_notification_channels_each_get_their_confirmation(own):
    # The first waits for the nodes' subscriptions too (node1, stopped for a moment, is
    # slow to give its); those behind it must still get their own confirmations, and the
    # client's next command its reply, once node1 answers.
    c = own()
    c.proxy.wait_nodes_up()
    s = socket.create_connection(("127.0.0.1", c.proxy.port), timeout=10)
    c.nodes[0].pause()
    try:
        s.sendall(b"SUBSCRIBE __keyevent@0__:del\r\nSUBSCRIBE news\r\nPSUBSCRIBE __keyspace@0__:*\r\nPING\r\n")
        time.sleep(1)
    finally:
        c.nodes[0].resume()
    want = (b"*3\r\n$9\r\nsubscribe\r\n$18\r\n__keyevent@0__:del\r\n:1\r\n"
            b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:2\r\n"
            b"*3\r\n$10\r\npsubscribe\r\n$16\r\n__keyspace@0__:*\r\n:3\r\n"
            b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
    got = b""
    deadline = time.time() + 20
    while len(got) < len(want) and time.time() < deadline:
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    s.close()
    assert got == want

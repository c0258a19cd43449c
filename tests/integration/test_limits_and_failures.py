"""Limits enforced with Redis's errors, a node that dies or hangs, and graceful
shutdown. Each test builds its own cluster: they stop and kill servers."""
import signal
import socket
import threading
import time

import pytest
import redis


def test_max_clients(own):
    c = own(settings={"limits": "{max_clients: 3}"})
    held = [socket.create_connection(("127.0.0.1", c.proxy.port)) for _ in range(3)]
    extra = socket.create_connection(("127.0.0.1", c.proxy.port))
    extra.settimeout(5)
    assert extra.recv(100) == b"-ERR max number of clients reached\r\n"
    assert extra.recv(100) == b""  # closed
    for s in held:
        s.close()
    time.sleep(0.2)
    assert c.proxy.client().ping() is True


def test_idle_clients_are_closed(own):
    c = own(settings={"timeouts": "{connect_ms: 1000, request_ms: 5000, client_idle_s: 1}"})
    s = socket.create_connection(("127.0.0.1", c.proxy.port))
    s.settimeout(10)
    start = time.time()
    assert s.recv(100) == b""  # closed by headroom after ~1-2 s of silence
    assert time.time() - start >= 0.9


def test_a_client_that_pipelines_too_much_waits(own):
    c = own(settings={"limits": "{max_pipeline: 10}"})
    r = c.proxy.client(decode_responses=True)
    before = int(r.info("stats")["total_pipeline_pauses"])
    p = r.pipeline(transaction=False)
    for i in range(5000):
        p.set(f"deep:{i}", str(i))
    assert all(p.execute())
    assert r.get("deep:4999") == "4999"
    # It was not read while 10 requests waited, again and again over 5,000 requests
    # (a read of 16 kB holds some 500 of them, all framed before reading pauses).
    assert int(r.info("stats")["total_pipeline_pauses"]) - before >= 3


def test_oversized_argument_is_a_protocol_error(own):
    c = own(settings={"limits": "{max_bulk_bytes: 1kb}"})
    s = socket.create_connection(("127.0.0.1", c.proxy.port))
    s.settimeout(5)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n")
    assert s.recv(200) == b"-ERR Protocol error: invalid bulk length\r\n"
    r = c.proxy.client()
    assert r.set("k", "x" * 1000) is True


def first_key_on(c, r, node_name):
    for i in range(5000):
        k = f"probe:{i}"
        r.set(k, "x" * 4000)
        if c.node_of(k) == [node_name]:
            return k
    pytest.fail(f"no key landed on {node_name}")


def test_dead_node_gives_a_clear_error_and_rejoins(own):
    c = own()
    r = c.proxy.client(decode_responses=True)
    victim = c.nodes[1]
    k = first_key_on(c, r, victim.name)
    victim.stop()
    with pytest.raises(redis.ResponseError) as e:
        r.get(k)
    assert victim.name in str(e.value) and "unavailable" in str(e.value)
    # other nodes' keys are served; new keys avoid the dead node
    time.sleep(0.5)
    for i in range(50):
        r.set(f"after:{i}", "v")
        assert c.node_of(f"after:{i}") != [] and victim.name not in c.node_of(f"after:{i}")
    # the node comes back (same port, empty: no persistence here) and rejoins by itself
    victim.start()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            assert r.get(k) is None  # the node restarted empty: Redis's answer, not an error
            break
        except redis.ResponseError:
            time.sleep(0.2)
    else:
        pytest.fail("node did not rejoin")
    # and it takes new keys again once the poller sees it (it is the emptiest now)
    deadline = time.time() + 15
    i = 0
    while victim.name not in c.node_of(f"rejoined:{i}"):
        assert time.time() < deadline, "the restarted node never got a new key"
        i += 1
        r.set(f"rejoined:{i}", "v" * 1000)


def test_hung_node_times_out_instead_of_hanging(own):
    c = own(settings={"timeouts": "{connect_ms: 500, request_ms: 500}"})
    r = c.proxy.client(decode_responses=True, socket_timeout=10)
    victim = c.nodes[2]
    k = first_key_on(c, r, victim.name)
    other = first_key_on(c, r, c.nodes[0].name)
    victim.pause()
    try:
        start = time.time()
        with pytest.raises(redis.ResponseError) as e:
            r.get(k)
        assert "timed out" in str(e.value) and victim.name in str(e.value)
        assert time.time() - start < 5
        assert r.get(other) == "x" * 4000  # other nodes are unaffected
        time.sleep(1)  # the poller has noticed: new keys avoid the hung node
        for i in range(30):
            r.set(f"while-hung:{i}", "v")
            assert victim.name not in c.node_of(f"while-hung:{i}")
    finally:
        victim.resume()


def test_sigterm_delivers_in_flight_replies(own):
    # A pipeline of 20,000 SETs is under way when SIGTERM arrives: headroom stops
    # reading, answers every request it has read, then exits. So the client gets the
    # replies of a prefix of its requests, each +OK, and exactly those SETs happened.
    c = own()
    r = c.proxy.client()
    for i in range(20000):  # placed first: the SETs below go straight to their nodes
        if i % 1000 == 0:
            p = r.pipeline(transaction=False)
        p.set(f"term:{i}", "old")
        if i % 1000 == 999:
            p.execute()
    s = socket.create_connection(("127.0.0.1", c.proxy.port))
    s.settimeout(30)
    payload = b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nterm:%d\r\n$3\r\nnew\r\n" % (len(str(i)) + 5, i)
                       for i in range(20000))
    sender = threading.Thread(target=lambda: s.sendall(payload))
    sender.start()
    time.sleep(0.05)
    c.proxy.proc.send_signal(signal.SIGTERM)
    got = b""
    while True:
        try:
            chunk = s.recv(1 << 16)
        except (ConnectionError, socket.timeout):
            break
        if not chunk:
            break
        got += chunk
    sender.join(30)
    s.close()
    c.proxy.proc.wait(30)
    assert c.proxy.proc.returncode == 0
    answered = got.count(b"+OK\r\n")
    assert got == b"+OK\r\n" * answered  # only whole replies, all OK
    values = {}
    for n in c.nodes:
        keys = [f"term:{i}" for i in range(20000)]
        for k, v in zip(keys, n.client.mget(keys)):
            if v is not None:
                values[k] = v
    assert [values[f"term:{i}"] for i in range(answered)] == [b"new"] * answered
    # a request it had read but not answered would have run and been lost to the client
    assert all(values[f"term:{i}"] == b"old" for i in range(answered, 20000))
    c.proxies.remove(c.proxy)


def test_main_server_down_cached_keys_serve_new_keys_fail_then_resume(own):
    c = own(main_extra=("--appendonly", "yes", "--appendfsync", "always"))
    r = c.proxy.client(decode_responses=True)
    for i in range(200):
        r.set(f"known:{i}", f"v{i}")
    c.main.stop()
    # keys in the local cache keep being served, reads and writes
    assert r.mget([f"known:{i}" for i in range(200)]) == [f"v{i}" for i in range(200)]
    assert r.set("known:0", "updated") is True
    # a new key cannot be placed: a clear error, nothing written anywhere
    with pytest.raises(redis.ResponseError) as e:
        r.set("brand-new", "x")
    assert "main server" in str(e.value) and "unavailable" in str(e.value)
    assert c.node_of("brand-new") == []
    # nor can a key missing from the cache be looked up: another proxy may have placed
    # it meanwhile, so nil (or DEL's 0) could be a wrong answer
    for cmd in (("GET", "never-seen"), ("EXISTS", "never-seen", "known:1"), ("DEL", "never-seen"),
                ("MGET", "known:1", "never-seen")):
        with pytest.raises(redis.ResponseError, match="main server main .* keys this proxy has not cached"):
            r.execute_command(*cmd)
    assert r.get("known:1") == "v1"
    # the main server returns (its directory persisted): everything resumes
    c.main.start()
    deadline = time.time() + 15
    while True:
        try:
            assert r.set("brand-new", "x") is True
            break
        except redis.ResponseError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    assert r.get("known:0") == "updated"
    assert r.mget([f"known:{i}" for i in range(1, 200)]) == [f"v{i}" for i in range(1, 200)]
    wait = time.time() + 15
    while True:  # once the reload is done, absence is known again
        try:
            assert r.get("never-seen") is None
            break
        except redis.ResponseError:
            if time.time() > wait:
                raise
            time.sleep(0.1)
    for i in range(0, 200, 10):
        assert len(c.node_of(f"known:{i}")) == 1
    # a second proxy started now agrees on every key
    second = c.add_proxy("after-main-restart")
    r2 = second.client(decode_responses=True)
    assert r2.get("brand-new") == "x"
    assert r2.mget([f"known:{i}" for i in range(1, 200)]) == [f"v{i}" for i in range(1, 200)]


def test_full_node_gets_no_new_keys_and_oom_passes_through(own):
    c = own()
    r = c.proxy.client(decode_responses=True)
    small = c.nodes[0]
    key = first_key_on(c, r, small.name)
    # node1 shrinks and fills up behind the proxy's back
    small.client.config_set("maxmemory", "4mb")
    try:
        for i in range(100):
            small.client.set(f"ballast:{i}", "b" * 100000)
    except redis.ResponseError:
        pass  # OOM: node1 is full
    time.sleep(0.5)  # the poller has seen it
    with pytest.raises(redis.ResponseError) as e:
        r.append(key, "y" * 200000)  # a write to a key that lives on the full node
    assert str(e.value).startswith("OOM")  # Redis's own error, passed through unchanged
    for i in range(30):
        r.set(f"fresh:{i}", "v")
        assert small.name not in c.node_of(f"fresh:{i}")


def test_backend_passwords(own):
    c = own()
    # Give every server a password, then point a new headroom at them with passwords.
    for s in [c.main, *c.nodes]:
        s.client.config_set("requirepass", "backend-pw")
        s.client = redis.Redis(port=s.port, password="backend-pw", socket_timeout=10)
    from cluster import Headroom
    h = Headroom(c.workdir, c.main, c.nodes, name="with-passwords", backend_password="backend-pw")
    c.proxies.append(h)
    r = h.client(decode_responses=True)
    r.set("pw:a", "1")
    assert r.get("pw:a") == "1"
    assert r.incr("pw:a") == 2


def test_backend_inflight_bound(own):
    c = own(settings={"limits": "{max_backend_inflight: 5}", "timeouts": "{connect_ms: 1000, request_ms: 3000}"})
    r = c.proxy.client(decode_responses=True)
    victim = c.nodes[3]
    k = first_key_on(c, r, victim.name)
    victim.pause()  # replies stop: requests pile up in flight
    try:
        p = r.pipeline(transaction=False)
        for _ in range(20):
            p.get(k)
        res = p.execute(raise_on_error=False)
        refused = [x for x in res if isinstance(x, redis.ResponseError) and "max_backend_inflight" in str(x)]
        assert len(refused) == 15  # 5 in flight, the rest refused at once
    finally:
        victim.resume()


def test_hung_main_server_fails_placements_instead_of_hanging(own):
    c = own()
    r = c.proxy.client(decode_responses=True, socket_timeout=20)
    for i in range(50):
        r.set(f"before-hang:{i}", "v")
    c.main.pause()
    try:
        start = time.time()
        with pytest.raises(redis.ResponseError) as e:
            r.set("placed-while-hung", "x")
        assert "main server" in str(e.value)
        assert time.time() - start < 10  # the control connection's watchdog, not a hang
        assert r.get("before-hang:7") == "v"  # known keys keep serving
    finally:
        c.main.resume()
    deadline = time.time() + 15
    while True:
        try:
            assert r.set("placed-after", "x") is True
            break
        except redis.ResponseError:
            assert time.time() < deadline
            time.sleep(0.2)


def rss_of(r):
    return int(r.info("memory")["used_memory_rss"])


def test_output_limit_is_enforced_where_replies_are_queued(own):
    # A client pipelines GETs of a 1 MB value and never reads: its replies pile up in
    # headroom until max_client_output_bytes, then headroom closes it (as Redis's
    # client-output-buffer-limit does) instead of holding every reply.
    c = own(settings={"limits": "{max_client_output_bytes: 1mb}"})
    r = c.proxy.client(socket_timeout=30)
    r.set("one-mb", "m" * (1 << 20))
    before = rss_of(r)
    s = socket.create_connection(("127.0.0.1", c.proxy.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"*2\r\n$3\r\nGET\r\n$6\r\none-mb\r\n" * 300)
    deadline = time.time() + 20
    while int(r.info("clients")["connected_clients"]) > 1:
        assert time.time() < deadline, "the client that does not read was never closed"
        time.sleep(0.1)
    assert rss_of(r) - before < 100 << 20
    s.close()


def test_inline_commands_do_not_grow_memory(own):
    # RSS is the measure, so AddressSanitizer's quarantine of freed memory (which grows
    # RSS by design) is turned off for this headroom.
    c = own(proxy_env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=0"})
    r = c.proxy.client(socket_timeout=30)
    s = socket.create_connection(("127.0.0.1", c.proxy.port))
    s.settimeout(30)
    chunk = b"PING\r\n" * 20000  # 120 kB per send
    replies = [0]  # bytes of replies: 7 per +PONG

    def drain():
        while replies[0] < 7 * 20000 * 100:
            got = s.recv(1 << 20)
            if not got:
                return
            replies[0] += len(got)

    t = threading.Thread(target=drain)
    t.start()
    s.sendall(chunk)  # warm up
    before = rss_of(r)
    for _ in range(99):  # 12 MB of inline commands
        s.sendall(chunk)
    t.join(60)
    assert replies[0] == 7 * 20000 * 100
    grown = rss_of(r) - before
    s.close()
    assert grown < 4 << 20, grown


def test_a_split_request_refused_after_a_placement_leaves_nothing_behind(own):
    # MSET a BIG d BIG waits behind a placement while DEL a d runs, so it must place
    # both keys again when it goes; a's reservation fills the only node, d finds no
    # node, and the MSET is refused while a's placement is still on its way: that
    # placement's answer must not reach another request later.
    from cluster import Headroom, RedisServer
    c = own()
    node = RedisServer(c.workdir, "tiny", "4mb")
    c.servers.append(node)
    p = Headroom(c.workdir, c.main, [node], name="tiny-proxy", settings={"poll_interval_ms": "60000"})
    c.proxies.append(p)
    p.wait_nodes_up()
    r = p.client(socket_timeout=20)
    for i in range(5):
        r.set(f"known{i}", "x")
    info = r.info("nodes")["tiny"]
    room = int(0.98 * int(info["capacity"])) - int(info["used_memory"])
    value = b"v" * (room // 2 + 4096)  # one fits below 0.98, two do not
    for round_ in range(3):
        a, d = f"a{round_}", f"d{round_}"
        r.set(a, "small")
        r.set(d, "small")
        pipe = r.pipeline(transaction=False)
        pipe.set(f"new{round_}", "x")  # waits for its placement; what follows waits behind it
        pipe.delete(a, d)
        pipe.execute_command("MSET", a, value, d, value)
        for i in range(5):
            pipe.set(f"known{i}", "x")  # known keys: no placement
            pipe.get(f"known{i}")
        pipe.ping()
        out = pipe.execute(raise_on_error=False)
        assert out[:2] == [True, 2], out[:2]
        assert isinstance(out[2], redis.ResponseError), out[2]
        assert out[3:] == [True, b"x"] * 5 + [True], out[3:]
        assert node.client.exists(a, d) == 0  # refused whole
        assert r.set(f"after{round_}", "y") is True and r.get(f"after{round_}") == b"y"


def test_xread_of_a_stream_named_block_is_not_a_blocking_read(own):
    from cluster import raw
    c = own()
    r = c.proxy.client()
    r.xadd("block", {"f": "v"}, id="1-1")
    assert raw(r, "XREAD", "COUNT", "1", "STREAMS", "block", "0") == [[b"block", [[b"1-1", [b"f", b"v"]]]]]
    r.xgroup_create("s", "block", id="0", mkstream=True)  # a group named "block" is no BLOCK option either
    r.xadd("s", {"f": "v"}, id="1-1")
    assert raw(r, "XREADGROUP", "GROUP", "block", "block", "STREAMS", "s", ">") == [[b"s", [[b"1-1", [b"f", b"v"]]]]]
    # with BLOCK it is a blocking read (on a connection of its own): data there, at once
    assert raw(r, "XREAD", "BLOCK", "10", "STREAMS", "block", "0") == [[b"block", [[b"1-1", [b"f", b"v"]]]]]

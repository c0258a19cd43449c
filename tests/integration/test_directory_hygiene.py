"""Directory entries follow the keys (docs/directory.md): none is left for a key that
expired, for a write that created nothing, or for a read-only script; a directory
that names a node the config lacks stops the start; a subscription that silently
stopped delivering is found and the directory reloaded."""
import socket
import threading
import time

import redis

from cluster import Headroom, read, run_headroom


def main_entries(main):
    """Entries on the main server: the fields of every bucket hash."""
    total = 0
    for key in main.scan_iter(match="hr:dir:[0-9]*", count=1000):
        total += main.hlen(key)
    return total


def keys_on_nodes(c):
    return sum(n.client.dbsize() for n in c.nodes)


def test_entries_follow_the_keys_after_a_ttl_workload(own):
    c = own()
    c.proxy.wait_nodes_up()
    r = c.proxy.client(socket_timeout=30)
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set(f"stays:{i}", "v")
    for i in range(1000):
        p.set(f"ttl:{i}", "v", ex=1)             # expire a second later
    for i in range(1000):
        p.set(f"xx:{i}", "v", xx=True)           # of absent keys: creates nothing
    for i in range(1000):
        p.execute_command("SET", f"ex0:{i}", "v", "EX", "0")  # an error: creates nothing
    for i in range(300):
        p.eval("return redis.call('GET', KEYS[1])", 1, f"ro:{i}")  # reads only
    out = p.execute(raise_on_error=False)
    written = time.time()
    assert out[:1500] == [True] * 1500
    assert out[1500:2500] == [None] * 1000
    assert all(isinstance(x, redis.ResponseError) for x in out[2500:3500])
    deadline = written + 1 + 20
    while True:
        on_nodes = keys_on_nodes(c)
        in_proxy = int(r.info("directory")["directory_entries"])
        on_main = main_entries(c.main.client)
        if on_nodes == 500 and in_proxy <= on_nodes * 1.01 and on_main <= on_nodes * 1.01:
            break
        assert time.time() < deadline, (on_nodes, in_proxy, on_main)
        time.sleep(0.2)
    print(f"directory followed the keys {time.time() - written - 1:.1f} s after they expired "
          f"({on_nodes} keys, {in_proxy} entries in the proxy, {on_main} on the main server)")
    # the keys that stayed are still served, from the nodes their entries name
    assert r.mget([f"stays:{i}" for i in range(500)]) == [b"v"] * 500


def test_a_deleted_keys_entry_leaves_every_proxy_and_the_main_server(own):
    c = own()
    second = c.add_proxy("second")
    a = c.proxy.client(decode_responses=True)
    b = second.client(decode_responses=True)
    for i in range(200):
        a.set(f"learn:{i}", f"v{i}")
    assert b.mget([f"learn:{i}" for i in range(200)]) == [f"v{i}" for i in range(200)]
    assert b.delete("learn:0") == 1
    assert a.get("learn:0") is None
    deadline = time.time() + 20
    while not (int(a.info("directory")["directory_entries"]) == 199 ==
               int(b.info("directory")["directory_entries"]) == main_entries(c.main.client)):
        assert time.time() < deadline, (a.info("directory"), b.info("directory"), main_entries(c.main.client))
        time.sleep(0.1)
    # written again, the key is placed afresh and both proxies find it
    assert b.set("learn:0", "again") is True
    assert a.get("learn:0") == "again"
    assert len(c.node_of("learn:0")) == 1


def test_a_config_without_a_node_the_directory_names_refuses_to_start(own):
    c = own()
    c.proxy.wait_nodes_up()
    r = c.proxy.client()
    p = r.pipeline(transaction=False)
    for i in range(400):
        p.set(f"spread:{i}", "x" * 10000)
    p.execute()
    on_node4 = c.nodes[3].client.dbsize()
    assert on_node4 > 0
    out = run_headroom(c.workdir, c.main, c.nodes[:3], "fewer-nodes")  # node4 left out
    log = out.stdout + out.stderr
    assert out.returncode == 1, log
    assert "names node 'node4' for" in log and "drain it first" in log, log
    assert "AddressSanitizer" not in log and "runtime error:" not in log, log


class Relay:
    """A TCP relay to `port` whose connections can be frozen: they stay open and stop
    forwarding (a middlebox that lost its state, a half-open connection). Connections
    made after a freeze forward normally."""

    def __init__(self, port):
        self.target = port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.conns = []  # (client socket, server socket, frozen flag holder)
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            state = {"frozen": False}
            with self.lock:
                self.conns.append((c, s, state))
            for a, b in ((c, s), (s, c)):
                threading.Thread(target=self._pump, args=(a, b, state), daemon=True).start()

    def _pump(self, src, dst, state):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            while state["frozen"] and not self.closed:
                time.sleep(0.05)  # held: never delivered
            if self.closed:
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze_all(self):
        with self.lock:
            for _, _, state in self.conns:
                state["frozen"] = True

    def close(self):
        self.closed = True
        self.listener.close()
        with self.lock:
            for c, s, _ in self.conns:
                c.close()
                s.close()


def test_a_subscription_that_silently_stops_is_found_and_the_directory_reloaded(own):
    c = own()
    relay = Relay(c.main.port)
    try:
        behind = Headroom(c.workdir, _via(c.main, relay.port), c.nodes, name="behind-relay",
                          settings={"timeouts": "{connect_ms: 1000, request_ms: 2000}"})
        c.proxies.append(behind)
        behind.wait_nodes_up()
        a = behind.client(decode_responses=True, socket_timeout=30)
        b = c.proxy.client(decode_responses=True)
        assert a.set("before", "1") is True
        relay.freeze_all()  # every connection headroom has to the main server goes silent
        frozen = time.time()
        for i in range(50):
            assert b.set(f"while-frozen:{i}", f"v{i}") is True  # placed by the other proxy
        want = [f"v{i}" for i in range(50)]
        deadline = frozen + 30
        while True:
            try:
                if a.mget([f"while-frozen:{i}" for i in range(50)]) == want:
                    break
            except redis.ResponseError:
                pass  # reloading: uncached keys cannot be looked up meanwhile
            assert time.time() < deadline, read(behind.log)
            time.sleep(0.1)
        found = time.time() - frozen
        print(f"the frozen subscription was found and the directory reloaded in {found:.1f} s")
        assert found < 15, found  # a heartbeat (1 s) plus request_ms (2 s), then a reload
        assert "no reply for" in read(behind.log)
    finally:
        relay.close()


def _via(main, port):
    """The main server as seen through a relay on `port` (same name, another port)."""
    class Through:
        pass
    t = Through()
    t.port = port
    t.name = main.name
    return t


def test_a_tag_key_written_behind_a_flush_keeps_its_tags_entry(own):
    """A write through a proxy that has not yet taken a FLUSHALL's message can reach the
    node after the flush emptied it: the key comes back under the old entry, which the
    flush made retiring (docs/directory.md, FLUSHALL). For a hash tag's entry the
    coordinator must find that key before removing the entry; it used to remove every
    flushed tag entry unchecked, so the key was lost to reads and the tag's next key was
    placed afresh, maybe on another node (the checker saw one tag on two nodes)."""
    c = own()
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    assert r.set("{t}a", "1") is True
    (name,) = c.node_of("{t}a")
    node = next(n for n in c.nodes if n.name == name)

    def settled():
        d = r.info("directory")
        return int(d["coordinator_removed"]) + int(d["coordinator_revived"])

    before = settled()
    assert r.flushall() is True
    node.client.set("{t}late", "v")  # what the late write through the old entry leaves
    deadline = time.time() + 30
    while settled() == before:
        assert time.time() < deadline, r.info("directory")
        time.sleep(0.1)
    assert r.get("{t}late") == "v"
    assert r.set("{t}b", "2") is True
    assert c.node_of("{t}b") == [name]

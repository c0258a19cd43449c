"""Failures during a running load: while a client writes new keys and reads back
acknowledged ones without pause, a data node is killed and restarted, another is
stopped (SIGSTOP) and resumed, and the main server is killed and restarted. Every
reply is counted; every error must be one headroom explains (naming the node or the
main server); no read may return a wrong value; afterwards every acknowledged write
is readable and lives on exactly the node the directory names (nothing misrouted).
The servers persist (AOF, fsync always), as production nodes would."""
import random
import re
import threading
import time

import redis

from cluster import Cluster, bucket_of

# Errors headroom gives for the events below, and Redis's while the main server
# replays its AOF.
EXPLAINED = re.compile(r"node node\d \(127\.0\.0\.1:\d+\) (is unavailable|timed out after \d+ ms)"
                       r"|main server (main \(127\.0\.0\.1:\d+\) is )?unavailable"
                       r"|main server refused placement: LOADING")


class Load(threading.Thread):
    """Pipelines of 20: half SETs of new keys, half GETs of acknowledged ones."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.r = client
        self.stop = threading.Event()
        self.acked = {}
        self.acked_keys = []
        self.sent = 0
        self.errors = {}
        self.wrong = []
        self.n = 0

    def run(self):
        rnd = random.Random(3)
        while not self.stop.is_set():
            p = self.r.pipeline(transaction=False)
            ops = []
            for _ in range(20):
                if rnd.random() < 0.5 or not self.acked_keys:
                    k, v = f"ul:{self.n}", f"value-{self.n}"
                    self.n += 1
                    p.set(k, v)
                    ops.append(("set", k, v))
                else:
                    k = rnd.choice(self.acked_keys)
                    p.get(k)
                    ops.append(("get", k, self.acked.get(k)))
            try:
                replies = p.execute(raise_on_error=False)
            except redis.RedisError as e:  # the connection itself: counted for each command
                replies = [e] * len(ops)
            for (op, k, v), x in zip(ops, replies):
                self.sent += 1
                if isinstance(x, Exception):
                    self.errors[str(x)] = self.errors.get(str(x), 0) + 1
                elif op == "set":
                    self.acked[k] = v
                    self.acked_keys.append(k)
                elif v is not None and x != v:  # an acknowledged key read back wrong
                    self.wrong.append((k, v, x))


def wait_until(check, timeout=30):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline
        time.sleep(0.1)


def test_nothing_lost_or_misrouted_while_nodes_and_the_main_server_fail():
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    # The main server replays its AOF slowly (Redis's key-load-delay, microseconds per
    # entry), so headroom reconnects while it still answers LOADING.
    c = Cluster(main_extra=aof + ("--key-load-delay", "100"), node_extra=aof,
                settings={"timeouts": "{connect_ms: 500, request_ms: 1000}"})
    try:
        load = Load(c.proxy.client(decode_responses=True, socket_timeout=15))
        load.start()
        phases = []

        def phase(name, seconds):
            start = load.sent
            time.sleep(seconds)
            phases.append((name, load.sent - start))

        phase("steady", 1.5)
        c.nodes[1].proc.kill()  # node2 dies (SIGKILL)
        c.nodes[1].proc.wait()
        phase("node2 dead", 2)
        c.nodes[1].start()
        phase("node2 back", 2)
        c.nodes[2].pause()  # node3 hangs (SIGSTOP)
        phase("node3 stopped", 2.5)
        c.nodes[2].resume()
        phase("node3 resumed", 2)
        c.main.proc.kill()  # the main server dies
        c.main.proc.wait()
        phase("main dead", 1.5)
        c.main.start(timeout=120)  # it replays its AOF slowly
        phase("main back", 3)
        load.stop.set()
        load.join(30)
        assert not load.is_alive()

        summary = (f"{load.sent} requests, {len(load.acked)} acknowledged writes, "
                   f"{sum(load.errors.values())} errors: {load.errors}; phases {phases}")
        print(summary)
        assert all(n > 0 for _, n in phases), summary  # the load ran through every event
        assert not load.wrong, f"wrong values read back: {load.wrong[:5]}"
        unexplained = {e: n for e, n in load.errors.items() if not EXPLAINED.search(e)}
        assert not unexplained, summary
        assert len(load.acked) > 1000, summary

        # Afterwards: every acknowledged write is readable, on exactly one node, the
        # one the directory on the main server names.
        r = c.proxy.client(decode_responses=True)
        wait_until(lambda: all(v.get("status") == "up" for v in r.info("nodes").values() if isinstance(v, dict)))
        keys = list(load.acked)
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            assert r.mget(chunk) == [load.acked[k] for k in chunk]
        main = c.main.client
        for k in keys[::7]:
            holders = c.node_of(k)
            assert len(holders) == 1, (k, holders)
            assert main.hget(bucket_of(k), k).decode().split()[0] == holders[0], k
    finally:
        c.close()

"""Two proxies racing on the directory: a removal (DEL, FLUSHALL) through one while the
other writes the same keys through the entries it has cached. Whatever the
interleaving, once both are answered every key is on no node or on exactly the node
its directory entry names, both proxies read the same value, and writing the keys
again through either proxy leaves one copy of each (the sum of DBSIZE over the nodes
is the number of keys). Each scenario runs a few rounds so the race is hit."""
import threading
import time

import pytest
import redis

from checker import Target, observe_placement
from cluster import Cluster
from test_pipeline import run_pipeline

ROUNDS = 4


@pytest.fixture(scope="module")
def pair():
    c = Cluster()
    try:
        c.add_proxy("headroom-b")
    except BaseException:
        c.close()
        raise
    yield c
    c.close()


def wait_known(client, keys, value, timeout=10.0):
    """Waits until `client` reads `value` for every key (its proxy knows the entries);
    errors while it cannot look keys up yet (its directory loading) are retried."""
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        try:
            seen = client.mget(keys)
            if seen == [value] * len(keys):
                return
        except redis.ResponseError as e:
            seen = e
        time.sleep(0.05)
    raise AssertionError(f"the proxy never read the keys written through the other one: {str(seen)[:200]}")


def at_once(*fns):
    """Runs the functions in threads released together; returns their results (an
    exception is returned as the result)."""
    go = threading.Barrier(len(fns))
    out = [None] * len(fns)

    def run(i, fn):
        try:
            go.wait()
            out[i] = fn()
        except Exception as e:  # noqa: BLE001 - returned
            out[i] = e
    ts = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def prepared(client, cmds):
    """A pipeline encoded ahead, so that calling the result only sends the bytes and
    reads the replies: two of them released together reach the proxies together."""
    conn = client.connection_pool.get_connection("_")
    packed = conn.pack_commands(cmds)

    def send():
        try:
            conn.send_packed_command(packed)
            out = []
            for _ in cmds:
                try:
                    out.append(conn.read_response())
                except redis.ResponseError as e:
                    out.append(e)
            return out
        finally:
            client.connection_pool.release(conn)
    return send


SETTLE = 0.5   # seconds for what the proxies still send after the replies (removals, events)
REPAIR = 2.0   # seconds more a repair in the background may take


def misplaced(c, keys):
    """Keys on two or more nodes, or on a node their entry does not name, read on the
    servers directly, SETTLE seconds after the writes were answered (a check at once
    could run before a removal the proxies still have to send), then polled for up to
    REPAIR seconds more."""
    time.sleep(SETTLE)
    target = Target.from_cluster(c)
    deadline = time.time() + REPAIR
    while True:
        placement = observe_placement(target, keys)
        bad = {k: v for k, v in placement.items() if len(v[0]) > 1 or (len(v[0]) == 1 and v[1] != v[0][0])}
        if not bad or time.time() > deadline:
            return bad
        time.sleep(0.1)


def disagreements(a, b, keys, allowed):
    """Keys whose GET through A and through B differ, or give a value not in allowed[k]
    (polled for up to REPAIR seconds)."""
    deadline = time.time() + REPAIR
    while True:
        va, vb = a.mget(keys), b.mget(keys)
        bad = {k: (x, y) for k, x, y in zip(keys, va, vb) if x != y or x not in allowed[k]}
        if not bad or time.time() > deadline:
            return bad
        time.sleep(0.1)


def written_again(c, client, keys):
    """Writes every key again through `client`; returns the sum of DBSIZE over the nodes."""
    run_pipeline(client, [("SET", k, "again") for k in keys])
    return sum(n.client.dbsize() for n in c.nodes)


def describe(bad, n=5):
    items = sorted(bad.items())[:n]
    return ", ".join(f"{k}: {v}" for k, v in items) + (" ..." if len(bad) > n else "")


def check_round(c, a, b, keys, allowed, what):
    """The placement, agreement and rewrite checks; returns a line per failure."""
    failures = []
    bad = misplaced(c, keys)
    if bad:
        two = sum(1 for h, _ in bad.values() if len(h) > 1)
        failures.append(f"{what}: {len(bad) - two} of {len(keys)} keys on a node their entry does not name, "
                        f"{two} on two nodes ({describe(bad)})")
    diff = disagreements(a, b, keys, allowed)
    if diff:
        failures.append(f"{what}: GET through A and B disagree, or read a value no order of the commands "
                        f"gives, on {len(diff)} keys ({describe(diff)})")
    total = written_again(c, a, keys)
    if total != len(keys):
        failures.append(f"{what}: after writing the {len(keys)} keys again through A the nodes hold {total} keys")
    return failures


# A script that keeps the main server busy for ARGV[1] ms, as a slow main server would
# be: whatever the proxies send it (removals, the change events they publish) waits.
BUSY = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start >= ARGV[1] * 1000
return 1
"""


def main_busy(c, ms):
    """Starts the BUSY script on the main server in a thread; returns the thread once
    the main server is inside the script (a PING there goes unanswered)."""
    th = threading.Thread(target=lambda: c.main.client.eval(BUSY, 0, ms), daemon=True)
    th.start()
    deadline = time.time() + 5
    while time.time() < deadline:
        probe = redis.Redis(port=c.main.port, socket_timeout=0.02, **c.main.client_kw)
        try:
            probe.ping()
        except redis.TimeoutError:
            return th
        finally:
            probe.close()
        time.sleep(0.002)
    raise AssertionError("the main server never ran the busy script")


DEL_VARIANTS = ("together", "together, B in reverse order", "B behind A, main server slow")


def test_del_through_one_proxy_while_another_sets_through_its_cached_entry(pair):
    """B has 300 keys cached; DEL k through A and SET k through B at the same moment.
    Three variants, twice each: A's 300 DELs and B's 300 SETs sent together, in the
    same order; the same with B in the reverse order (wherever the two cross, the keys
    A deleted first meet B's SETs after their DEL); and in chunks of 10, B sending its
    SETs of a chunk the moment A's DELs of it are answered, while A goes on with the
    next chunk and the main server is slow (busy for 300 ms in a script), as when
    removals and their events queue behind other work there."""
    A, B = pair.proxies[0], pair.proxies[1]
    a, b = A.client(decode_responses=True), B.client(decode_responses=True)
    failures = []
    for rnd in range(2 * len(DEL_VARIANTS)):
        variant = DEL_VARIANTS[rnd % len(DEL_VARIANTS)]
        pair.flushall()
        keys = [f"delrace{rnd}:{i}" for i in range(300)]
        assert run_pipeline(a, [("SET", k, "old") for k in keys]) == [True] * len(keys)
        wait_known(b, keys, "old")  # B has every entry cached (from A's placement events)
        new = {k: f"new{i}" for i, k in enumerate(keys)}
        busy = None
        if variant.startswith("together"):
            order = list(reversed(keys)) if "reverse" in variant else keys
            dels, sets = at_once(prepared(a, [("DEL", k) for k in keys]),
                                 prepared(b, [("SET", k, new[k]) for k in order]))
        else:
            chunks = [keys[i:i + 10] for i in range(0, len(keys), 10)]
            answered = [threading.Event() for _ in chunks]

            def deleter():
                out = []
                for chunk, done in zip(chunks, answered):
                    out += run_pipeline(a, [("DEL", k) for k in chunk])
                    done.set()
                return out

            def setter():
                out = []
                for chunk, done in zip(chunks, answered):
                    done.wait(30)
                    out += run_pipeline(b, [("SET", k, new[k]) for k in chunk])
                return out
            busy = main_busy(pair, 300)
            dels, sets = at_once(deleter, setter)
        assert not isinstance(dels, Exception) and not isinstance(sets, Exception), (dels, sets)
        assert all(x in (0, 1) for x in dels), dels
        assert all(x in ("OK", True) for x in sets), [x for x in sets if x not in ("OK", True)][:3]
        if busy is not None:
            busy.join(10)
        # Together: either order is legal for each key, absent (DEL last) or B's value
        # (SET last). B behind A: each SET began after its DEL was answered.
        allowed = {k: ((None, v) if variant.startswith("together") else (v,)) for k, v in new.items()}
        failures += check_round(pair, a, b, keys, allowed, f"round {rnd} ({variant})")
    assert not failures, "\n".join(failures)


def test_flushall_through_one_proxy_while_another_writes(pair):
    """B writes 2,000 keys while A sends FLUSHALL: 1,000 it has cached (written through
    A before) on one connection and 1,000 new ones on another, in pipelines of 25."""
    A, B = pair.proxies[0], pair.proxies[1]
    a = A.client(decode_responses=True)
    b, b_new = B.client(decode_responses=True), B.client(decode_responses=True)
    failures = []
    for rnd in range(ROUNDS):
        pair.flushall()
        keys = [f"flushrace{rnd}:{i}" for i in range(2000)]
        known, new = keys[:1000], keys[1000:]
        assert run_pipeline(a, [("SET", k, "old") for k in known]) == [True] * len(known)
        wait_known(b, known, "old")
        started = threading.Event()

        def writer(client, ks):
            out = []
            for i in range(0, len(ks), 25):
                out += run_pipeline(client, [("SET", k, f"new-{k}") for k in ks[i:i + 25]])
                if i >= 200:
                    started.set()
            started.set()
            return out

        def flusher():
            started.wait(30)
            return a.flushall()

        sets_known, sets_new, flushed = at_once(lambda: writer(b, known), lambda: writer(b_new, new), flusher)
        for sets in (sets_known, sets_new):
            assert not isinstance(sets, Exception), sets
            assert sets == [True] * 1000, [x for x in sets if x is not True][:3]
        assert flushed is True, flushed
        allowed = {k: (None, f"new-{k}") for k in keys}
        failures += check_round(pair, a, b, keys, allowed, f"round {rnd}")
    assert not failures, "\n".join(failures)

"""Moving keys online (docs/moves.md): HEADROOM MOVE, DRAIN and REBALANCE with two
proxies, the checker while keys move back and forth, a paused proxy, a killed mover.
Real redis-servers; every wait is for a condition, with a generous bound."""
import os
import random
import signal
import threading
import time

import pytest
import redis

from checker import run_checker
from cluster import Cluster, bucket_of, entry_node, wait_for


def nodes_report(r):
    """HEADROOM NODES as {node: {field: value}} plus its 'mover' line."""
    out = {}
    for line in r.execute_command("HEADROOM", "NODES").decode().splitlines():
        if line.startswith("mover: "):
            out["mover"] = dict(kv.split("=", 1) for kv in line[len("mover: "):].split())
            continue
        fields = dict(kv.split("=", 1) for kv in line.split())
        out[fields["name"]] = fields
    return out


def moved_entries(c):
    """Entries committed by the mover, over every proxy (the coordinator's counts)."""
    total = 0
    for p in c.proxies:
        if p.proc is None:
            continue
        try:
            total += int(nodes_report(p.client())["mover"]["entries_moved"])
        except (redis.RedisError, OSError):
            pass
    return total


def settled(c):
    """Nothing asked of the rebalancer is left, no entry is moving on any proxy, and no
    committed move's source copy is still to delete (hr:moves:clean)."""
    if c.main.client.llen("hr:rebalance:asked") != 0 or c.main.client.scard("hr:moves:clean") != 0:
        return False
    return all(nodes_report(p.client())["mover"]["moving_now"] == "0" for p in c.proxies if p.proc is not None)


def mover_lines(c):
    """Each running proxy's HEADROOM NODES mover line: what a wait that failed shows."""
    lines = []
    for p in c.proxies:
        if p.proc is None:
            continue
        try:
            lines.append(next(l for l in p.client(socket_timeout=10).execute_command("HEADROOM", "NODES").decode()
                              .splitlines() if l.startswith("mover: ")))
        except (redis.RedisError, OSError, StopIteration) as e:
            lines.append(f"{p.dir}: {e}")
    return lines


def wait_settled(c, timeout=60):
    # Twice, a little apart: a move asked may begin between the two reads of one check.
    wait_for(lambda: settled(c) and (time.sleep(0.3) or settled(c)), timeout,
             lambda: f"moves to settle (asked {c.main.client.llen('hr:rebalance:asked')}, to clean up "
                     f"{c.main.client.scard('hr:moves:clean')}): " + "; ".join(mover_lines(c)))


def ask_random_move(rnd, clients, keys, names):
    """HEADROOM MOVE of a random key to a random node, through a random proxy."""
    rnd.choice(clients).execute_command("HEADROOM", "MOVE", rnd.choice(keys), rnd.choice(names))


def entry_of(c, key):
    return entry_node(c.main.client.hget(bucket_of(key), key))


def assert_every_family_checked(result):
    """The checker's run drove every key family while keys moved: registers, counters,
    append logs, lists and hashes each had acknowledged writes and reads."""
    by_kind = result.counts["by_kind"]
    missing = [k for k in ("set", "get", "incr", "append", "lpush", "lrange", "hset", "hgetall") if not by_kind.get(k)]
    assert not missing, (missing, by_kind)


@pytest.fixture
def two():
    c = Cluster()
    c.add_proxy("headroom2")
    yield c
    c.close()


def test_a_moved_key_keeps_its_value_and_ttl_and_both_proxies_follow(two):
    c = two
    r1, r2 = c.proxy.client(), c.proxies[1].client()
    r1.set("mk", "v1", ex=300)
    r1.rpush("ml", *range(50))
    src = c.node_of("mk")[0]
    dst = next(n.name for n in c.nodes if n.name != src)
    assert r2.execute_command("HEADROOM", "MOVE", "mk", dst) == b"OK"
    wait_for(lambda: c.node_of("mk") == [dst] and entry_of(c, "mk") == dst, 30, "mk on " + dst)
    assert r1.get("mk") == b"v1" and r2.get("mk") == b"v1"
    assert 250 < r1.ttl("mk") <= 300
    # Writes after the move go to the new node, through either proxy.
    r2.set("mk", "v2")
    assert r1.get("mk") == b"v2" and c.nodes[[n.name for n in c.nodes].index(dst)].client.get("mk") == b"v2"
    # A list moves whole.
    lsrc = c.node_of("ml")[0]
    ldst = next(n.name for n in c.nodes if n.name != lsrc)
    r1.execute_command("HEADROOM", "MOVE", "ml", ldst)
    wait_for(lambda: c.node_of("ml") == [ldst], 30, "ml moved")
    assert r2.lrange("ml", 0, -1) == [str(i).encode() for i in range(50)]


def test_a_hash_tag_moves_with_every_key_of_its_tag(two):
    c = two
    r = c.proxy.client()
    for i in range(20):
        r.set(f"{{grp}}k{i}", i)
    r.sadd("{grp}set", "a", "b")
    src = c.node_of("{grp}k0")[0]
    dst = next(n.name for n in c.nodes if n.name != src)
    r.execute_command("HEADROOM", "MOVE", "{grp}anything", dst)
    wait_for(lambda: all(c.node_of(f"{{grp}}k{i}") == [dst] for i in range(20)) and c.node_of("{grp}set") == [dst],
             30, "every key of the tag moved")
    assert r.smembers("{grp}set") == {b"a", b"b"}
    # A same-node command across the tag still works there.
    assert r.sunionstore("{grp}u", "{grp}set") == 2
    assert c.node_of("{grp}u") == [dst]


def test_headroom_command_errors(two):
    r = two.proxy.client()
    with pytest.raises(redis.ResponseError, match="no data node named 'nope'"):
        r.execute_command("HEADROOM", "DRAIN", "nope")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'FROB'"):
        r.execute_command("HEADROOM", "FROB")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("HEADROOM")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("HEADROOM", "MOVE", "k")
    assert any(b"DRAIN" in line for line in r.execute_command("HEADROOM", "HELP"))


def test_a_drained_node_empties_takes_no_new_keys_and_loses_nothing(two):
    c = two
    r1, r2 = c.proxy.client(), c.proxies[1].client()
    values = {f"dk{i}": os.urandom(random.Random(i).randrange(10, 3000)) for i in range(2000)}
    pipe = r1.pipeline(transaction=False)
    for k, v in values.items():
        pipe.set(k, v)
    pipe.execute()
    node1 = c.nodes[0]
    before = node1.client.dbsize()
    assert before > 0
    assert r2.execute_command("HEADROOM", "DRAIN", "node1") == b"OK"
    wait_for(lambda: node1.client.dbsize() == 0, 120, "node1 drained")
    report = nodes_report(r1)
    assert report["node1"]["draining"] == "1"
    for k, v in values.items():
        assert r2.get(k) == v, k
    # No new key goes to a draining node, whichever proxy places it.
    for i in range(200):
        (r1 if i % 2 else r2).set(f"new{i}", "x")
    assert node1.client.dbsize() == 0
    # Taken out of the drain, it takes keys again.
    r1.execute_command("HEADROOM", "DRAIN", "node1", "OFF")
    wait_for(lambda: nodes_report(r2)["node1"]["draining"] == "0", 30, "drain off everywhere")
    for i in range(200):
        r2.set(f"again{i}", "x")
    assert node1.client.dbsize() > 0


def test_rebalance_evens_out_growth_after_placement_moving_little_more_than_the_excess():
    c = Cluster(maxmemory=("64mb",) * 4)
    try:
        r = c.proxy.client()
        for i in range(1200):
            r.set(f"g{i}", "x")
        node1 = c.nodes[0]
        on1 = [f"g{i}" for i in range(1200) if node1.client.exists(f"g{i}")]
        assert len(on1) >= 200
        blob = b"y" * 60_000
        for k in on1[:200]:  # 12 MB appended on node1 after placement (24 MB allocated)
            r.append(k, blob)

        def used():
            return [n.client.info("memory")["used_memory"] for n in c.nodes]

        # The proxy's figures show the growth.
        wait_for(lambda: int(nodes_report(r)["node1"]["used_memory"]) > 12_000_000, 30, "growth polled")
        u = used()
        mean = sum(u) / 4
        excess = u[0] - mean
        assert max(u) / min(u) > 2
        r.execute_command("HEADROOM", "REBALANCE")
        wait_for(lambda: max(used()) / min(used()) <= 1.15, 60, "nodes within 1.15x of each other")
        wait_settled(c)
        moved = int(nodes_report(r)["mover"]["memory_moved"])
        assert 0 < moved <= 1.25 * excess, (moved, excess)
        for k in on1[:200]:
            assert r.strlen(k) == 1 + 60_000
    finally:
        c.close()


def test_checker_while_keys_move_back_and_forth(two):
    """Two proxies, six clients, FLUSHALLs, and a thread moving the run's hot keys
    (registers, counters, append logs, lists, hashes) to random nodes through random
    proxies the whole time: no lost write, no stale read."""
    c = two
    clients = [p.client() for p in c.proxies]
    names = [n.name for n in c.nodes]
    asked = [0]

    def mover(keys, done):
        rnd = random.Random(7)
        while not done.is_set():
            ask_random_move(rnd, clients, keys, names)
            asked[0] += 1
            time.sleep(0.01)
        wait_settled(c)

    before = moved_entries(c)
    result = run_checker(c, c.proxies, clients=6, ops=40_000, keys=200, seed=3, flushes=2, during=mover)
    print(result.report())
    moved = moved_entries(c) - before
    print(f"moves asked {asked[0]}, entries moved {moved}")
    assert result.ok, result.report()
    assert_every_family_checked(result)
    assert moved >= 50, (moved, asked[0])


def test_a_paused_proxy_never_writes_to_the_old_node_after_the_move(two):
    c = two
    r1 = c.proxy.client()
    p2 = c.proxies[1]
    r2 = p2.client(socket_timeout=20)
    r1.set("pk", "old")
    assert r2.get("pk") == b"old"  # p2 has it cached
    src = c.node_of("pk")[0]
    dst = next(n.name for n in c.nodes if n.name != src)
    p2.proc.send_signal(signal.SIGSTOP)
    try:
        r1.execute_command("HEADROOM", "MOVE", "pk", dst)
        # p2 cannot acknowledge: the move waits for it, then (its registration lapsed)
        # p2 is fenced and a move asked again goes through.
        def moved():
            if c.node_of("pk") == [dst]:
                return True
            r1.execute_command("HEADROOM", "MOVE", "pk", dst)
            time.sleep(0.5)
            return False
        wait_for(moved, 60, "pk moved while p2 is paused")
        r1.set("pk", "new")
    finally:
        p2.proc.send_signal(signal.SIGCONT)
    # Resumed, p2's old connections are gone and it reloads before serving: it never
    # writes pk to its old node, and reads the new value. Until it has reconnected
    # its commands fail (never half done).
    def p2_writes():
        try:
            return r2.set("pk", "newer")
        except redis.ResponseError as e:  # refused whole, never half done
            # its connections come back one by one: until then a command is refused
            assert any(w in str(e) for w in ("unavailable", "try again", "no data node can take")), e
            return False
        except (redis.ConnectionError, redis.TimeoutError):
            return False
    wait_for(p2_writes, 60, "p2 serving again")
    assert c.node_of("pk") == [dst]
    assert r1.get("pk") == b"newer"
    src_client = c.nodes[[n.name for n in c.nodes].index(src)].client
    assert not src_client.exists("pk")


def test_a_killed_mover_leaves_every_key_readable_and_the_next_coordinator_finishes():
    c = Cluster(settings={"directory": "{sweep_keys_per_s: 20000}"})
    try:
        c.add_proxy("headroom2")
        r1 = c.proxy.client()
        values = {f"kk{i}": f"value-{i}-" + "z" * (i % 500) for i in range(6000)}
        pipe = r1.pipeline(transaction=False)
        for k, v in values.items():
            pipe.set(k, v)
        pipe.execute()
        coordinator = next(p for p in c.proxies if nodes_report(p.client())["mover"]["coordinator"] == "1")
        survivor = next(p for p in c.proxies if p is not coordinator)
        rs = survivor.client(socket_timeout=20)
        rs.execute_command("HEADROOM", "DRAIN", "node2")
        wait_for(lambda: int(nodes_report(coordinator.client())["mover"]["entries_moved"]) > 0, 60, "moves begin")
        coordinator.proc.send_signal(signal.SIGKILL)
        coordinator.proc.wait()
        coordinator.proc = None
        # The survivor takes the lease, finishes what was left moving, and the drain.
        wait_for(lambda: c.nodes[1].client.dbsize() == 0, 180, "node2 drained by the next coordinator")
        wait_for(lambda: settled(c), 60, "no entry moving")
        for k, v in values.items():
            assert rs.get(k) == v.encode(), k
            assert len(c.node_of(k)) == 1, k
    finally:
        c.close()


def test_a_flushall_during_moves_leaves_nothing_behind(two):
    c = two
    r1, r2 = c.proxy.client(), c.proxies[1].client()
    stop = threading.Event()
    names = [n.name for n in c.nodes]

    def mover():
        rnd = random.Random(1)
        while not stop.is_set():
            r2.execute_command("HEADROOM", "MOVE", f"fk{rnd.randrange(300)}", rnd.choice(names))
            time.sleep(0.002)

    for i in range(300):
        r1.set(f"fk{i}", "v")
    t = threading.Thread(target=mover, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        r1.flushall()
        # Acknowledged: no key written before it may be read after it.
        assert all(r1.get(f"fk{i}") is None for i in range(300))
        assert all(r2.get(f"fk{i}") is None for i in range(300))
    finally:
        stop.set()
        t.join()
    wait_settled(c)
    assert sum(n.client.dbsize() for n in c.nodes) == 0


@pytest.mark.parametrize("died_after", ["begin", "copy", "delete"])
def test_a_move_interrupted_at_each_step_is_finished_by_the_coordinator(died_after):
    """The state a mover leaves when it dies after each step, made by hand on real
    servers: the coordinator's sweep finds the moving entry and finishes the move."""
    c = Cluster(settings={"directory": "{sweep_keys_per_s: 20000}"})
    try:
        r = c.proxy.client()
        r.set("ik", "value", ex=500)
        src = c.node_of("ik")[0]
        dst = next(n.name for n in c.nodes if n.name != src)
        by_name = {n.name: n.client for n in c.nodes}
        main = c.main.client
        dump, ttl = by_name[src].dump("ik"), by_name[src].pttl("ik")
        seq = int(main.get("hr:dir:seq"))
        flushes = int(main.get("hr:dir:flushes") or 0)
        main.hset(bucket_of("ik"), "ik", f"{src} {seq} M{dst}:{flushes}")
        if died_after in ("copy", "delete"):
            by_name[dst].restore("ik", ttl, dump, replace=True)
        if died_after == "delete":
            by_name[src].delete("ik")
        wait_for(lambda: entry_of(c, "ik") == dst and main.hget(bucket_of("ik"), "ik").decode().count(" ") == 1,
                 60, f"the move interrupted after {died_after} finished")
        assert c.node_of("ik") == [dst]
        assert by_name[dst].get("ik") == b"value" and 400 < by_name[dst].ttl("ik") <= 500
        assert int(nodes_report(r)["mover"]["entries_finished"]) == 1
    finally:
        c.close()


def test_colocation_on_demand_moves_the_keys_together_and_runs_the_command():
    c = Cluster(settings={"rebalance": "{enabled: false, colocate: true}"})
    try:
        c.add_proxy("headroom2")
        r1, r2 = c.proxy.client(), c.proxies[1].client()
        # Two keys on different nodes (placed apart by the emptiest-node rule).
        r1.sadd("ca", "1", "2")
        for i in range(50):
            r1.sadd(f"cb{i}", "3")
            if c.node_of(f"cb{i}") != c.node_of("ca"):
                other = f"cb{i}"
                break
        else:
            pytest.fail("no key was placed on another node")
        assert r2.sunionstore("cu", "ca", other) == 3  # through the other proxy, no CROSSNODE
        # The moved key's entry names its new node from the commit, which lets the
        # command run; its source copy (no entry names it) goes just after.
        assert entry_of(c, "ca") == entry_of(c, other) == c.node_of("cu")[0]
        wait_for(lambda: c.node_of("ca") == c.node_of(other) == c.node_of("cu"), 30, "the source copy deleted")
        assert r1.smembers("cu") == {b"1", b"2", b"3"}
        assert r1.rename(other, "renamed") is True
        assert r2.info("stats")["total_colocations"] >= 1
        assert int(r1.info("moves")["mover_entries_moved"]) + int(r2.info("moves")["mover_entries_moved"]) >= 1
    finally:
        c.close()


def test_without_colocation_a_crossnode_command_is_refused(two):
    r = two.proxy.client()
    r.sadd("xa", "1")
    for i in range(50):
        r.sadd(f"xb{i}", "3")
        if two.node_of(f"xb{i}") != two.node_of("xa"):
            with pytest.raises(redis.ResponseError, match="CROSSNODE"):
                r.sunionstore("xu", "xa", f"xb{i}")
            return
    pytest.fail("no key was placed on another node")


def test_checker_while_the_mover_is_killed_and_a_proxy_paused_mid_move():
    """Three proxies: the first (the coordinator, so the mover) takes no client; the
    clients use the other two. While keys move, the mover is killed (SIGKILL) and later
    a client proxy is paused for 1.5 s: no lost write, no stale read, and the next
    coordinator finishes what was left moving."""
    c = Cluster()
    try:
        c.add_proxy("headroom2")
        c.add_proxy("headroom3")
        wait_for(lambda: nodes_report(c.proxy.client())["mover"]["coordinator"] == "1", 30, "the first proxy leads")
        serving = c.proxies[1:]
        clients = [p.client() for p in serving]
        names = [n.name for n in c.nodes]
        events = []

        def during(keys, done):
            rnd = random.Random(11)
            start = time.time()
            killed = paused = False
            while not done.is_set():
                ask_random_move(rnd, clients, keys, names)
                t = time.time() - start
                if not killed and t > 1.5:
                    c.proxy.proc.send_signal(signal.SIGKILL)
                    c.proxy.proc.wait()
                    c.proxy.proc = None
                    killed = True
                    events.append("killed the mover")
                if killed and not paused and t > 5 and nodes_report(clients[0])["mover"]["coordinator"] + \
                        nodes_report(clients[1])["mover"]["coordinator"] != "00":
                    serving[1].proc.send_signal(signal.SIGSTOP)
                    time.sleep(1.5)
                    serving[1].proc.send_signal(signal.SIGCONT)
                    paused = True
                    events.append("paused a proxy")
                time.sleep(0.01)
            wait_settled(c, timeout=120)

        result = run_checker(c, serving, clients=6, ops=60_000, keys=200, seed=5, flushes=2, during=during)
        print(result.report())
        print(events)
        assert result.ok, result.report()
        assert_every_family_checked(result)
        assert "killed the mover" in events
        moved = sum(int(nodes_report(p.client())["mover"]["entries_moved"]) for p in serving)
        assert moved > 0
    finally:
        c.close()


def cut_connections(client, name):
    """Kills every connection named `name` on the server `client` talks to; how many."""
    ids = [c["id"] for c in client.client_list() if c.get("name") == name]
    for i in ids:
        try:
            client.execute_command("CLIENT", "KILL", "ID", i)
        except redis.ResponseError:
            pass  # gone already
    return len(ids)


def test_checker_while_the_coordinators_main_server_connection_is_cut_mid_move(two):
    """Two proxies; while keys move back and forth, the coordinators' connection to
    the main server (the lease, the mover's begins, commits and clean-ups) is cut again
    and again, so what the mover asked goes unanswered at every step: once the cuts
    stop, every move settles (nothing left moving, nothing left to clean up), with no
    lost write and no stale read."""
    c = two
    clients = [p.client() for p in c.proxies]
    names = [n.name for n in c.nodes]
    cuts = [0]

    def during(keys, done):
        rnd = random.Random(13)
        killer = redis.Redis(port=c.main.port, socket_timeout=10)
        start = time.time()
        while not done.is_set():
            for _ in range(20):
                ask_random_move(rnd, clients, keys, names)
                time.sleep(0.01)
            if time.time() - start < 10:  # the run's first half
                cuts[0] += cut_connections(killer, "hr-coordinator")
        killer.close()
        wait_settled(c, timeout=90)

    before = moved_entries(c)
    result = run_checker(c, c.proxies, clients=6, duration=20, keys=200, seed=17, flushes=2, during=during)
    print(result.report())
    moved = moved_entries(c) - before
    print(f"coordinator connections cut {cuts[0]} times, entries moved {moved}")
    assert result.ok, result.report()
    assert cuts[0] >= 8, cuts[0]
    assert moved >= 20, moved


def test_moves_settle_after_the_coordinators_main_server_connection_drops_mid_step():
    """The main server stalls writes for a moment (CLIENT PAUSE WRITE), so the mover's
    step there (a begin, a holds check, a commit, an undo) is in flight, and the
    coordinator's connection to it is cut then: each batch fails at whatever step it
    was, and with the connection back (the lease kept) every move settles and every
    key reads what was written."""
    c = Cluster()
    try:
        c.add_proxy("headroom2")
        r1 = c.proxy.client(socket_timeout=20)
        values = {f"sk{i}": f"v{i}" for i in range(300)}
        pipe = r1.pipeline(transaction=False)
        for k, v in values.items():
            pipe.set(k, v)
        pipe.execute()
        clients = [p.client(socket_timeout=20) for p in c.proxies]
        names = [n.name for n in c.nodes]
        done = threading.Event()
        asked = [0]

        def mover():
            rnd = random.Random(19)
            while not done.is_set():
                try:
                    ask_random_move(rnd, clients, list(values), names)
                    asked[0] += 1
                except redis.RedisError:
                    pass  # refused while the main server stalls: asked again
                time.sleep(0.005)

        t = threading.Thread(target=mover)
        t.start()
        try:
            wait_for(lambda: moved_entries(c) >= 20, 60, "moves under way")
            for _ in range(10):
                c.main.client.execute_command("CLIENT", "PAUSE", "300", "WRITE")
                time.sleep(0.2)
                cut_connections(c.main.client, "hr-coordinator")
                time.sleep(1.2)
        finally:
            done.set()
            t.join()
        wait_settled(c, timeout=60)
        for r in clients:
            got = r.mget(list(values))
            assert got == [v.encode() for v in values.values()]
        for k in values:
            assert len(c.node_of(k)) == 1, (k, c.node_of(k))
        print(f"moves asked {asked[0]}, entries moved {moved_entries(c)}")
    finally:
        c.close()


def mover_counters(c):
    """The mover's counters summed over every running proxy (each counts its own
    moves while it coordinates)."""
    total = {}
    for p in c.proxies:
        if p.proc is None:
            continue
        for k, v in nodes_report(p.client(socket_timeout=10))["mover"].items():
            if k in ("entries_moved", "entries_undone", "entries_finished", "errors"):
                total[k] = total.get(k, 0) + int(v)
    return total


def test_checker_while_a_data_node_is_killed_mid_move():
    """Three proxies, data nodes with an AOF fsynced at every write (`appendfsync
    always`: an acknowledged write survives a kill -9, as on a production node with
    persistence). While keys move back and forth, moves to and from node2 are asked
    and node2 is killed (SIGKILL) while they are under way, then restarted on the same
    port with the same data directory; the clients run throughout. Operations that
    fail while it is down count as maybe-happened. Afterwards: no lost write, no stale
    read, every key on exactly one node, the one its entry names."""
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    c = Cluster(node_extra=aof)
    try:
        c.add_proxy("headroom2")
        c.add_proxy("headroom3")
        clients = [p.client(socket_timeout=20) for p in c.proxies]
        names = [n.name for n in c.nodes]
        victim = c.nodes[1]
        events = []
        refused = [0]

        def ask(key, node):
            try:
                random.choice(clients).execute_command("HEADROOM", "MOVE", key, node)
            except redis.ResponseError:
                refused[0] += 1  # e.g. while node2 is down

        def moving():
            return max(int(nodes_report(r)["mover"]["moving_now"]) for r in clients)

        def during(keys, done):
            rnd = random.Random(17)
            start = time.time()
            killed = False
            while not done.is_set():
                if not killed and time.time() - start > 2:
                    # Moves to node2 and from it (the run's keys it holds now), and the
                    # kill as soon as one of them is seen moving (at most 5 s later).
                    pipe = victim.client.pipeline(transaction=False)
                    for k in keys:
                        pipe.exists(k)
                    on_victim = [k for k, n in zip(keys, pipe.execute()) if n]
                    for k in rnd.sample(on_victim, min(20, len(on_victim))):
                        ask(k, rnd.choice([n for n in names if n != victim.name]))
                    for k in rnd.sample(keys, 20):
                        ask(k, victim.name)
                    deadline = time.time() + 5
                    while (n := moving()) == 0 and time.time() < deadline:
                        time.sleep(0.001)
                    victim.kill()
                    killed = True
                    events.append(f"killed {victim.name} ({n} entries moving)")
                    down = time.time()
                    while time.time() - down < 1.5 and not done.is_set():
                        ask(rnd.choice(keys), rnd.choice(names))  # moves go on meanwhile
                        time.sleep(0.01)
                    victim.start()
                    events.append(f"restarted {victim.name}" + (" after the clients stopped" if done.is_set() else ""))
                ask(rnd.choice(keys), rnd.choice(names))
                time.sleep(0.01)
            for p in c.proxies:
                p.wait_nodes_up(timeout=60)
            wait_settled(c, timeout=120)

        result = run_checker(c, c.proxies, clients=6, ops=60_000, keys=200, seed=7, flushes=3, during=during,
                             max_failed=0.1)
        print(result.report())
        counters = mover_counters(c)
        print(events, counters, f"moves refused: {refused[0]}")
        assert result.ok, result.report()
        assert_every_family_checked(result)
        assert events[0].startswith(f"killed {victim.name}") and events[1] == f"restarted {victim.name}", events
        assert counters["entries_moved"] > 0, counters
        assert victim.client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        c.close()


def test_a_key_a_blocked_client_waits_on_does_not_move(two):
    c = two
    r1 = c.proxy.client()
    r2 = c.proxies[1].client(socket_timeout=60)
    got = []
    t = threading.Thread(target=lambda: got.append(r2.blpop("hk", 30)), daemon=True)
    t.start()
    wait_for(lambda: c.main.client.exists(*[f"hr:holds:{i.decode()}" for i in c.main.client.hkeys("hr:proxies")]) > 0,
             30, "the key held")
    where = entry_of(c, "hk")
    other = next(n.name for n in c.nodes if n.name != where)
    r1.execute_command("HEADROOM", "MOVE", "hk", other)
    wait_settled(c)
    assert entry_of(c, "hk") == where
    r1.lpush("hk", "v")
    t.join(30)
    assert got == [(b"hk", b"v")]

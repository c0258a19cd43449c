"""MULTI/EXEC/DISCARD through headroom (issue 13): a transaction whose keys live, or
will be placed, on one node runs there, atomically, as one MULTI ... EXEC block; a
command whose key lives on another node is a queued error (CROSSNODE) and EXEC then
discards the whole transaction, as Redis discards one with a bad command. Nothing of
a refused transaction runs."""
import pytest
import redis

from cluster import keys_on_two_nodes as cluster_keys_on_two_nodes, leased, wait_for


def shown(value):
    """A reply with its errors as text (redis-py strips ERR and EXECABORT, keeps the class)."""
    if isinstance(value, redis.ResponseError):
        return f"error: {type(value).__name__}: {value}"
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


EXECABORT = "error: ExecAbortError: Transaction discarded because of previous errors."


def run_on_one_connection(client, commands):
    """Every reply of `commands`, sent one after the other on one connection."""
    conn = client.connection_pool.get_connection("MULTI")
    out = []
    try:
        for cmd in commands:
            conn.send_command(*cmd)
            try:
                out.append(shown(conn.read_response()))
            except redis.ResponseError as e:
                out.append(shown(e))
    finally:
        client.connection_pool.release(conn)
    return out


def keys_on_two_nodes(c, r):
    """Two existing keys that headroom placed on different nodes: "tx:a" is "a0", the other "b0"."""
    return "tx:a", cluster_keys_on_two_nodes(c, r, "tx:a", "tx", lambda k: r.set(k, "a0" if k == "tx:a" else "b0"))


def test_redis_pys_default_pipeline_is_a_transaction_on_one_node(clean, r, ref):
    for client in (r, ref):
        p = client.pipeline()  # transaction=True: MULTI ... EXEC
        p.set("tx1", "v").incr("tx2").get("tx1").lpush("tx3", "a", "b").lrange("tx3", 0, -1)
        assert p.execute() == [True, 1, "v", 2, ["b", "a"]]
    # new keys of one transaction are placed together
    assert len({tuple(clean.node_of(k)) for k in ("tx1", "tx2", "tx3")}) == 1


def test_a_transaction_refused_for_a_key_on_another_node_writes_nothing(clean, r):
    a, b = keys_on_two_nodes(clean, r)
    out = run_on_one_connection(r, [("MULTI",), ("SET", a, "a1"), ("INCR", "tx:new"), ("SET", b, "b1"),
                                    ("EXEC",)])
    assert out[:3] == ["OK", "QUEUED", "QUEUED"], out
    assert out[3].startswith("error: ResponseError: CROSSNODE") and a in out[3] and b in out[3], out
    assert out[4] == EXECABORT, out
    assert r.get(a) == "a0" and r.get(b) == "b0" and r.get("tx:new") is None
    # the connection is out of the transaction: it serves commands again
    assert r.set(a, "a2") is True and r.get(a) == "a2"


def test_redis_pys_pipeline_over_keys_on_two_nodes_raises_and_writes_nothing(clean, r):
    a, b = keys_on_two_nodes(clean, r)
    p = r.pipeline()
    p.set(a, "a1").set(b, "b1")
    with pytest.raises(redis.ResponseError):
        p.execute()
    assert r.get(a) == "a0" and r.get(b) == "b0"


def test_transaction_answers_as_redis(clean, r, ref):
    script = [
        ("EXEC",), ("DISCARD",),
        ("MULTI",), ("MULTI",), ("SET", "k", "v"), ("NOSUCHCOMMAND", "x"), ("EXEC",), ("GET", "k"),
        ("MULTI",), ("SET", "k", "1"), ("INCR", "k"), ("DISCARD",), ("GET", "k"),
        ("MULTI",), ("SET", "k", "1"), ("GET",), ("EXEC",), ("GET", "k"),
        ("MULTI",), ("SET", "k", "1"), ("LPUSH", "k", "x"), ("INCR", "k"), ("PING",), ("ECHO", "e"), ("EXEC",),
        ("MULTI",), ("EXEC",),
        ("MULTI",), ("GET", "absent"), ("EXISTS", "k", "absent"), ("DEL", "k"), ("EXEC",),
        ("MULTI",), ("SET", "{t}a", "1"), ("SET", "{t}b", "2"), ("MGET", "{t}a", "{t}b"), ("RENAME", "{t}a", "{t}c"),
        ("EXEC",),
    ]
    got = run_on_one_connection(r, script)
    want = run_on_one_connection(ref, script)
    assert got == want


def test_a_transactions_new_keys_go_to_the_node_of_its_existing_key(clean, r):
    a, _ = keys_on_two_nodes(clean, r)
    (node,) = clean.node_of(a)
    p = r.pipeline()
    p.get(a)
    for i in range(30):
        p.set(f"tx:with-a:{i}", i)
    assert p.execute() == ["a0"] + [True] * 30
    assert {tuple(clean.node_of(f"tx:with-a:{i}")) for i in range(30)} == {(node,)}


def test_commands_headroom_cannot_run_in_a_transaction_abort_it(clean, r):
    out = run_on_one_connection(r, [("SET", "k", "0"), ("MULTI",), ("INCR", "k"), ("DBSIZE",), ("EXEC",),
                                    ("GET", "k")])
    assert out[0] == "OK" and out[1] == "OK" and out[2] == "QUEUED"
    assert out[3].startswith("error: ResponseError") and "dbsize" in out[3] and "transaction" in out[3], out
    assert out[4] == EXECABORT
    assert out[5] == "0"


# --- WATCH: a connection of the client's own to the watched keys' node


def test_watch_then_exec_as_redis_with_and_without_a_change(clean, r, ref, cluster):
    other = clean.proxy.client(decode_responses=True)
    results = []
    for client, writer in ((r, other), (ref, ref)):
        client.set("w:k", "1")
        conn = client.connection_pool.get_connection("WATCH")
        out = []
        try:
            for change in (False, True):
                for cmd in (("WATCH", "w:k"), ("GET", "w:k")):
                    conn.send_command(*cmd)
                    out.append(conn.read_response())
                if change:
                    writer.set("w:k", "changed")  # another client, between WATCH and EXEC
                for cmd in (("MULTI",), ("SET", "w:k", "mine"), ("EXEC",), ("GET", "w:k")):
                    conn.send_command(*cmd)
                    out.append(shown(conn.read_response()))
            for cmd in (("WATCH", "w:k"), ("UNWATCH",), ("MULTI",), ("INCR", "w:n"), ("EXEC",)):
                conn.send_command(*cmd)
                out.append(shown(conn.read_response()))
            writer.set("w:k", "x")
            for cmd in (("WATCH", "w:k"), ("MULTI",), ("DISCARD",), ("MULTI",), ("INCR", "w:n"), ("EXEC",)):
                conn.send_command(*cmd)
                out.append(shown(conn.read_response()))
        finally:
            client.connection_pool.release(conn)
        results.append(out)
    assert results[0] == results[1]
    assert results[0][10] is None  # the changed key: EXEC answered nil
    wait_for(lambda: leased(r) == 0)


def test_optimistic_increments_through_redis_pys_transaction_helper_lose_nothing(clean, r):
    import threading
    r.set("w:counter", 0)
    errors = []

    def work():
        c = clean.proxy.client(decode_responses=True)
        try:
            for _ in range(40):
                c.transaction(lambda p: (lambda v: (p.multi(), p.set("w:counter", int(v) + 1)))(p.get("w:counter")),
                              "w:counter")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert r.get("w:counter") == "160"
    wait_for(lambda: leased(r) == 0)


def test_watch_of_keys_on_two_nodes_is_crossnode(clean, r):
    a, b = keys_on_two_nodes(clean, r)
    assert run_on_one_connection(r, [("WATCH", a, b)])[0].startswith("error: ResponseError: CROSSNODE")
    out = run_on_one_connection(r, [("WATCH", a), ("WATCH", b), ("MULTI",), ("SET", a, "1"), ("SET", b, "1"),
                                    ("EXEC",), ("GET", a)])
    assert out[0] == "OK" and out[1].startswith("error: ResponseError: CROSSNODE"), out
    assert out[4].startswith("error: ResponseError: CROSSNODE") and out[5] == EXECABORT and out[6] == "a0", out


def test_a_watched_missing_key_created_elsewhere_aborts_the_transaction(clean, r):
    other = clean.add_proxy("watch-other") if len(clean.proxies) < 2 else clean.proxies[1]
    b = other.client(decode_responses=True)
    conn = r.connection_pool.get_connection("WATCH")
    try:
        for name in ("w:new1", "w:new2", "w:new3"):
            conn.send_command("WATCH", name)
            assert conn.read_response() == "OK"
            assert b.set(name, "theirs") is True  # created by another client, through another proxy
            for cmd in (("MULTI",), ("SET", name, "mine")):
                conn.send_command(*cmd)
                conn.read_response()
            conn.send_command("EXEC")
            assert conn.read_response() is None
            assert r.get(name) == "theirs"
        # the same when the transaction does not touch the watched key
        for name in ("w:new4", "w:new5", "w:new6"):
            conn.send_command("WATCH", name)
            assert conn.read_response() == "OK"
            assert b.set(name, "theirs") is True
            for cmd in (("MULTI",), ("INCR", f"{name}:other")):
                conn.send_command(*cmd)
                conn.read_response()
            conn.send_command("EXEC")
            assert conn.read_response() is None
            assert r.get(f"{name}:other") is None
    finally:
        r.connection_pool.release(conn)


def test_a_client_that_leaves_while_watching_gives_its_lease_back(clean, r):
    import socket
    before = leased(r)
    s = socket.create_connection(("127.0.0.1", clean.proxy.port))
    s.sendall(b"WATCH w:gone\r\n")
    assert s.recv(100) == b"+OK\r\n"
    assert leased(r) == before + 1
    s.close()
    wait_for(lambda: leased(r) == before)


def test_leases_are_bounded_per_node(own):
    c = own(settings={"limits": "{max_leases_per_node: 2}"})
    c.proxy.wait_nodes_up()
    r = c.proxy.client(decode_responses=True)
    r.set("{w}a", "1")
    holders = [c.proxy.client(decode_responses=True).connection_pool.get_connection("WATCH") for _ in range(3)]
    replies = []
    for h in holders:
        h.send_command("WATCH", "{w}a")
        try:
            replies.append(h.read_response())
        except redis.ResponseError as e:
            replies.append(str(e))
    assert replies[:2] == ["OK", "OK"]
    assert "max_leases_per_node" in replies[2], replies
    for h in holders:
        h.disconnect()
    wait_for(lambda: leased(r) == 0)
    assert run_on_one_connection(r, [("WATCH", "{w}a")]) == ["OK"]


def test_a_pipeline_moving_onto_a_lease_keeps_its_order(clean, r, ref):
    """The commands before a WATCH or a blocking call went on the shared connection:
    the lease waits for them, so none is overtaken (the INCR before WATCH must not break
    the watch, and GET sees it)."""
    script = [("SET", "lo:k", "1"), ("INCR", "lo:k"), ("WATCH", "lo:k"), ("GET", "lo:k"), ("MULTI",),
              ("SET", "lo:k", "x"), ("EXEC",), ("DEL", "lo:q"), ("RPUSH", "lo:q", "a"), ("BLPOP", "lo:q", "0"),
              ("WATCH", "lo:k"), ("MULTI",), ("INCR", "lo:n"), ("EXEC",), ("BLPOP", "lo:q2", "0.1"),
              ("GET", "lo:k")]

    def pipelined(client):
        conn = client.connection_pool.get_connection("SET")
        try:
            conn.send_packed_command(conn.pack_commands(script))
            out = []
            for _ in script:
                try:
                    out.append(shown(conn.read_response()))
                except redis.ResponseError as e:
                    out.append(shown(e))
            return out
        finally:
            client.connection_pool.release(conn)

    for _ in range(5):
        assert pipelined(r) == pipelined(ref)
    wait_for(lambda: leased(r) == 0)

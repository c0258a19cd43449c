"""MULTI/EXEC/DISCARD through headroom (issue 13): a transaction whose keys live, or
will be placed, on one node runs there, atomically, as one MULTI ... EXEC block; a
command whose key lives on another node is a queued error (CROSSNODE) and EXEC then
discards the whole transaction, as Redis discards one with a bad command. Nothing of
a refused transaction runs."""
import pytest
import redis


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
    """Two existing keys that headroom placed on different nodes: "tx:a" is "a0", the
    other "b0" (a megabyte beside the first makes its node no longer the emptiest)."""
    r.set("tx:a", "a0")
    (first,) = c.node_of("tx:a")
    for i in range(20):
        r.set(f"tx:fill{i}", "x" * 1_000_000)
        k = f"tx:b{i}"
        r.set(k, "b0")
        if c.node_of(k) != [first]:
            return "tx:a", k
    pytest.fail("20 new keys of a megabyte all went to one node")


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

"""Keys that share a hash tag share a node, so multi-key commands work on them;
the same commands over keys on different nodes get a clear CROSSNODE error."""
import pytest
import redis


def test_tagged_keys_share_a_node(r, clean):
    for i in range(30):
        r.set(f"{{user:{i}}}:profile", "p" * 2000)
        r.sadd(f"{{user:{i}}}:cart", "a", "b")
        r.rpush(f"list:{{user:{i}}}", "x")
    for i in range(30):
        where = {n for k in (f"{{user:{i}}}:profile", f"{{user:{i}}}:cart", f"list:{{user:{i}}}")
                 for n in clean.node_of(k)}
        assert len(where) == 1


def test_multi_key_commands_within_a_tag(r):
    r.sadd("{t}:a", "1", "2")
    r.sadd("{t}:b", "2", "3")
    assert r.sunionstore("{t}:u", "{t}:a", "{t}:b") == 3
    assert r.smove("{t}:a", "{t}:b", "1") is True
    r.rpush("{t}:l1", "x", "y")
    assert r.lmove("{t}:l1", "{t}:l2", "LEFT", "RIGHT") == "x"
    assert r.rename("{t}:l2", "{t}:l3") is True
    assert r.lrange("{t}:l3", 0, -1) == ["x"]
    assert r.eval("return redis.call('scard', KEYS[1]) + redis.call('scard', KEYS[2])", 2, "{t}:a", "{t}:b") == 4
    assert r.msetnx({"{t}:m1": "1", "{t}:m2": "2"}) is True


def test_crossnode_commands_get_a_clear_error(r, clean):
    # Fill enough that keys spread, then find two keys on different nodes.
    for start in range(0, 400, 50):
        p = r.pipeline(transaction=False)
        for i in range(start, start + 50):
            p.set(f"far{i}", "x" * 4000)
        p.execute()
    by_node = {}
    for i in range(400):
        by_node.setdefault(clean.node_of(f"far{i}")[0], f"far{i}")
    assert len(by_node) >= 2
    a, b = list(by_node.values())[:2]
    for cmd in (("RENAME", a, b), ("SUNIONSTORE", a, a, b), ("LMOVE", a, b, "LEFT", "LEFT"),
                ("EVAL", "return 1", "2", a, b), ("MSETNX", a, "1", b, "2")):
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*cmd)
        assert str(e.value).startswith("CROSSNODE"), (cmd, str(e.value))
    # nothing was changed by the refused commands
    assert r.get(a) == "x" * 4000 and r.get(b) == "x" * 4000


def test_new_destination_key_is_placed_with_its_sources(r, clean):
    r.set("src", "v" * 100)
    assert r.rename("src", "brand-new-dest") is True
    assert clean.node_of("brand-new-dest") and r.get("brand-new-dest") == "v" * 100
    r.sadd("s-a", "1")
    assert r.sunionstore("s-dest", "s-a") == 1
    assert clean.node_of("s-dest") == clean.node_of("s-a")

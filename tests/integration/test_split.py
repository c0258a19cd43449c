"""MGET/MSET/DEL/EXISTS/UNLINK/TOUCH over keys on all four nodes: one fragment per
node, replies merged in the client's key order."""


def spread_keys(r, clean, n=400):
    # 400 keys of 30 KB: enough to outweigh the nodes' baseline differences (a node's
    # used_memory counts the query buffer a big pipeline left behind)
    for start in range(0, n, 50):
        p = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 50)):
            p.set(f"k{i}", f"v{i}" + "x" * 30000)
        p.execute()
    nodes = {i: clean.node_of(f"k{i}")[0] for i in range(n)}
    if n >= 400:
        assert set(nodes.values()) == {"node1", "node2", "node3", "node4"}
    return nodes


def test_mget_over_all_nodes_in_key_order(r, clean):
    spread_keys(r, clean)
    keys = [f"k{i}" for i in range(0, 400, 3)] + ["missing", "k0", "k0"]
    got = r.mget(keys)
    want = [None if k == "missing" else f"v{k[1:]}" + "x" * 30000 for k in keys]
    assert got == want


def test_mset_then_mget_over_all_nodes(r, clean):
    spread_keys(r, clean)
    mapping = {f"k{i}": f"new{i}" for i in range(0, 400, 2)}
    mapping.update({f"fresh{i}": f"f{i}" for i in range(50)})  # new keys, placed by MSET
    assert r.mset(mapping) is True
    keys = list(mapping)
    assert r.mget(keys) == [mapping[k] for k in keys]
    for i in range(50):
        assert len(clean.node_of(f"fresh{i}")) == 1


def test_del_exists_touch_unlink_sum_over_nodes(r, clean):
    spread_keys(r, clean)
    keys = [f"k{i}" for i in range(40)]
    assert r.exists(*keys, "nope", "k0") == 41  # duplicates count, as in Redis
    assert r.touch(*keys, "nope") == 40
    assert r.delete(*keys[:20], "nope", "k0") == 20
    assert r.unlink(*keys[20:]) == 20
    assert r.exists(*keys) == 0
    assert all(clean.node_of(k) == [] for k in keys)


def test_deleted_key_can_be_created_again_in_one_pipeline(r, clean):
    spread_keys(r, clean, n=100)
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.delete(f"k{i}")
        p.set(f"k{i}", f"again{i}")
        p.get(f"k{i}")
    out = p.execute()
    assert out[2::3] == [f"again{i}" for i in range(100)]
    assert r.mget([f"k{i}" for i in range(100)]) == [f"again{i}" for i in range(100)]

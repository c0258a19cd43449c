"""Commands asked of every data node: SCAN (a cursor that walks node by node and
visits every key once), DBSIZE, KEYS, RANDOMKEY, FLUSHALL."""

import time

from cluster import bucket_of, entry_node

# What the main server holds besides the directory's buckets (docs/directory.md).
HEADROOM_KEYS = {b"hr:dir:layout", b"hr:dir:seq", b"hr:dir:flushed", b"hr:proxies", b"hr:coordinator",
                 b"hr:coordinator:token", b"hr:dir:flushes", b"hr:nodes", b"hr:proxy_nodes"}


def load(r, n=2000):
    # 10 MB for 2000 keys: enough to spread over all four nodes
    for start in range(0, n, 250):
        p = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 250)):
            p.set(f"scan:{i}", "x" * 5000)
            if i % 10 == 0:
                p.hset(f"hscan:{i}", "f", "v")
        p.execute()


def test_scan_visits_every_key_exactly_once(r, clean):
    load(r)
    seen = []
    cursor = 0
    calls = 0
    while True:
        cursor, keys = r.scan(cursor, count=100)
        seen.extend(keys)
        calls += 1
        if cursor == 0:
            break
        assert calls < 10000
    assert len(seen) == len(set(seen))  # Redis may return a key twice only on rehash; none here
    assert set(seen) == {f"scan:{i}" for i in range(2000)} | {f"hscan:{i}" for i in range(0, 2000, 10)}
    holders = {n for i in range(0, 2000, 50) for n in clean.node_of(f"scan:{i}")}
    assert len(holders) == 4


def test_scan_match_and_type(r, clean):
    load(r, 500)
    matched = set(r.scan_iter(match="hscan:*", count=50))
    assert matched == {f"hscan:{i}" for i in range(0, 500, 10)}
    typed = set(r.scan_iter(_type="hash", count=50))
    assert typed == matched


def test_invalid_scan_cursor(r):
    import pytest
    import redis
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "abc")
    with pytest.raises(redis.ResponseError, match="invalid cursor"):
        r.execute_command("SCAN", "255")  # names a node that does not exist


def test_dbsize_keys_randomkey(r, clean):
    load(r, 800)
    total = sum(n.client.dbsize() for n in clean.nodes)
    assert r.dbsize() == total == 880
    assert set(r.keys("*")) == {f"scan:{i}" for i in range(800)} | {f"hscan:{i}" for i in range(0, 800, 10)}
    assert r.exists(r.randomkey()) == 1


def test_flushall_empties_every_node_and_the_directory(r, clean):
    load(r, 300)
    assert r.flushall() is True
    assert r.dbsize() == 0
    assert all(n.client.dbsize() == 0 for n in clean.nodes)
    assert r.randomkey() is None
    # Every entry retires at once; the coordinator removes them as it confirms their
    # keys are gone: the directory empties, its bookkeeping stays.
    deadline = time.time() + 30
    while set(clean.main.client.keys("*")) - HEADROOM_KEYS:
        assert time.time() < deadline, (len(set(clean.main.client.keys("*")) - HEADROOM_KEYS),
                                        [p.client().info("directory") for p in clean.proxies],
                                        clean.main.client.hgetall("hr:proxies"), clean.main.client.get("hr:coordinator"))
        time.sleep(0.1)
    assert int(clean.proxy.client().info("directory")["directory_entries"]) == 0


def test_keys_written_again_after_flushall_in_one_pipeline_are_in_the_directory(r, clean):
    # The second SETs' placements start while the first are still placing, before
    # FLUSHALL runs; a placement answered before the flush must not leave an entry in
    # the cache that the main server no longer has (other proxies could not find it).
    keys = [f"reflush:{i}" for i in range(300)]
    p = r.pipeline(transaction=False)
    for k in keys:
        p.set(k, "before")
    p.flushall()
    for k in keys:
        p.set(k, "after")
    out = p.execute()
    assert out[len(keys)] is True
    assert r.mget(keys) == ["after"] * len(keys)
    for k in keys:
        holders = clean.node_of(k)
        assert len(holders) == 1, (k, holders)
        entry = clean.main.client.hget(bucket_of(k), k)
        assert entry_node(entry) == holders[0], (k, entry, holders)


"""Several headroom instances on the same backends agree on every key's node, and a
restarted headroom finds every key again."""
import re
import threading
import time

import redis

from cluster import bucket_of, read


def test_two_proxies_placing_the_same_new_keys_agree(clean):
    second = clean.add_proxy("headroom-second") if len(clean.proxies) < 2 else clean.proxies[1]
    # A third proxy places nothing: it knows the keys only from the change events the
    # placements publish, including those rebuilt when some keys of a batch were taken.
    observer = clean.add_proxy("headroom-observer")
    a = clean.proxy.client(decode_responses=True)
    b = second.client(decode_responses=True)
    keys = [f"race:{i}" for i in range(2000)]
    errors = []

    def writer(client, tag):
        try:
            for start in range(0, len(keys), 100):
                p = client.pipeline(transaction=False)
                for k in keys[start:start + 100]:
                    p.set(k, f"{tag}" + "z" * 500)
                p.execute()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ta = threading.Thread(target=writer, args=(a, "A"))
    tb = threading.Thread(target=writer, args=(b, "B"))
    ta.start(), tb.start()
    ta.join(), tb.join()
    assert not errors
    for k in keys:
        homes = clean.node_of(k)
        assert len(homes) == 1, (k, homes)
    va, vb = a.mget(keys), b.mget(keys)
    assert va == vb
    assert all(v is not None for v in va)
    assert observer.client(decode_responses=True).mget(keys) == va
    observer.stop()
    clean.proxies.remove(observer)


def test_restarted_proxy_finds_every_key(clean):
    r = clean.proxy.client(decode_responses=True)
    p = r.pipeline(transaction=False)
    for i in range(3000):
        p.set(f"persist:{i}", f"value-{i}" + "p" * 1000)
    p.hset("{tag}:h", "f", "v")
    p.execute()
    where = {i: clean.node_of(f"persist:{i}") for i in range(0, 3000, 37)}
    clean.proxy.restart()
    r = clean.proxy.client(decode_responses=True)
    assert r.mget([f"persist:{i}" for i in range(3000)]) == [f"value-{i}" + "p" * 1000 for i in range(3000)]
    assert r.hget("{tag}:h", "f") == "v"
    # writes after the restart go to the same node, never a second copy elsewhere
    for i in where:
        r.set(f"persist:{i}", "updated")
        assert clean.node_of(f"persist:{i}") == where[i]


def test_entries_deleted_while_a_proxy_was_not_listening_are_dropped_on_reload(clean):
    second = clean.add_proxy("headroom-stale")
    a = clean.proxy.client(decode_responses=True)
    b = second.client(decode_responses=True)
    assert a.set("stale:k", "v") is True
    assert b.get("stale:k") == "v"
    # The key and its entry vanish behind every proxy's back (no removal is published).
    # The key goes first: a key on a node with no entry is an orphan the coordinator's
    # sweep adopts (it gave the entry back in one run), while an entry whose key is gone
    # only retires, and is removed no sooner than every proxy has acknowledged that.
    bucket = bucket_of("stale:k")
    for n in clean.nodes:
        n.client.delete("stale:k")
    assert clean.main.client.hdel(bucket, "stale:k") == 1
    # ...then the proxies' subscriptions drop: each resubscribes and reloads, and the
    # reload drops the entry nothing on the main server names any more.
    clean.main.client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    deadline = time.time() + 20
    for p in (second, clean.proxy):
        while not re.search(r"\d+ removed meanwhile dropped", read(p.log)):
            assert time.time() < deadline, read(p.log)
            time.sleep(0.1)
    # A write is now a placement again: the main server has the entry, so every
    # proxy finds the key (written through the stale entry, it would have none).
    assert b.set("stale:k", "again") is True
    assert clean.main.client.hget(bucket, "stale:k") is not None
    assert a.get("stale:k") == "again"
    assert len(clean.node_of("stale:k")) == 1
    second.stop()
    clean.proxies.remove(second)


def test_a_flush_behind_a_freshly_loaded_proxy_is_noticed_at_the_first_change(clean):
    # A proxy that has loaded the directory and seen no change message since knows only
    # the numbers of its load. The main server is then flushed behind its back: the
    # placements that follow are numbered from 1 again, below what the load had, and
    # must not be taken for changes the load already held (the key would read as nil).
    second = clean.add_proxy("headroom-fresh")
    a = clean.proxy.client(decode_responses=True)
    for i in range(150):
        assert a.set(f"fresh:{i}", "old") is True  # one placement each: the stream reaches 150
    clean.proxy.restart()
    clean.proxy.wait_current()
    for s in clean.servers:
        s.client.flushall()
    b = second.client(decode_responses=True)
    a = clean.proxy.client(decode_responses=True)
    for i in range(30):
        assert b.set(f"new:{i}", f"v{i}") is True
        deadline = time.time() + 20
        while True:
            # Reloading, the proxy may refuse the read; it never answers nil.
            try:
                got = a.get(f"new:{i}")
                assert got == f"v{i}", f"new:{i} read {got!r} through the proxy that loaded before the flush"
                break
            except redis.ResponseError as e:
                assert "unavailable" in str(e), e
                assert time.time() < deadline, e
                time.sleep(0.05)
    second.stop()
    clean.proxies.remove(second)

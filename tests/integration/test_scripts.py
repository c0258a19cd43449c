"""Scripts and functions through headroom (issue 13): SCRIPT LOAD/EXISTS/FLUSH and
FUNCTION LOAD/DELETE/FLUSH/RESTORE reach every data node, so EVALSHA and FCALL work
wherever their keys live; SCRIPT KILL reaches the node that is busy; redis-py's Lock
(EVALSHA first, SCRIPT LOAD after NOSCRIPT) works unchanged."""
import threading
import time

import pytest
import redis


def library_names(listing):
    """The library names in a FUNCTION LIST reply (flat name/value pairs per library)."""
    names = []
    for lib in listing:
        fields = dict(zip(lib[::2], lib[1::2]))
        name = fields.get("library_name", fields.get(b"library_name"))
        names.append(name.decode() if isinstance(name, bytes) else name)
    return names


def spread_keys(c, r, prefix, count=40):
    """`count` keys written through headroom, on at least two nodes."""
    keys = [f"{prefix}:{i}" for i in range(count)]
    for i, k in enumerate(keys):
        r.set(k, "x" * 20_000 + str(i))
    assert len({n for k in keys for n in c.node_of(k)}) > 1
    return keys


def test_a_loaded_script_runs_by_sha_wherever_its_key_lives(clean, r, ref):
    body = "return redis.call('STRLEN', KEYS[1])"
    sha = r.script_load(body)
    assert sha == ref.script_load(body)
    keys = spread_keys(clean, r, "sha")
    assert [r.evalsha(sha, 1, k) for k in keys] == [20_000 + len(str(i)) for i in range(len(keys))]
    for n in clean.nodes:
        assert n.client.script_exists(sha) == [True]
    assert r.script_exists(sha, "0" * 40) == [True, False]
    assert r.script_flush() is True
    assert r.script_exists(sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha(sha, 1, keys[0])


def test_a_script_missing_on_one_node_is_reported_missing(clean, r):
    body = "return 7"
    sha = clean.nodes[0].client.script_load(body)  # on one node only (another restarted, say)
    assert r.script_exists(sha) == [False]
    assert r.script_load(body) == sha
    assert r.script_exists(sha) == [True]


def test_redis_pys_lock_and_registered_scripts(clean, r):
    r.script_flush()
    lock = r.lock("job:42", timeout=10)
    assert lock.acquire(blocking=False)
    assert not r.lock("job:42", timeout=10).acquire(blocking=False)
    lock.extend(5)
    lock.release()
    assert r.get("job:42") is None
    incr_by = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    keys = spread_keys(clean, r, "reg", 10)
    for k in keys:
        r.set(k, 1)
    assert [incr_by(keys=[k], args=[41]) for k in keys] == [42] * len(keys)


def test_functions_are_loaded_on_every_node(clean, r, ref):
    lib = "#!lua name=hrlib\nredis.register_function('hr_len', function(keys, args) " \
          "return redis.call('STRLEN', keys[1]) end)"
    try:
        assert r.function_load(lib) == "hrlib" == ref.function_load(lib)
        keys = spread_keys(clean, r, "fn", 20)
        assert [r.fcall("hr_len", 1, k) for k in keys] == [20_000 + len(str(i)) for i in range(len(keys))]
        for n in clean.nodes:
            assert library_names(n.client.function_list()) == ["hrlib"]
        assert library_names(r.function_list()) == ["hrlib"]
        dump = r.function_dump()
        assert r.function_delete("hrlib") is True
        with pytest.raises(redis.ResponseError, match="Library not found"):
            r.function_delete("hrlib")
        assert r.function_restore(dump) is True
        assert r.fcall("hr_len", 1, keys[0]) == 20_001
    finally:
        r.function_flush()
        ref.function_flush()
    for n in clean.nodes:
        assert n.client.function_list() == []


def test_script_kill_frees_the_busy_node(own):
    c = own()
    c.proxy.wait_nodes_up()
    for n in c.nodes:
        n.client.config_set("busy-reply-threshold", 200)  # BUSY (and SCRIPT KILL) after 200 ms
    r = c.proxy.client(decode_responses=True, socket_timeout=30)
    r.set("before", "1")
    outcome = {}

    def run_forever():
        try:
            outcome["reply"] = c.proxy.client(socket_timeout=60).eval("while true do end", 0)
        except redis.ResponseError as e:
            outcome["error"] = str(e)

    t = threading.Thread(target=run_forever)
    t.start()
    # NOTBUSY until the script runs, then OK from its node: the script ends killed
    deadline = time.time() + 30
    while t.is_alive():
        try:
            r.script_kill()
        except redis.ResponseError as e:
            assert "NOTBUSY" in str(e) or "BUSY" in str(e), e
        assert time.time() < deadline, "the script was not killed"
        time.sleep(0.1)
    t.join()
    assert "killed" in outcome.get("error", ""), outcome
    # every node serves again, through headroom
    assert r.get("before") == "1"
    for i in range(20):
        r.set(f"after:{i}", i)
    assert r.mget([f"after:{i}" for i in range(20)]) == [str(i) for i in range(20)]
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        r.script_kill()

"""The command table against a live redis-server: no command COMMAND lists is
missing, and every row's arity and key specs are Redis's."""
import json
import os
import subprocess

import pytest
import redis

from cluster import ROOT, RedisServer
import glob
import tempfile


def dump_tool():
    env = os.environ.get("HEADROOM_DUMP_COMMAND_TABLE")
    if env:
        return env
    found = sorted(glob.glob(os.path.join(ROOT, "build*", "dump_command_table")), key=os.path.getmtime, reverse=True)
    if not found:
        pytest.skip("dump_command_table is not built")
    return found[0]


@pytest.fixture(scope="module")
def live():
    d = tempfile.mkdtemp(prefix="headroom-ct-")
    s = RedisServer(d, "table")
    c = redis.Redis(port=s.port)
    c.response_callbacks.pop("COMMAND", None)
    yield c.execute_command("COMMAND")
    s.stop()


@pytest.fixture(scope="module")
def table():
    out = subprocess.run([dump_tool()], capture_output=True, text=True, check=True).stdout
    return {row["name"]: row for row in map(json.loads, out.splitlines())}


def s(x):
    return x.decode() if isinstance(x, bytes) else x


def pairs(lst):
    return {s(lst[i]): lst[i + 1] for i in range(0, len(lst), 2)}


def live_rows(reply):
    for c in reply:
        yield s(c[0]), c
        for sub in (c[9] if len(c) > 9 else []):
            yield s(sub[0]), sub


def expected_specs(raw_specs):
    """Redis's key specs in our vocabulary (unknown and not_key specs have no row form)."""
    out = []
    for raw in raw_specs:
        d = pairs(raw)
        flags = {s(f).lower() for f in d["flags"]}
        bs, fk = pairs(d["begin_search"]), pairs(d["find_keys"])
        if "not_key" in flags or s(bs["type"]) == "unknown":
            continue
        b, f = pairs(bs["spec"]), pairs(fk["spec"])
        spec = {"begin": s(bs["type"]), "find": s(fk["type"])}
        if spec["begin"] == "index":
            spec["index"] = b["index"]
        else:
            spec.update(keyword=s(b["keyword"]), startfrom=b["startfrom"])
        if spec["find"] == "range":
            spec.update(lastkey=f["lastkey"], keystep=f["keystep"], limit=f["limit"])
        else:
            spec.update(keynumidx=f["keynumidx"], firstkey=f["firstkey"], keystep=f["keystep"])
        out.append(spec)
    return out


def test_every_command_has_a_row_with_redis_arity_and_key_specs(live, table):
    problems = []
    for name, c in live_rows(live):
        row = table.get(name)
        if row is None:
            problems.append(f"{name}: missing")
            continue
        if row["arity"] != c[1]:
            problems.append(f"{name}: arity {row['arity']} != {c[1]}")
        ours = [{k: v for k, v in sp.items() if k in want} for sp, want in
                zip([sp for sp in row["key_specs"] if not (name.startswith("sort") and sp["keyword"] == "STORE")],
                    expected_specs(c[8]))]
        if ours != expected_specs(c[8]):
            problems.append(f"{name}: key specs {row['key_specs']} != {expected_specs(c[8])}")
    assert not problems, "\n".join(problems)


def test_routing_of_the_commands_the_design_names(table):
    route = {n: r["route"] for n, r in table.items()}
    SINGLE, SPLIT, SAME, FAN, ANY, LOCAL, REFUSED = range(7)
    for n in ("get", "set", "hset", "lpush", "expire", "xadd", "object|encoding"):
        assert route[n] == SINGLE, n
    for n in ("mget", "mset", "del", "unlink", "exists", "touch"):
        assert route[n] == SPLIT, n
    for n in ("rename", "smove", "lmove", "rpoplpush", "sinterstore", "sunionstore", "sdiffstore", "zunionstore",
              "zinterstore", "zdiffstore", "bitop", "pfmerge", "copy", "geosearchstore", "sort", "eval", "evalsha",
              "fcall", "msetnx"):
        assert route[n] == SAME, n
    for n in ("dbsize", "keys", "scan", "randomkey", "flushdb", "flushall"):
        assert route[n] == FAN, n
    for n in ("ping", "echo", "quit", "select", "hello", "auth", "client|setname", "client|getname", "client|id",
              "client|setinfo", "info"):
        assert route[n] == LOCAL, n
    for n in ("multi", "subscribe", "monitor", "config|get", "cluster|info", "shutdown"):
        assert route[n] == REFUSED, n
    assert route["command"] == ANY

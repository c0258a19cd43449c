"""The command table against a live redis-server: no command COMMAND lists is
missing, every row's arity, flags and key specs are Redis's, and the key positions
resolve_keys finds are the ones COMMAND GETKEYS names."""
import glob
import json
import os
import shutil
import subprocess
import tempfile

import pytest
import redis

from cluster import ROOT, RedisServer

# CommandFlag bits (resp/command_table.h) and the Redis flags they mirror.
FLAG_BITS = {"write": 1 << 0, "readonly": 1 << 1, "denyoom": 1 << 2, "admin": 1 << 3, "noscript": 1 << 4,
             "blocking": 1 << 5, "pubsub": 1 << 6, "movablekeys": 1 << 9, "no_auth": 1 << 10}
DANGEROUS, CONTAINER = 1 << 7, 1 << 8
# headroom's own flags: what the router does with a command, as data.
RUNS_SCRIPT, FLUSHES, BLOCKING_OPTION, OPEN_CONTAINER, REDACT = 1 << 11, 1 << 12, 1 << 13, 1 << 14, 1 << 15
MAY_REPLICATE = 1 << 19  # Redis's MAY_REPLICATE, which COMMAND does not list (CLIENT PAUSE WRITE holds them)
REDIS_BITS = sum(FLAG_BITS.values())
# Rows headroom keeps although this server's COMMAND does not list them: Redis 7.2's
# CLIENT SETINFO (clients send it on connect), and the DEBUG subcommands that name a key.
EXTRA_ROWS = {"client|setinfo", "debug|object", "debug|listpack", "debug|digest-value", "headroom"}  # headroom: our own command
SCRIPT_WRITERS = {"eval", "evalsha", "fcall"}


def dump_tool():
    env = os.environ.get("HEADROOM_DUMP_COMMAND_TABLE")
    if env:
        return env
    found = sorted(glob.glob(os.path.join(ROOT, "build*", "dump_command_table")), key=os.path.getmtime, reverse=True)
    if not found:
        pytest.skip("dump_command_table is not built")
    return found[0]


@pytest.fixture(scope="module")
def server():
    d = tempfile.mkdtemp(prefix="headroom-ct-")
    s = RedisServer(d, "table")
    c = redis.Redis(port=s.port)
    c.response_callbacks.pop("COMMAND", None)  # the raw reply, not redis-py's summary
    yield c
    c.close()
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def live(server):
    return server.execute_command("COMMAND")


@pytest.fixture(scope="module")
def table():
    out = subprocess.run([dump_tool()], capture_output=True, text=True, check=True).stdout
    return {row["name"]: row for row in map(json.loads, out.splitlines())}


def s(x):
    return x.decode() if isinstance(x, bytes) else x


def pairs(lst):
    return {s(lst[i]): lst[i + 1] for i in range(0, len(lst), 2)}


def live_rows(reply):
    """(name, COMMAND entry, is a container) for every command and subcommand."""
    for c in reply:
        subs = c[9] if len(c) > 9 else []
        yield s(c[0]), c, bool(subs)
        for sub in subs:
            yield s(sub[0]), sub, False


def spec_flags(raw):
    return {s(f).lower() for f in pairs(raw)["flags"]}


def expected_specs(raw_specs):
    """Redis's key specs in our vocabulary (unknown and not_key specs have no row form)."""
    out = []
    for raw in raw_specs:
        d = pairs(raw)
        bs, fk = pairs(d["begin_search"]), pairs(d["find_keys"])
        if "not_key" in spec_flags(raw) or s(bs["type"]) == "unknown":
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


def our_specs(name, row):
    """Our specs less the one Redis has no form for (SORT's STORE, added by hand)."""
    return [sp for sp in row["key_specs"] if not (name == "sort" and sp["keyword"] == "STORE")]


def test_every_command_has_a_row_with_redis_arity_and_key_specs(live, table):
    problems = []
    for name, c, _ in live_rows(live):
        row = table.get(name)
        if row is None:
            problems.append(f"{name}: missing")
            continue
        if row["arity"] != c[1]:
            problems.append(f"{name}: arity {row['arity']} != {c[1]}")
        want = expected_specs(c[8])
        ours = [{k: v for k, v in sp.items() if k in w} for sp, w in zip(our_specs(name, row), want)]
        if len(our_specs(name, row)) != len(want) or ours != want:
            problems.append(f"{name}: key specs {row['key_specs']} != {want}")
    assert not problems, "\n".join(problems)


def test_no_rows_beyond_redis(live, table):
    assert set(table) - {name for name, _, _ in live_rows(live)} == EXTRA_ROWS


def test_flags_are_redis(live, table):
    problems = []
    for name, c, container in live_rows(live):
        row = table.get(name)
        if row is None:
            continue  # reported by the test above
        want = sum(bit for f, bit in FLAG_BITS.items() if f in {s(x) for x in c[2]})
        if row["flags"] & REDIS_BITS != want:
            problems.append(f"{name}: flags {row['flags'] & REDIS_BITS:#x} != {want:#x}")
        # An open container (DEBUG) has rows for the subcommands that name a key.
        if bool(row["flags"] & CONTAINER) != (container or bool(row["flags"] & OPEN_CONTAINER)):
            problems.append(f"{name}: container mark {bool(row['flags'] & CONTAINER)} != {container}")
    assert not problems, "\n".join(problems)


def test_headroom_behaviour_is_marked_in_the_table(table):
    def marked(bit):
        return {n for n, r in table.items() if r["flags"] & bit}
    assert marked(RUNS_SCRIPT) == SCRIPT_WRITERS
    assert marked(FLUSHES) == {"flushall", "flushdb"}
    assert marked(BLOCKING_OPTION) == {"xread", "xreadgroup"}
    assert marked(OPEN_CONTAINER) == {"debug"}
    assert marked(REDACT) == {"auth", "hello"}
    assert marked(MAY_REPLICATE) == {"eval", "evalsha", "fcall", "pfcount", "publish", "spublish"}
    assert marked(FLAG_BITS["no_auth"]) == {"auth", "hello", "quit", "reset"}


def test_may_create_follows_the_key_spec_flags(live, table):
    problems = []
    for name, c, _ in live_rows(live):
        row = table.get(name)
        if row is None:
            continue
        cmd_flags = {s(x) for x in c[2]}
        raws = [raw for raw in c[8] if "not_key" not in spec_flags(raw) and
                s(pairs(pairs(raw)["begin_search"])["type"]) != "unknown"]
        for raw, sp in zip(raws, our_specs(name, row)):
            f = spec_flags(raw)
            want = ("insert" in f or "ow" in f or ("update" in f and "denyoom" in cmd_flags) or
                    ("update" in f and name in SCRIPT_WRITERS))
            if sp["may_create"] != want:
                problems.append(f"{name}: may_create {sp['may_create']} but spec flags {sorted(f)}")
    assert not problems, "\n".join(problems)


def test_dangerous_commands_are_marked(table):
    marked = {n.split("|")[0] for n, r in table.items() if r["flags"] & DANGEROUS}
    assert marked == {"flushall", "flushdb", "keys", "config", "debug", "shutdown", "monitor"}


def test_routing_of_the_commands_the_design_names(table):
    route = {n: r["route"] for n, r in table.items()}
    SINGLE, SPLIT, SAME, FAN, ANY, LOCAL, TRANSACTION, PUBSUB, REFUSED = range(9)
    for n in ("get", "set", "hset", "lpush", "expire", "xadd", "object|encoding", "smismember", "memory|usage"):
        assert route[n] == SINGLE, n
    for n in ("mget", "mset", "del", "unlink", "exists", "touch"):
        assert route[n] == SPLIT, n
    for n in ("rename", "renamenx", "smove", "lmove", "blmove", "rpoplpush", "brpoplpush", "sinter", "sunion", "sdiff",
              "sinterstore", "sunionstore", "sdiffstore", "sintercard", "zunion", "zinter", "zdiff", "zunionstore",
              "zinterstore", "zdiffstore", "zintercard", "zrangestore", "bitop", "pfmerge", "pfcount", "copy",
              "geosearchstore", "georadius", "georadiusbymember", "sort", "eval", "evalsha", "eval_ro", "evalsha_ro",
              "fcall", "fcall_ro", "msetnx", "lmpop", "blmpop", "zmpop", "bzmpop", "blpop", "brpop", "bzpopmin",
              "bzpopmax", "xread", "xreadgroup", "lcs"):
        assert route[n] == SAME, n
    for n in ("dbsize", "keys", "scan", "randomkey", "flushdb", "flushall", "config|set", "config|resetstat",
              "config|rewrite", "script|load", "script|exists", "script|flush", "script|kill", "function|load",
              "function|delete", "function|flush", "function|restore", "function|kill", "debug"):
        assert route[n] == FAN, n
    for n in ("ping", "echo", "quit", "select", "hello", "auth", "client|setname", "client|getname", "client|id",
              "client|setinfo", "info", "shutdown", "monitor", "client|list", "client|info", "client|kill",
              "client|reply", "client|pause", "client|unpause", "client|no-evict", "client|tracking",
              "client|trackinginfo", "client|getredir", "client|caching"):
        assert route[n] == LOCAL, n
    for n in ("multi", "exec", "discard", "watch", "unwatch"):
        assert route[n] == TRANSACTION, n
    for n in ("subscribe", "psubscribe", "unsubscribe", "publish", "spublish", "pubsub|channels", "pubsub|numsub"):
        assert route[n] == PUBSUB, n
    for n in ("cluster|info", "migrate", "move",
              "swapdb", "script|debug", "function|stats"):
        assert route[n] == REFUSED, n
    for n in ("command", "command|count", "command|getkeys", "time", "config|get", "function|list",
              "function|dump"):
        assert route[n] == ANY, n
    for n in ("debug|object", "debug|listpack"):  # they name a key: its node answers
        assert route[n] == SINGLE, n
    assert route["debug|digest-value"] == SAME  # keys, all on one node
    # A multi-key command that is not Split must run on one node.
    for n, r in table.items():
        if r["route"] == SINGLE:
            assert len(r["key_specs"]) == 1 and r["key_specs"][0]["find"] == "range" and \
                r["key_specs"][0]["lastkey"] == 0, n


# Commands whose keys move with their arguments, as clients send them.
MOVABLE_SAMPLES = [
    ["EVAL", "return 1", "0"],
    ["EVAL", "return 1", "2", "a", "b", "x"],
    ["EVALSHA", "abc", "1", "a", "x"],
    ["EVAL_RO", "return 1", "1", "a"],
    ["FCALL", "f", "2", "a", "b"],
    ["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
    ["ZINTERSTORE", "d", "1", "a"],
    ["ZDIFFSTORE", "d", "2", "a", "b"],
    ["ZUNION", "2", "a", "b", "WITHSCORES"],
    ["ZINTERCARD", "2", "a", "b"],
    ["SINTERCARD", "3", "a", "b", "c", "LIMIT", "1"],
    ["LMPOP", "2", "a", "b", "LEFT"],
    ["BLMPOP", "0", "2", "a", "b", "RIGHT", "COUNT", "2"],
    ["ZMPOP", "1", "a", "MIN"],
    ["BZMPOP", "1", "2", "a", "b", "MAX"],
    ["XREAD", "STREAMS", "s", "0"],
    ["XREAD", "COUNT", "2", "BLOCK", "10", "STREAMS", "s1", "s2", "0", "0"],
    ["XREAD", "STREAMS", "streams", "0"],
    ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
    ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "NOACK", "STREAMS", "a", "b", ">", ">"],
    ["SORT", "l"],
    ["SORT", "l", "BY", "w_*", "LIMIT", "0", "5", "GET", "#", "STORE", "dst"],
    ["SORT", "l", "STORE", "a", "STORE", "b"],
    ["SORT_RO", "l", "ALPHA"],
    ["GEORADIUS", "g", "0", "0", "1", "km"],
    ["GEORADIUS", "g", "0", "0", "1", "km", "STORE", "dst"],
    ["GEORADIUS", "g", "0", "0", "1", "km", "COUNT", "3", "STOREDIST", "dst"],
    ["GEORADIUSBYMEMBER", "g", "m", "1", "km", "STORE", "dst"],
    ["GEOSEARCHSTORE", "d", "src", "FROMMEMBER", "m", "BYRADIUS", "1", "km"],
    ["MIGRATE", "h", "6379", "k", "0", "1000"],
    ["BITOP", "AND", "d", "a", "b"],
    ["MSET", "a", "1", "b", "2"],
    ["BLPOP", "a", "b", "0"],
]


# Where COMMAND GETKEYS and resolve_keys disagree, on purpose: (argv, ours, GETKEYS's
# answer or None for its error).
# - MIGRATE's specs are marked incomplete, so Redis parses the arguments itself and
#   skips the empty key placeholder; headroom refuses MIGRATE, so this routes nothing.
# - PFMERGE with no source: GETKEYS walks the specs and rejects the absent sources, yet
#   Redis runs the command (it creates dest), so headroom must route it by dest.
KNOWN_DIFFERENCES = [
    (["MIGRATE", "h", "6379", "", "0", "1000", "KEYS", "a", "b"], ["", "a", "b"], ["a", "b"]),
    (["pfmerge", "a1"], ["a1"], None),
]


def test_known_differences_from_command_getkeys(server, table):
    for (argv, ours, redis_keys), got in zip(KNOWN_DIFFERENCES, resolve([a for a, _, _ in KNOWN_DIFFERENCES])):
        assert got["ok"] and [argv[i] for i in got["keys"]] == ours
        if redis_keys is None:
            with pytest.raises(redis.ResponseError):
                server.execute_command("COMMAND", "GETKEYS", *argv)
        else:
            assert [s(k) for k in server.execute_command("COMMAND", "GETKEYS", *argv)] == redis_keys
    assert table["migrate"]["route"] == 8  # Refused
    server.execute_command("PFMERGE", "a1")  # runs, and creates its key
    assert server.execute_command("EXISTS", "a1") == 1
    server.execute_command("DEL", "a1")


def synthetic_samples(live):
    """For each command whose keys sit at fixed places: its shortest argv."""
    for name, c, container in live_rows(live):
        flags = {s(x) for x in c[2]}
        if container or "movablekeys" in flags or not expected_specs(c[8]):
            continue
        top, _, sub = name.partition("|")
        argv = [top] + ([sub] if sub else [])
        argv += [f"a{i}" for i in range(len(argv), abs(c[1]))]
        if argv not in [a for a, _, _ in KNOWN_DIFFERENCES]:
            yield argv


def resolve(argvs):
    out = subprocess.run([dump_tool(), "--keys"], input="".join("\t".join(a) + "\n" for a in argvs),
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def test_key_positions_match_command_getkeys(server, live):
    samples = MOVABLE_SAMPLES + list(synthetic_samples(live))
    problems = []
    for argv, got in zip(samples, resolve(samples)):
        try:
            want = [s(k) for k in server.execute_command("COMMAND", "GETKEYS", *argv)]
        except redis.ResponseError:
            want = None  # Redis finds no valid keys in these arguments
        if got["name"] is None:
            problems.append(f"{argv}: no row")
            continue
        ours = [argv[i] for i in got["keys"]] if got["ok"] else None
        if want is None and not ours:
            continue
        if ours != want:
            problems.append(f"{argv}: ours {ours} (positions {got['keys']}, ok {got['ok']}), COMMAND GETKEYS {want}")
    assert not problems, "\n".join(problems)
    assert len(samples) > 150  # every fixed-position command, not a handful

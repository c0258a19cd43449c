#!/usr/bin/python3
"""Generates resp/command_rows.inc, the data rows of headroom's command table, from a
live redis-server's COMMAND reply (arity, flags, key specs), plus headroom's routing
policy, assigned by the rules below.

Usage: scripts/gen_command_table.py [--port 6379 | --socket /tmp/redis.sock] > resp/command_rows.inc
(run with /usr/bin/python3, which has python3-redis, against the redis-server version
headroom targets; tests/integration/test_command_table.py checks the committed table
against a live COMMAND reply and COMMAND GETKEYS).
"""
import argparse
import sys

import redis

# --- Routing policy -----------------------------------------------------------
# Answered by the proxy. Each names the LocalCommand that answers it
# (proxy/local_commands.cpp, and proxy/client_commands.cpp for CLIENT's).
LOCAL = {"ping": "Ping", "echo": "Echo", "quit": "Quit", "select": "Select", "hello": "Hello",
         "auth": "Auth", "info": "Info",
         "client|setname": "ClientSetname", "client|getname": "ClientGetname", "client|id": "ClientId",
         "client|setinfo": "ClientSetinfo",
         # headroom's clients are all the default user (AUTH <password>); ACL itself is
         # the nodes' (refused below), with CAT and GENPASS answered by any node
         "acl|whoami": "AclWhoami",
         # a headroom client blocked on a node: its connection there is unblocked
         "client|unblock": "ClientUnblock",
         # about headroom's own clients (a node's answer would describe headroom's
         # connection to it): listed, killed, silenced, paused by headroom
         "client|list": "ClientList", "client|info": "ClientInfo", "client|kill": "ClientKill",
         "client|reply": "ClientReply", "client|no-evict": "ClientNoEvict", "client|pause": "ClientPause",
         "client|unpause": "ClientUnpause",
         # tracking is refused (ON); what asks about it answers "off", which it always is
         "client|tracking": "ClientTracking", "client|trackinginfo": "ClientTrackinginfo",
         "client|getredir": "ClientGetredir", "client|caching": "ClientCaching",
         # dangerous (refused unless allow_dangerous_commands names them): SHUTDOWN
         # stops headroom itself, gracefully; MONITOR streams the commands headroom receives
         "shutdown": "Shutdown", "monitor": "Monitor",
         # headroom's own slow log (end to end, proxy/latency.h); LATENCY as Redis with
         # no latency events recorded (headroom's latencies are in /metrics)
         "slowlog|get": "SlowlogGet", "slowlog|len": "SlowlogLen", "slowlog|reset": "SlowlogReset",
         "latency|latest": "LatencyEmpty", "latency|history": "LatencyEmpty", "latency|reset": "LatencyReset"}
# The client's transaction, queued by the proxy and run on one node (proxy/transaction.h).
TRANSACTION = {"multi": "Multi", "exec": "Exec", "discard": "Discard", "watch": "Watch", "unwatch": "Unwatch"}
# Pub/sub: the clients' channels on the main server, one message space for every
# proxy, apart from headroom's own (proxy/subscriber_conn.h).
PUBSUB = {"subscribe": "Subscribe", "psubscribe": "Psubscribe", "ssubscribe": "Ssubscribe",
          "unsubscribe": "Unsubscribe", "punsubscribe": "Punsubscribe", "sunsubscribe": "Sunsubscribe",
          "publish": "Publish", "spublish": "Publish", "pubsub|channels": "PubsubChannels",
          "pubsub|shardchannels": "PubsubChannels", "pubsub|numsub": "PubsubNumsub",
          "pubsub|shardnumsub": "PubsubNumsub", "pubsub|numpat": "PubsubNumpat"}
# Keyless, node-independent answers: any data node replies. COMMAND is here rather
# than in LOCAL because every node gives the same reply and the proxy does not build
# one; its GETKEYS also answers for headroom, whose key specs are Redis's.
ANY_NODE = {"command", "command|count", "command|docs", "command|info", "command|list",
            "command|getkeys", "command|getkeysandflags", "command|help", "time", "lolwut",
            "object|help", "xinfo|help", "xgroup|help", "memory|help", "config|help",
            "acl|cat", "acl|genpass",
            # alike on every node when loaded through headroom: one node answers
            "function|list", "function|dump",
            # dangerous: CONFIG GET answers from one data node
            "config|get"}
# Asked of every data node, merged.
FAN_OUT = {"dbsize": "Sum", "keys": "Concat", "scan": "Scan", "randomkey": "Random",
           "flushdb": "AllOk", "flushall": "AllOk",
           # dangerous: a setting changes on every data node, or on none
           "config|set": "AllOk", "config|resetstat": "AllOk", "config|rewrite": "AllOk",
           # dangerous: DEBUG's settings (SET-ACTIVE-EXPIRE, QUICKLIST-PACKED-THRESHOLD,
           # SLEEP, ...) apply to every node, which must answer alike; DEBUG OBJECT and
           # LISTPACK <key> go to the key's node (rows of their own, below)
           "debug": "Same",
           # Scripts and functions are cached per node: loaded on every node, EVALSHA and
           # FCALL work wherever their keys live. A script is there only if it is on every
           # node (a node restarted since has lost it: the client loads it again). KILL
           # reaches the node that is busy, whichever it is.
           "script|load": "Same", "script|exists": "Least", "script|flush": "AllOk", "script|kill": "AnyOk",
           "function|load": "Same", "function|delete": "AllOk", "function|flush": "AllOk",
           "function|restore": "AllOk", "function|kill": "AnyOk"}
# Independent keys: one fragment per node. (MSETNX is not here: splitting it would
# break its all-or-nothing promise; it is same-node.)
SPLIT = {"mget": "Ordered", "mset": "AllOk", "del": "Sum", "unlink": "Sum",
         "exists": "Sum", "touch": "Sum"}
# Refused with an error naming the command, though they have keys or look harmless:
# replication, cluster, server administration, the rest of scripts' server-side
# state, and connection-state commands a shared backend cannot honour.
REFUSED_PREFIXES = ("sync", "psync", "replconf", "replicaof",
                    "slaveof", "cluster", "save", "bgsave",
                    "bgrewriteaof", "lastsave", "migrate", "move", "swapdb", "acl", "module",
                    "failover", "wait", "readonly", "readwrite", "script", "function",
                    "latency", "slowlog", "role", "asking", "restore-asking", "reset",
                    "memory|doctor", "memory|malloc-stats", "memory|purge", "memory|stats",
                    "client")
DANGEROUS = {"flushall", "flushdb", "keys", "config", "debug", "shutdown", "monitor"}

# Scripts may write, and so create, any key they are given. Redis marks those keys
# RW+UPDATE without flagging the command denyoom (a script's needs are unknown until it
# runs), so the UPDATE-on-denyoom rule alone would forward a script that creates a key
# to an arbitrary node without recording where the key now lives.
SCRIPT_WRITERS = {"eval", "evalsha", "fcall"}

FLAG_BITS = {"write": "kWrite", "readonly": "kReadOnly", "denyoom": "kDenyOom",
             "admin": "kAdmin", "noscript": "kNoScript", "blocking": "kBlocking",
             "pubsub": "kPubSub", "movablekeys": "kMovableKeys", "no_auth": "kNoAuth"}

# Our own behaviour, as flags (resp/command_table.h says what each means).
REDACTED = {"auth", "hello"}  # MONITOR shows their arguments as "(redacted)", as Redis does
FLUSHES = {"flushall", "flushdb"}
# Sent on each node's control connection: the data connection may be the one whose
# script is running, and Redis reads nothing more from that one until the script ends.
ON_CONTROL_CONN = {"script|kill", "function|kill"}
SETS_CONFIG = {"config|set"}        # parameters headroom owns are refused (proxy/config_guard.h)
RESETS_STATS = {"config|resetstat"}  # headroom's own counters are reset with the nodes'
# Redis's MAY_REPLICATE flag (7.0's src/commands/*.json), which its COMMAND reply does
# not list: CLIENT PAUSE WRITE holds these as it holds writes.
MAY_REPLICATE = {"eval", "evalsha", "fcall", "pfcount", "publish", "spublish"}
OUR_FLAGS = [(SCRIPT_WRITERS, "kRunsScript"), (FLUSHES, "kFlushes"), (REDACTED, "kRedactArgs"),
             (ON_CONTROL_CONN, "kOnControlConn"), (SETS_CONFIG, "kSetsConfig"), (RESETS_STATS, "kResetsStats"),
             (MAY_REPLICATE, "kMayReplicate")]

# Commands that block only with an option: the options that may come before the key
# spec's keyword (STREAMS), with how many values each takes; BLOCK makes it block.
BLOCKING_OPTIONS = {"xread": [("COUNT", 1), ("BLOCK", 1)],
                    "xreadgroup": [("GROUP", 2), ("COUNT", 1), ("BLOCK", 1), ("NOACK", 0)]}

# How a write to a key that exists already grows its node between two polls (the
# placement ledger counts it; the next poll corrects what this misjudges), as
# (kind, first, stride): "Payload", the bytes of the arguments from argv[first] on are
# added (APPEND, RPUSH, XADD; SETRANGE's is an upper bound); "PerAdded", those bytes
# in the share the reply's integer gives of the elements sent, `stride` arguments each
# (SADD's new members, HSET's new fields). Every other write counts nothing: an
# overwrite replaces what was there, a DEL or a pop shrinks, and what the rest do
# only the node knows. (A new key's bytes are counted from its placement instead.)
GROWTH = {"append": ("Payload", 2, 1), "setrange": ("Payload", 3, 1),
          "lpush": ("Payload", 2, 1), "rpush": ("Payload", 2, 1), "lpushx": ("Payload", 2, 1),
          "rpushx": ("Payload", 2, 1), "linsert": ("Payload", 4, 1), "xadd": ("Payload", 2, 1),
          "sadd": ("PerAdded", 2, 1), "hset": ("PerAdded", 2, 2), "hsetnx": ("PerAdded", 2, 2),
          "zadd": ("PerAdded", 2, 2), "geoadd": ("PerAdded", 2, 3)}

# Subcommands Redis's COMMAND does not list, each with its own key spec: DEBUG OBJECT
# and DEBUG LISTPACK name a key, so the key's node must answer. DEBUG's other
# subcommands stay on the DEBUG row (an open container: any subcommand is accepted).
# DEBUG DIGEST-VALUE names keys (one or more, all on one node: same-node).
EXTRA_SUBCOMMANDS = {"debug": [("debug|object", 3, 0), ("debug|listpack", 3, 0), ("debug|digest-value", -3, -1)]}
OPEN_CONTAINERS = {"debug"}


def s(x):
    return x.decode() if isinstance(x, bytes) else x


def pairs(lst):
    return {s(lst[i]): lst[i + 1] for i in range(0, len(lst), 2)}


def refused(name):
    top = name.split("|")[0]
    return any(name == p or top == p for p in REFUSED_PREFIXES)


def parse_specs(name, cmd_flags, raw_specs):
    """Key specs as dicts; 'unknown' specs (SORT's STORE) get a keyword spec by hand."""
    specs = []
    for raw in raw_specs:
        d = pairs(raw)
        flags = {s(f).lower() for f in d.get("flags", [])}
        if "not_key" in flags:  # shard channels (SPUBLISH, SSUBSCRIBE) are not keys
            continue
        bs = pairs(d["begin_search"])
        fk = pairs(d["find_keys"])
        btype, ftype = s(bs["type"]), s(fk["type"])
        may_create = ("insert" in flags or "ow" in flags or ("update" in flags and "denyoom" in cmd_flags)
                      or ("update" in flags and name in SCRIPT_WRITERS))
        if btype == "unknown":
            # SORT's STORE can sit anywhere among its options, so Redis gives no spec
            # and parses them itself. Searching backwards from the end for the last
            # STORE finds the key SORT writes (the last STORE wins there too) unless a
            # BY/GET pattern spelled "store" follows the real STORE option.
            if name in ("sort", "sort_ro") and "ow" in flags:
                specs.append(dict(begin="Keyword", index=0, keyword="STORE", startfrom=-2,
                                  find="Range", lastkey=0, keystep=1, limit=0, keynumidx=0,
                                  firstkey=0, may_create=True))
            continue
        bspec, fspec = pairs(bs["spec"]), pairs(fk["spec"])
        spec = dict(begin="Index", index=0, keyword="", startfrom=0, find="Range", lastkey=0,
                    keystep=1, limit=0, keynumidx=0, firstkey=0, may_create=may_create)
        if btype == "index":
            spec["index"] = bspec["index"]
        else:
            spec.update(begin="Keyword", keyword=s(bspec["keyword"]), startfrom=bspec["startfrom"])
        if ftype == "range":
            spec.update(lastkey=fspec["lastkey"], keystep=fspec["keystep"], limit=fspec["limit"])
        else:
            spec.update(find="KeyNum", keynumidx=fspec["keynumidx"], firstkey=fspec["firstkey"],
                        keystep=fspec["keystep"])
        specs.append(spec)
    return specs


# headroom's own command (not Redis's): HEADROOM NODES, DRAIN, REBALANCE, MOVE.
ADMIN = {"headroom": (-2, {"admin", "noscript", "loading", "stale"})}


def route_of(name, flags, specs, container):
    if name in ADMIN:
        return "Admin", "None"
    if name in LOCAL:
        return "Local", "None"
    if name in TRANSACTION:
        return "Transaction", "None"
    if name in PUBSUB:
        return "PubSub", "None"
    if name.split("|")[0] in EXTRA_SUBCOMMANDS and "|" in name:
        return ("SameNode" if name == "debug|digest-value" else "Single"), "None"
    if name in ANY_NODE or name.endswith("|help"):
        return "AnyNode", "None"
    if name in FAN_OUT:
        return "FanOut", FAN_OUT[name]
    if name in SPLIT:
        return "Split", SPLIT[name]
    if container:
        return "Refused", "None"  # reached only without a subcommand: Redis's arity error first
    if refused(name):
        return "Refused", "None"
    if not specs:
        return "Refused", "None"  # keyless and not known to be node-independent
    single = len(specs) == 1 and specs[0]["find"] == "Range" and specs[0]["lastkey"] == 0
    return ("Single" if single else "SameNode"), "None"


def collect(r, extra=True):
    rows = []
    for c in r.execute_command("COMMAND"):
        name, arity, flags = s(c[0]), c[1], {s(f) for f in c[2]}
        subs = c[9] if len(c) > 9 else []
        rows.append((name, arity, flags, c[8], bool(subs)))
        for sc in subs:
            rows.append((s(sc[0]), sc[1], {s(f) for f in sc[2]}, sc[8], False))
    names = {r_[0] for r_ in rows}
    # Redis 7.2's CLIENT SETINFO: clients send it on connect; answer it on 7.0 too.
    if extra and "client|setinfo" not in names:
        rows.append(("client|setinfo", 4, {"noscript", "loading", "stale"}, [], False))
    if extra:
        for name, (arity, flags) in ADMIN.items():
            rows.append((name, arity, set(flags), [], False))
        for parent, subs in EXTRA_SUBCOMMANDS.items():
            flags = next(r_[2] for r_ in rows if r_[0] == parent)
            for sub, arity, lastkey in subs:
                key = [[b"flags", [b"RO"], b"begin_search", [b"type", b"index", b"spec", [b"index", 2]],
                        b"find_keys", [b"type", b"range", b"spec", [b"lastkey", lastkey, b"keystep", 1, b"limit", 0]]]]
                rows.append((sub, arity, set(flags), key, False))
    return sorted(rows, key=lambda x: x[0])


def ident(name):
    return name.replace("|", "_").replace("-", "_")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--socket", help="a unix socket path, instead of --port")
    args = ap.parse_args()
    r = redis.Redis(unix_socket_path=args.socket) if args.socket else redis.Redis(port=args.port)
    r.response_callbacks.pop("COMMAND", None)  # the raw reply, not redis-py's summary
    rows = collect(r)
    live_names = {name for name, *_ in collect(r, extra=False)}
    version = r.info("server")["redis_version"]
    out = [f"// Generated by scripts/gen_command_table.py from redis-server {version}'s COMMAND reply.",
           "// Do not edit by hand: change the rules in the script and run it again.",
           "// Columns: name, arity, flags, route, merge, key specs, local command, options, growth.", ""]
    body = []
    for name, arity, flags, raw_specs, container in rows:
        specs = parse_specs(name, flags, raw_specs)
        route, merge = route_of(name, flags, specs, container)
        bits = [FLAG_BITS[f] for f in sorted(flags) if f in FLAG_BITS]
        if name.split("|")[0] in DANGEROUS:
            bits.append("kDangerous")
        if container or name in OPEN_CONTAINERS:
            bits.append("kContainer")
        if name in OPEN_CONTAINERS:
            bits.append("kOpenContainer")
        bits += [flag for names, flag in OUR_FLAGS if name in names]
        local, opts = LOCAL.get(name, TRANSACTION.get(name, PUBSUB.get(name, "None"))), "{}"
        if name in BLOCKING_OPTIONS:
            bits.append("kBlockingOption")
            arr = f"opts_{ident(name)}"
            items = ", ".join(f'{{"{kw}", {n}}}' for kw, n in BLOCKING_OPTIONS[name])
            out.append(f"constexpr OptionSpec {arr}[] = {{{items}}};")
            opts = arr
        spec_ref = "{}"
        if specs:
            arr = f"ks_{ident(name)}"
            items = []
            for sp in specs:
                kw = f'"{sp["keyword"]}"' if sp["keyword"] else "{}"
                items.append(
                    f'{{KeySpec::Begin::{sp["begin"]}, {sp["index"]}, {kw}, {sp["startfrom"]}, '
                    f'KeySpec::Find::{sp["find"]}, {sp["lastkey"]}, {sp["keystep"]}, {sp["limit"]}, '
                    f'{sp["keynumidx"]}, {sp["firstkey"]}, {"true" if sp["may_create"] else "false"}}}')
            out.append(f"constexpr KeySpec {arr}[] = {{{', '.join(items)}}};")
            spec_ref = arr
        flag_expr = " | ".join(bits) if bits else "0"
        if name in ADMIN:
            body.append("    // Not in COMMAND: headroom's own operator command.")
        elif name.split("|")[0] in EXTRA_SUBCOMMANDS and "|" in name:
            body.append("    // Not in COMMAND: a DEBUG subcommand that names a key, so the key's node answers it.")
        elif name not in live_names:
            body.append("    // Not in this server's COMMAND: added for clients that send it on connect (7.2+).")
        growth = ", {}"
        if name in GROWTH:
            kind, first, stride = GROWTH[name]
            growth = f", {{Growth::Kind::{kind}, {first}, {stride}}}"
        body.append(f'    {{"{name}", {arity}, {flag_expr}, Route::{route}, Merge::{merge}, {spec_ref}, LocalCommand::{local}, {opts}{growth}}},')
    out.append("")
    out.append("constexpr CommandInfo kRows[] = {")
    out.extend(body)
    out.append("};")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

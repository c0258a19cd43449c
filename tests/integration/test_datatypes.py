"""Every data type through headroom gives what one Redis server gives: each command
runs through the proxy and on a reference redis-server, and the replies must match."""
import redis

from cluster import raw

SCRIPT = [
    # strings
    ("SET", "s", "hello"), ("GET", "s"), ("APPEND", "s", " world"), ("STRLEN", "s"),
    ("GETRANGE", "s", "0", "4"), ("SETRANGE", "s", "6", "WORLD"), ("GET", "s"),
    ("SET", "s", "v2", "GET"), ("SET", "s", "v3", "XX"), ("SET", "s", "v4", "NX"), ("SETNX", "s2", "x"),
    ("GETSET", "s2", "y"), ("GETDEL", "s2"), ("GET", "s2"), ("GETEX", "s", "PERSIST"),
    ("SET", "n", "10"), ("INCR", "n"), ("INCRBY", "n", "5"), ("DECR", "n"), ("DECRBY", "n", "3"),
    ("INCRBYFLOAT", "n", "1.5"), ("INCR", "s"), ("MSET", "m1", "a", "m2", "b"), ("MGET", "m1", "m2", "nope"),
    ("STRLEN", "missing"), ("GET", "missing"),
    # hashes
    ("HSET", "h", "f1", "v1", "f2", "v2"), ("HGET", "h", "f1"), ("HMGET", "h", "f1", "zz"), ("HGETALL", "h"),
    ("HINCRBY", "h", "c", "3"), ("HINCRBYFLOAT", "h", "c", "0.5"), ("HEXISTS", "h", "f2"), ("HDEL", "h", "f2"),
    ("HLEN", "h"), ("HKEYS", "h"), ("HVALS", "h"), ("HSETNX", "h", "f1", "x"), ("HSTRLEN", "h", "f1"),
    ("HGETALL", "nohash"),
    # lists
    ("RPUSH", "l", "a", "b", "c", "b"), ("LPUSH", "l", "z"), ("LRANGE", "l", "0", "-1"), ("LLEN", "l"),
    ("LPOS", "l", "b"), ("LPOS", "l", "b", "RANK", "2"), ("LINSERT", "l", "BEFORE", "c", "x"), ("LINDEX", "l", "2"),
    ("LSET", "l", "0", "y"), ("LREM", "l", "1", "b"), ("LTRIM", "l", "0", "3"), ("RPOP", "l"), ("LPOP", "l", "2"),
    ("LRANGE", "l", "0", "-1"), ("LRANGE", "nolist", "0", "-1"), ("LPUSHX", "nolist", "a"),
    # sets
    ("SADD", "st", "a", "b", "c"), ("SISMEMBER", "st", "a"), ("SMISMEMBER", "st", "a", "z"), ("SCARD", "st"),
    ("SREM", "st", "c"), ("SMEMBERS", "st"), ("SADD", "{g}s1", "a", "b"), ("SADD", "{g}s2", "b", "c"),
    ("SINTER", "{g}s1", "{g}s2"), ("SUNION", "{g}s1", "{g}s2"), ("SDIFF", "{g}s1", "{g}s2"),
    ("SUNIONSTORE", "{g}s3", "{g}s1", "{g}s2"), ("SINTERCARD", "2", "{g}s1", "{g}s2"),
    ("SMOVE", "{g}s1", "{g}s2", "a"), ("SMEMBERS", "{g}s2"),
    # sorted sets
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"), ("ZADD", "z", "XX", "CH", "5", "a"), ("ZADD", "z", "NX", "9", "a"),
    ("ZSCORE", "z", "a"), ("ZRANGE", "z", "0", "-1", "WITHSCORES"), ("ZRANGE", "z", "(1", "5", "BYSCORE", "LIMIT", "0", "2"),
    ("ZRANGE", "z", "0", "-1", "REV"), ("ZRANK", "z", "c"), ("ZINCRBY", "z", "2", "b"), ("ZCARD", "z"),
    ("ZCOUNT", "z", "-inf", "+inf"), ("ZPOPMIN", "z"), ("ZRANGEBYSCORE", "z", "0", "10"),
    ("ZADD", "{g}z1", "1", "a", "2", "b"), ("ZADD", "{g}z2", "3", "b"), ("ZUNIONSTORE", "{g}z3", "2", "{g}z1", "{g}z2"),
    ("ZRANGE", "{g}z3", "0", "-1", "WITHSCORES"), ("ZRANGESTORE", "{g}z4", "{g}z1", "0", "0"), ("ZINTERCARD", "2", "{g}z1", "{g}z2"),
    # bitmaps
    ("SETBIT", "b", "7", "1"), ("GETBIT", "b", "7"), ("BITCOUNT", "b"), ("BITPOS", "b", "1"),
    ("BITFIELD", "b", "SET", "u8", "0", "255", "GET", "u4", "0"), ("SET", "{g}b1", "ab"), ("SET", "{g}b2", "cd"),
    ("BITOP", "AND", "{g}b3", "{g}b1", "{g}b2"), ("GET", "{g}b3"),
    # HyperLogLog
    ("PFADD", "hll", "a", "b", "c"), ("PFCOUNT", "hll"), ("PFADD", "{g}h1", "a"), ("PFADD", "{g}h2", "b"),
    ("PFMERGE", "{g}h3", "{g}h1", "{g}h2"), ("PFCOUNT", "{g}h3"),
    # geo
    ("GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
    ("GEODIST", "geo", "Palermo", "Catania", "km"), ("GEOSEARCH", "geo", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC"),
    ("GEOPOS", "geo", "Palermo"), ("GEOHASH", "geo", "Catania"),
    # streams
    ("XADD", "x", "1-1", "f", "v"), ("XADD", "x", "2-1", "f", "w"), ("XLEN", "x"), ("XRANGE", "x", "-", "+"),
    ("XREVRANGE", "x", "+", "-", "COUNT", "1"), ("XGROUP", "CREATE", "x", "g", "0"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "x", ">"), ("XACK", "x", "g", "1-1"),
    ("XREAD", "COUNT", "2", "STREAMS", "x", "0"), ("XTRIM", "x", "MAXLEN", "1"), ("XLEN", "x"),
    # expiry and keyspace
    ("SET", "e", "v"), ("EXPIRE", "e", "100"), ("TTL", "e"), ("PERSIST", "e"), ("TTL", "e"), ("PEXPIRE", "e", "100000"),
    ("EXPIREAT", "e", "4102444800"), ("EXPIRETIME", "e"), ("TTL", "missing"), ("TYPE", "h"), ("TYPE", "missing"),
    ("OBJECT", "ENCODING", "l"), ("EXISTS", "s", "h", "missing"), ("TOUCH", "s", "h"), ("DEL", "s", "h", "missing"),
    ("UNLINK", "l", "st"), ("EXISTS", "s", "h", "l", "st"), ("RENAME", "{g}s3", "{g}s9"), ("TYPE", "{g}s9"),
    ("COPY", "{g}s9", "{g}s10"), ("SMEMBERS", "{g}s10"),
]


def run(client, cmd):
    """The raw reply (no redis-py reply callbacks), or ("error", text)."""
    try:
        return raw(client, *cmd)
    except redis.ResponseError as e:
        return ("error", str(e))


def normalize(cmd, out):
    # Set replies have no order.
    if cmd[0] in ("SMEMBERS", "SINTER", "SUNION", "SDIFF", "HKEYS", "HVALS") and isinstance(out, list):
        return sorted(out)
    if cmd[0] == "TTL" and isinstance(out, int) and out > 0:
        return "positive"
    if cmd[0] == "EXPIRETIME":
        return out
    return out


def test_every_type_matches_one_redis_server(r, ref):
    mismatches = []
    for cmd in SCRIPT:
        got = normalize(cmd, run(r, cmd))
        want = normalize(cmd, run(ref, cmd))
        if got != want:
            mismatches.append(f"{' '.join(cmd)}: headroom {got!r} redis {want!r}")
    assert not mismatches, "\n".join(mismatches)


def test_keys_are_spread_over_every_node(r, clean):
    # Enough bytes (12 MB) to outweigh the nodes' differences in baseline memory
    # (a node's used_memory counts the query buffer a big pipeline left behind).
    for start in range(0, 1500, 250):
        p = r.pipeline(transaction=False)
        for i in range(start, start + 250):
            p.set(f"spread:{i}", "x" * 8000)
        p.execute()
    holders = {n for i in range(1500) for n in clean.node_of(f"spread:{i}")}
    assert holders == {"node1", "node2", "node3", "node4"}
    # and each key lives on exactly one node
    assert all(len(clean.node_of(f"spread:{i}")) == 1 for i in range(0, 1500, 7))

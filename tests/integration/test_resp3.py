"""RESP3 through headroom (issue 13): HELLO 3 switches a client to RESP3, its commands
go on connections that speak RESP3 to the nodes, and what redis-cli -3 prints through
headroom is byte for byte what it prints against one Redis, for commands that cover
every reply type (maps, sets, doubles, nulls, verbatim strings) and headroom's merged
and local replies."""
import socket
import subprocess

import pytest

COMMANDS = [
    ["SET", "r3:s", "v"], ["GET", "r3:s"], ["GET", "r3:missing"], ["STRLEN", "r3:s"],
    ["HSET", "r3:h", "a", "1", "b", "2"], ["HGETALL", "r3:h"], ["HRANDFIELD", "r3:missing", "2"],
    ["SADD", "r3:set", "x"], ["SMEMBERS", "r3:set"], ["SISMEMBER", "r3:set", "x"],
    ["ZADD", "r3:z", "1.5", "m", "2", "n"], ["ZSCORE", "r3:z", "m"], ["ZRANGE", "r3:z", "0", "-1", "WITHSCORES"],
    ["ZPOPMIN", "r3:z"], ["ZINCRBY", "r3:z", "0.25", "n"],
    ["LPUSH", "r3:l", "a", "b"], ["LRANGE", "r3:l", "0", "-1"], ["LPOP", "r3:missing"],
    ["XADD", "r3:st", "1-1", "f", "v"], ["XRANGE", "r3:st", "-", "+"], ["XINFO", "STREAM", "r3:st"],
    ["INCRBYFLOAT", "r3:f", "1.5"], ["EXISTS", "r3:s", "r3:missing"],
    ["MGET", "r3:s", "r3:missing", "r3:h"], ["DEL", "r3:nothing"],
    ["TYPE", "r3:h"], ["TTL", "r3:s"], ["OBJECT", "ENCODING", "r3:h"],
    ["PING"], ["PING", "hi"], ["ECHO", "e"], ["CLIENT", "GETNAME"], ["EXEC"], ["NOSUCH"],
    ["EVAL", "return {1, 'a', {err='boom'}}", "0"], ["EVAL", "return redis.setresp(3) or redis.call('HGETALL', KEYS[1])",
                                                      "1", "r3:h"],
    ["COMMAND", "INFO", "get"], ["COMMAND", "COUNT"],
]


def cli(port, argv):
    out = subprocess.run(["redis-cli", "-3", "-p", str(port), *argv], capture_output=True, timeout=30)
    return out.stdout


def test_redis_cli_3_prints_through_headroom_what_it_prints_against_redis(clean):
    got, want = [], []
    for argv in COMMANDS:
        got.append((argv, cli(clean.proxy.port, argv)))
        want.append((argv, cli(clean.reference.port, argv)))
    diffs = [(a, g, w) for (a, g), (_, w) in zip(got, want) if g != w]
    assert not diffs, "\n".join(f"{a}: headroom {g!r} / redis {w!r}" for a, g, w in diffs)


def raw_session(port, payload, until):
    """What headroom answers `payload` with, read until it ends with `until`."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(payload)
    data = b""
    try:
        while not data.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    return data


def test_hello_3_then_replies_in_resp3_and_hello_2_back(clean):
    payload = (b"HELLO 3\r\nSET r3:k v\r\nHGETALL r3:nohash\r\nGET r3:nokey\r\nHELLO 2\r\nGET r3:nokey\r\n")
    data = raw_session(clean.proxy.port, payload, b"*0\r\n$-1\r\n")
    assert data.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), data[:80]
    tail = data[data.index(b"+OK\r\n"):]
    assert tail.startswith(b"+OK\r\n%0\r\n_\r\n*14\r\n"), tail[:40]  # map, null, then back to RESP2


def test_info_is_a_verbatim_string_in_resp3(clean):
    data = raw_session(clean.proxy.port, b"HELLO 3\r\nINFO server\r\nPING\r\n", b"+PONG\r\n")
    info = data[data.index(b"=", 10):]
    assert info.split(b"\r\n")[1].startswith(b"txt:# Server"), info[:60]


@pytest.mark.parametrize("transactional", [False, True])
def test_a_pipeline_switching_protocol_keeps_its_order(clean, transactional):
    # every command before HELLO is answered before those after it go, on the other connections
    n = 300
    cmds = b"".join(f"SET r3:o{i} {i}\r\n".encode() for i in range(n)) + b"HELLO 3\r\n" + \
        b"".join(f"GET r3:o{i}\r\n".encode() for i in range(n))
    if transactional:
        cmds += b"MULTI\r\nINCR r3:o0\r\nEXEC\r\n"
    last = f"${len(str(n - 1))}\r\n{n - 1}\r\n".encode()
    data = raw_session(clean.proxy.port, cmds, b"*1\r\n:1\r\n" if transactional else last)
    for i in range(n):
        assert f"${len(str(i))}\r\n{i}\r\n".encode() in data
    if transactional:
        assert data.endswith(b"+OK\r\n+QUEUED\r\n*1\r\n:1\r\n")

"""Client authentication (requirepass) and dangerous commands behind configuration."""
import re
import socket

import pytest
import redis

from cluster import Cluster, read


@pytest.fixture(scope="module")
def secured():
    c = Cluster(settings={"requirepass": "s3cret", "allow_dangerous_commands": "[flushdb]"})
    yield c
    c.close()


def test_commands_need_auth_first(secured):
    anon = secured.proxy.client(password=None)
    with pytest.raises(redis.AuthenticationError):
        anon.get("x")
    s = socket.create_connection(("127.0.0.1", secured.proxy.port))
    s.settimeout(5)
    s.sendall(b"GET x\r\nAUTH wrong\r\nAUTH default wrong\r\nAUTH s3cret\r\nPING\r\n")
    want = (b"-NOAUTH Authentication required.\r\n"
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
            b"+OK\r\n+PONG\r\n")
    data = b""
    while len(data) < len(want):
        data += s.recv(4096)
    assert data == want


def test_auth_with_username_and_hello(secured):
    c = secured.proxy.client(password="s3cret", username="default")
    assert c.set("k", "v") is True
    s = socket.create_connection(("127.0.0.1", secured.proxy.port))
    s.settimeout(5)
    s.sendall(b"HELLO 2 AUTH default s3cret\r\nGET k\r\n")
    data = b""
    while not data.endswith(b"$1\r\nv\r\n"):
        data += s.recv(4096)
    assert data.startswith(b"*14\r\n")


def test_dangerous_commands_need_configuration(secured):
    c = secured.proxy.client(decode_responses=True)
    with pytest.raises(redis.ResponseError, match="'keys' is disabled by headroom's configuration"):
        c.keys("*")
    with pytest.raises(redis.ResponseError, match="'flushall' is disabled"):
        c.flushall()
    assert c.flushdb() is True  # allowed by this config
    for cmd in (("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "0"), ("DEBUG", "SLEEP", "0"),
                ("DEBUG", "OBJECT", "k"), ("SHUTDOWN",), ("MONITOR",)):
        with pytest.raises(redis.ResponseError, match=f"'{cmd[0].lower()}' is disabled by headroom's configuration"):
            c.execute_command(*cmd)
    assert c.ping() is True  # still running, nothing changed on the nodes
    assert all(n.client.config_get("maxmemory")["maxmemory"] != "0" for n in secured.nodes)


def test_dangerous_commands_when_allowed():
    # Redis 7 takes DEBUG only from local connections when told so; headroom's are local.
    c = Cluster(settings={"allow_dangerous_commands": "[flushall, flushdb, keys, config, debug, shutdown, monitor]"},
                node_extra=("--enable-debug-command", "local"))
    try:
        r = c.proxy.client(decode_responses=True)
        # CONFIG SET changes every data node (or none); CONFIG GET answers from one.
        assert r.config_set("maxmemory-policy", "allkeys-lru") is True
        assert [n.client.config_get("maxmemory-policy")["maxmemory-policy"] for n in c.nodes] == ["allkeys-lru"] * 4
        assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        with pytest.raises(redis.ResponseError, match="Unknown option"):
            r.config_set("no-such-option", "1")
        # DEBUG OBJECT goes to the key's node; other DEBUG subcommands to one node.
        r.set("dbg:k", "12345")
        assert "encoding:int" in str(r.execute_command("DEBUG", "OBJECT", "dbg:k"))
        with pytest.raises(redis.ResponseError, match="no such key"):
            r.execute_command("DEBUG", "OBJECT", "dbg:missing")
        assert r.execute_command("DEBUG", "SLEEP", "0") in ("OK", True)
        # DEBUG DIGEST-VALUE too (Redis's tests compare values by it): the keys' node's answer.
        node = next(n for n in c.nodes if n.client.exists("dbg:k"))
        want = node.client.execute_command("DEBUG", "DIGEST-VALUE", "dbg:k")
        assert r.execute_command("DEBUG", "DIGEST-VALUE", "dbg:k") == [w.decode() for w in want]
        r.set("{dbg}a", "x")
        r.set("{dbg}b", "y")
        assert len(r.execute_command("DEBUG", "DIGEST-VALUE", "{dbg}a", "{dbg}b", "{dbg}missing")) == 3

        # MONITOR: every command headroom receives, in Redis's format.
        mon = socket.create_connection(("127.0.0.1", c.proxy.port))
        mon.settimeout(10)
        mon.sendall(b"MONITOR\r\n")
        assert mon.recv(100) == b"+OK\r\n"
        r.set("mon:k", "two words")
        r.get("mon:k")
        seen = b""
        while b'"GET" "mon:k"' not in seen:
            chunk = mon.recv(4096)
            assert chunk, seen
            seen += chunk
        assert re.search(rb'\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "mon:k" "two words"\r\n', seen), seen
        mon.close()

        # SHUTDOWN stops headroom gracefully: no reply, the connection closes, exit 0.
        s = socket.create_connection(("127.0.0.1", c.proxy.port))
        s.settimeout(10)
        s.sendall(b"SHUTDOWN NOSAVE\r\n")
        assert s.recv(100) == b""
        assert c.proxy.proc.wait(20) == 0
        assert "SHUTDOWN from client" in read(c.proxy.log)
    finally:
        c.close()

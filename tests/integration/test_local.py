"""Commands headroom answers itself, and Redis's wording for unknown commands,
wrong arity and refused commands."""
import pytest
import redis

from cluster import raw


def test_connection_commands(r):
    assert r.ping() is True
    assert raw(r, "PING", "hi") == "hi"
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'ping' command$"):
        raw(r, "PING", "a", "b")
    assert r.echo("hello") == "hello"
    assert raw(r, "SELECT", "0") == "OK"
    with pytest.raises(redis.ResponseError, match="database 0 only"):
        r.execute_command("SELECT", "1")
    hello = raw(r, "HELLO", "2")
    assert hello[hello.index("proto") + 1] == 2
    with pytest.raises(redis.ResponseError) as e:
        raw(r, "HELLO", "4")
    assert str(e.value).startswith("NOPROTO")  # HELLO 3 is served: test_resp3.py


def test_client_name_and_id(clean):
    c = clean.proxy.client(decode_responses=True, single_connection_client=True)
    assert c.client_getname() is None
    assert c.client_setname("worker-1") is True
    assert c.client_getname() == "worker-1"
    assert isinstance(c.client_id(), int)
    with pytest.raises(redis.ResponseError, match="cannot contain spaces"):
        c.execute_command("CLIENT", "SETNAME", "a b")


def test_command_and_info(r):
    assert raw(r, "COMMAND", "COUNT") > 200
    info = raw(r, "INFO")
    for section in ("# Server", "# Clients", "# Stats", "# Memory", "# Keyspace", "# Nodes"):
        assert section in info
    for n in ("node1", "node2", "node3", "node4"):
        assert f"\r\n{n}:address=" in info
    r.set("a", "1")
    r.set("b", "1")
    import time
    time.sleep(0.3)
    keyspace = r.info("keyspace")
    assert keyspace["db0"]["keys"] == 2


def test_redis_error_wording(r):
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("NOSUCHCMD", "a", "b")
    assert str(e.value) == "unknown command 'NOSUCHCMD', with args beginning with: 'a' 'b' "
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("GET")
    assert str(e.value) == "wrong number of arguments for 'get' command"
    with pytest.raises(redis.ResponseError) as e:
        r.execute_command("OBJECT", "NOPE", "x")
    assert str(e.value) == "unknown subcommand 'NOPE'. Try OBJECT HELP."
    # Redis's own errors pass through unchanged
    r.set("str", "x")
    with pytest.raises(redis.ResponseError) as e:
        r.lpush("str", "a")
    assert str(e.value).startswith("WRONGTYPE")
    with pytest.raises(redis.ResponseError, match="greater than number of args"):
        r.execute_command("EVAL", "return 1", "5", "a")


def test_refused_commands_name_themselves(r):
    for cmd, name in ((("SWAPDB", "0", "1"), "swapdb"), (("CLUSTER", "INFO"), "cluster info"), (("CONFIG", "GET", "x"), "config"),
                      (("WAIT", "0", "0"), "wait"), (("SUBSCRIBE", "ch"), "subscribe"),
                      (("PUBLISH", "ch", "m"), "publish")):
        with pytest.raises(redis.ResponseError) as e:
            r.execute_command(*cmd)
        assert f"'{name}'" in str(e.value) and "headroom" in str(e.value), str(e.value)


def test_quit_closes_after_reply(clean):
    import socket
    s = socket.create_connection(("127.0.0.1", clean.proxy.port))
    s.sendall(b"PING\r\nQUIT\r\nPING\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"+PONG\r\n+OK\r\n"

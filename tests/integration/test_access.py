"""Client authentication (requirepass) and dangerous commands behind configuration."""
import socket

import pytest
import redis

from cluster import Cluster


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

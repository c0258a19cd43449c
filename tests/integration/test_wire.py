"""The wire, as redis-cli and nc see it: redis-cli end to end (arguments, stdin,
--pipe mass insert), inline commands, and malformed input that must get Redis's
protocol error and a closed connection, leaving other clients unaffected."""
import socket
import subprocess


def cli(port, *args, stdin=None):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], input=stdin, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_redis_cli_arguments_and_stdin(clean):
    port = clean.proxy.port
    assert cli(port, "SET", "greeting", "hello world").strip() == "OK"
    assert cli(port, "GET", "greeting").strip() == "hello world"
    assert cli(port, "MGET", "greeting", "nope").splitlines() == ["hello world", ""]
    script = "SET a 1\nINCR a\nGET a\nHSET h f v\nHGETALL h\n"
    assert cli(port, stdin=script).splitlines() == ["OK", "2", "2", "1", "f", "v"]


def test_redis_cli_pipe_mass_insert(clean):
    lines = []
    for i in range(5000):
        k, v = f"mass:{i}", f"value:{i}"
        lines.append(f"*3\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n${len(v)}\r\n{v}\r\n")
    out = cli(clean.proxy.port, "--pipe", stdin="".join(lines))
    assert "errors: 0, replies: 5000" in out
    r = clean.proxy.client(decode_responses=True)
    assert r.mget([f"mass:{i}" for i in range(0, 5000, 250)]) == [f"value:{i}" for i in range(0, 5000, 250)]


def exchange(port, payload, expect_close=False):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(payload)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, True
            data += chunk
            if not expect_close and data.endswith(b"\r\n") and data.count(b"\r\n") >= 1:
                return data, False
    except socket.timeout:
        return data, False
    finally:
        s.close()


def test_inline_commands(clean):
    s = socket.create_connection(("127.0.0.1", clean.proxy.port))
    s.settimeout(10)
    s.sendall(b'PING\r\nSET inl "two words"\r\nGET inl\nECHO \'x y\'\r\n')
    want = b"+PONG\r\n+OK\r\n$9\r\ntwo words\r\n$3\r\nx y\r\n"
    data = b""
    while len(data) < len(want):
        data += s.recv(4096)
    s.close()
    assert data == want


def test_malformed_requests_get_protocol_errors_and_close(clean):
    port = clean.proxy.port
    cases = [
        (b"*1\r\n:1\r\n", b"-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n$1073741824\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b'GET "unterminated\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        # replies to earlier requests come first, then the error
        (b"PING\r\n*1\r\nX\r\n", b"+PONG\r\n-ERR Protocol error: expected '$', got 'X'\r\n"),
    ]
    bystander = clean.proxy.client()
    for payload, want in cases:
        data, closed = exchange(port, payload, expect_close=True)
        assert data == want, payload
        assert closed, payload
        assert bystander.ping() is True


def test_binary_garbage_does_not_hurt_others(clean):
    import random
    rnd = random.Random(3)
    bystander = clean.proxy.client()
    bystander.set("safe", "1")
    for _ in range(30):
        blob = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 3000)))
        s = socket.create_connection(("127.0.0.1", clean.proxy.port))
        s.settimeout(2)
        try:
            s.sendall(blob)
            s.recv(4096)
        except OSError:
            pass
        finally:
            s.close()
    assert bystander.get("safe") == b"1"

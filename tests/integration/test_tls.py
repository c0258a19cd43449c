"""TLS: clients to headroom (redis-cli --tls, redis-py, ioredis, node-redis) and headroom
to the main server and data nodes, all redis-server processes speaking TLS only
(`--port 0 --tls-port P`), with certificates the tests make with the openssl command
line (cluster.Certs). Every process is a child of the fixtures and is stopped when
they end, failed test or not."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest
import redis

from cluster import Certs, Cluster, Headroom, RedisServer, free_port, headroom_bin, read

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
UNAVAILABLE = r"node {name} \(127\.0\.0\.1:{port}\) is unavailable"


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="headroom-certs-")
    try:
        yield Certs(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tls_section(certs, **extra):
    """The `tls` section: headroom's certificate, the CA for client certificates."""
    return {"cert_file": certs.server_cert, "key_file": certs.server_key, "ca_file": certs.ca, **extra}


def backend_section(certs, **extra):
    return {"ca_file": certs.ca, **extra}


@pytest.fixture(scope="module")
def tls(certs):
    """Every server TLS-only; headroom plaintext on `listen` and TLS on tls.listen;
    AOF on the main server and the data nodes so a restarted one keeps its keys."""
    aof = ("--appendonly", "yes")
    c = Cluster(certs=certs, main_extra=aof, node_extra=aof,
                settings={"tls": tls_section(certs, listen=f"127.0.0.1:{free_port()}", auth_clients="optional"),
                          "backend_tls": backend_section(certs)})
    c.tls_port = c.proxy.tls_port
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="headroom-tls-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Procs:
    """Servers and proxies a test starts on its own; all stopped at the end."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.servers, self.proxies = [], []

    def server(self, name, certs, **kw):
        s = RedisServer(self.workdir, name, certs=certs, **kw)
        self.servers.append(s)
        return s

    def proxy(self, main, nodes, name, **kw):
        p = Headroom(self.workdir, main, nodes, name=name, **kw)
        self.proxies.append(p)
        return p

    def close(self):
        failures = []
        for p in self.proxies:
            try:
                p.stop()
            except AssertionError as e:
                failures.append(str(e))
        for s in self.servers:
            s.stop()
        assert not failures, "\n".join(failures)


@pytest.fixture
def procs(workdir):
    p = Procs(workdir)
    try:
        yield p
    finally:
        p.close()


def tls_client(cluster, **kw):
    return cluster.proxy.tls_client(**{"socket_timeout": 10, "decode_responses": True, **kw})


def cli(certs, port, *cmd, with_cert=False):
    out = subprocess.run(["redis-cli", "-p", str(port), *certs.cli(with_cert), *cmd], capture_output=True,
                         text=True, timeout=30)
    return out.returncode, out.stdout.strip(), out.stderr.strip()


def wait_for(check, what, timeout=30.0):
    deadline = time.time() + timeout
    while True:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.ResponseError):
            pass
        if time.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def plaintext_ping(port):
    """Speaks RESP without TLS to `port`; returns all it got before the close."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10)
    try:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    finally:
        s.close()


def tls_socket(port, certs, **ctx_attrs):
    """A raw TLS connection to `port` that trusts the CA; `ctx_attrs` set on the context."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    for k, v in ctx_attrs.items():
        setattr(ctx, k, v)
    raw_sock = socket.create_connection(("127.0.0.1", port))
    raw_sock.settimeout(10)
    try:
        return ctx.wrap_socket(raw_sock, server_hostname="localhost")
    except BaseException:
        raw_sock.close()
        raise


def ping_on(s):
    s.sendall(b"PING\r\n")
    return s.recv(100)


# --- clients to headroom ------------------------------------------------------------


def test_redis_cli_over_tls_end_to_end(tls):
    c = tls.certs
    rc, out, err = cli(c, tls.tls_port, "PING")
    assert (rc, out) == (0, "PONG"), err
    for i in range(20):
        rc, out, err = cli(c, tls.tls_port, "SET", f"cli:one:{i}", f"value {i}")
        assert (rc, out) == (0, "OK"), err
    for i in range(20):
        rc, out, err = cli(c, tls.tls_port, "GET", f"cli:one:{i}")
        assert (rc, out) == (0, f"value {i}"), err
    keys = [f"cli:{i}" for i in range(40)]
    rc, out, err = cli(c, tls.tls_port, "MSET", *[x for k in keys for x in (k, k.upper())])
    assert out == "OK", err
    rc, out, err = cli(c, tls.tls_port, "MGET", "cli:missing", *keys)
    assert out.split("\n") == [k.upper() for k in keys], err  # (the nil line is stripped)
    # Spread over the nodes, which headroom reached over TLS.
    assert len({n for k in keys for n in tls.node_of(k)}) >= 2
    rc, out, err = cli(c, tls.tls_port, "INFO")
    assert rc == 0 and "# Server" in out and "# Keyspace" in out, err
    for n in tls.nodes:
        assert n.name in out
    # README: INFO shows tls_port; tcp_port is the plaintext port.
    rc, out, err = cli(c, tls.tls_port, "INFO", "server")
    assert f"tls_port:{tls.tls_port}" in out and f"tcp_port:{tls.proxy.port}" in out, out


def test_redis_py_ssl_client_verifies_headroom(tls, certs):
    t = tls_client(tls)
    assert t.ping() is True
    assert t.set("py:k", "v") is True and t.get("py:k") == "v"
    # The certificate headroom presents is the CA's, for 127.0.0.1 and localhost.
    ip = redis.Redis(host="127.0.0.1", port=tls.tls_port, socket_timeout=10, **certs.client_kw())
    assert ip.get("py:k") == b"v"
    # A client that trusts only the unrelated CA refuses headroom's certificate.
    wrong = redis.Redis(port=tls.tls_port, socket_timeout=10, **certs.client_kw(ca=certs.other_ca))
    with pytest.raises(redis.ConnectionError, match="(?i)certificate verify failed"):
        wrong.ping()


def test_tls_and_plaintext_ports_serve_the_same_keys(tls):
    t = tls_client(tls)
    plain = tls.proxy.client(decode_responses=True)
    assert plain.ping() is True
    assert t.set("both:a", "from-tls") is True
    assert plain.get("both:a") == "from-tls"
    assert plain.set("both:b", "from-plain") is True
    assert t.get("both:b") == "from-plain"
    assert t.hset("both:h", mapping={"f1": "1", "f2": "2"}) == 2
    assert plain.hgetall("both:h") == {"f1": "1", "f2": "2"}
    assert plain.mget("both:a", "both:b") == t.mget("both:a", "both:b") == ["from-tls", "from-plain"]


def test_large_values_and_deep_pipelines_over_tls(tls):
    t = tls_client(tls, decode_responses=False)
    plain = tls.proxy.client(socket_timeout=10)
    big = os.urandom(5 << 20)
    assert t.set("tls:big", big) is True
    assert t.get("tls:big") == big
    assert plain.get("tls:big") == big
    big2 = os.urandom(5 << 20)
    assert plain.set("tls:big2", big2) is True
    assert t.get("tls:big2") == big2
    assert t.mget("tls:big", "tls:big2") == [big, big2]
    p = t.pipeline(transaction=False)
    for i in range(10000):
        p.set(f"tls:deep:{i}", str(i) * 20)
    assert p.execute() == [True] * 10000
    p = t.pipeline(transaction=False)
    for i in range(10000):
        p.get(f"tls:deep:{i}")
    assert p.execute() == [(str(i) * 20).encode() for i in range(10000)]
    keys = [f"tls:deep:{i}" for i in range(0, 10000, 7)]
    assert t.mget(keys) == [(k.split(":")[2] * 20).encode() for k in keys]
    # One pipeline mixing big and small replies.
    p = t.pipeline(transaction=False)
    for i in range(200):
        p.get("tls:big" if i % 50 == 0 else f"tls:deep:{i}")
    assert p.execute() == [big if i % 50 == 0 else (str(i) * 20).encode() for i in range(200)]


def test_many_tls_clients_at_once(tls):
    errors = []

    def worker(w):
        try:
            t = tls_client(tls)
            p = t.pipeline(transaction=False)
            for i in range(300):
                p.set(f"many:{w}:{i}", f"{w}-{i}")
            assert p.execute() == [True] * 300
            p = t.pipeline(transaction=False)
            for i in range(300):
                p.get(f"many:{w}:{i}")
            assert p.execute() == [f"{w}-{i}" for i in range(300)]
            t.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"worker {w}: {e!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors


def test_plaintext_client_on_the_tls_port_is_disconnected(tls):
    before = int(tls.proxy.client().info("stats")["total_tls_errors"])
    busy = tls_client(tls)
    assert busy.set("plain:k", "v") is True  # an open TLS connection across the event
    data = plaintext_ping(tls.tls_port)
    assert b"PONG" not in data  # at most a TLS alert, then the connection closes
    # Others are unaffected (open and new connections), and the failure is counted.
    assert busy.get("plain:k") == "v"
    assert tls_client(tls).get("plain:k") == "v"
    assert tls.proxy.client(decode_responses=True).get("plain:k") == "v"
    wait_for(lambda: int(tls.proxy.client().info("stats")["total_tls_errors"]) > before, "tls error counted")


def test_a_stalled_handshake_blocks_nobody(tls):
    # A client that sends half a ClientHello and then nothing: the one event loop
    # must keep serving everyone else meanwhile.
    s = socket.create_connection(("127.0.0.1", tls.tls_port))
    try:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01")
        t = tls_client(tls)
        for i in range(50):
            assert t.set(f"stall:{i}", i) is True
        assert t.mget([f"stall:{i}" for i in range(50)]) == [str(i) for i in range(50)]
        rc, out, err = cli(tls.certs, tls.tls_port, "GET", "stall:7")
        assert out == "7", err
    finally:
        s.close()
    assert tls_client(tls).ping() is True


def test_client_certificate_optional_is_checked_when_sent(tls, certs):
    with_cert = tls_client(tls, ssl_certfile=certs.client_cert, ssl_keyfile=certs.client_key)
    assert with_cert.ping() is True
    without = tls_client(tls, ssl_certfile=None, ssl_keyfile=None)
    assert without.ping() is True
    # A certificate from a CA headroom does not trust is refused even when optional.
    bad = redis.Redis(port=tls.tls_port, socket_timeout=10, **certs.client_kw(),
                      ssl_certfile=certs.other_server_cert, ssl_keyfile=certs.other_server_key)
    with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
        bad.ping()
    assert with_cert.ping() is True


def test_tls_1_2_is_accepted_by_default(tls, certs):
    s = tls_socket(tls.tls_port, certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    try:
        assert s.version() == "TLSv1.2"
        assert ping_on(s) == b"+PONG\r\n"
    finally:
        s.close()


def test_ioredis_over_tls(tls, certs):
    assert "ioredis ok" in node_check("ioredis_check.js", tls.tls_port, certs.ca)
    assert tls_client(tls).get("io:k7") == "v7"


def test_node_redis_over_tls(tls, certs):
    assert "node-redis ok" in node_check("node_redis_check.js", tls.tls_port, certs.ca)
    assert tls_client(tls).get("nr:a") == "hello"


def node_check(script, port, ca):
    if shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.skip("node modules are not installed (scripts/test runs npm ci)")
    out = subprocess.run(["node", script, str(port), ca], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# --- a TLS-only headroom, client certificates, requirepass ------------------------------


def test_max_clients_over_tls(tls, certs):
    # The refusal is sent once the handshake is done, then the connection closes; a
    # client that leaves frees its place for the next one.
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="tls-max-clients", certs=certs,
                 settings={"tls": tls_section(certs), "backend_tls": backend_section(certs),
                           "limits": "{max_clients: 1}"})
    tls.proxies.append(p)

    def the_one_client():
        # A client that just left may still hold the place until headroom reads its close.
        deadline = time.time() + 20
        while True:
            s = tls_socket(p.port, certs)
            if ping_on(s) == b"+PONG\r\n":
                return s
            s.close()
            assert time.time() < deadline, "the place never came free"
            time.sleep(0.1)

    for _ in range(3):
        first = the_one_client()
        extra = tls_socket(p.port, certs)
        got = b""
        try:
            while True:
                chunk = extra.recv(100)
                if not chunk:
                    break
                got += chunk
        except (ssl.SSLError, ConnectionError):
            pass
        extra.close()
        assert got == b"-ERR max number of clients reached\r\n", got
        first.close()


def test_tls_only_listen_with_required_client_certificates_and_requirepass(tls, certs):
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="tls-only", certs=certs,
                 settings={"tls": tls_section(certs, auth_clients="yes"),
                           "backend_tls": backend_section(certs), "requirepass": "s3cret"})
    tls.proxies.append(p)
    assert p.tls_port == p.port
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "SET", "mtls:k", "v", with_cert=True)
    assert (rc, out) == (0, "OK"), err
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "GET", "mtls:k", with_cert=True)
    assert out == "v", err
    rc, out, err = cli(certs, p.port, "GET", "mtls:k", with_cert=True)
    assert out.startswith("NOAUTH"), out + err
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "wrong", "GET", "mtls:k", with_cert=True)
    assert "WRONGPASS" in out + err or "invalid" in (out + err).lower(), out + err
    # Without a client certificate the handshake is refused: no reply at all.
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "PING")
    assert out != "PONG" and (rc != 0 or "rror" in out + err), (rc, out, err)
    no_cert = redis.Redis(port=p.port, socket_timeout=10, password="s3cret", **certs.client_kw())
    with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
        no_cert.ping()
    # redis-py with the certificate, and the password.
    r = p.client(decode_responses=True, socket_timeout=10)
    assert r.get("mtls:k") == "v"
    assert r.mget("mtls:k", "both:a", "mtls:none") == ["v", tls_client(tls).get("both:a"), None]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=p.port, socket_timeout=10, **certs.client_kw(with_cert=True)).get("mtls:k")
    # The listen port speaks nothing but TLS.
    assert b"PONG" not in plaintext_ping(p.port)
    assert r.ping() is True
    info = r.info("server")
    assert info["tcp_port"] == 0 and info["tls_port"] == p.port


def test_min_version_1_3_refuses_tls_1_2(tls, certs):
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="tls13", certs=certs,
                 settings={"tls": tls_section(certs, min_version='"1.3"'), "backend_tls": backend_section(certs)})
    tls.proxies.append(p)
    with pytest.raises(ssl.SSLError, match="(?i)protocol.version"):
        tls_socket(p.port, certs, maximum_version=ssl.TLSVersion.TLSv1_2).close()
    s = tls_socket(p.port, certs)
    try:
        assert s.version() == "TLSv1.3"
        assert ping_on(s) == b"+PONG\r\n"
    finally:
        s.close()
    assert p.client(decode_responses=True).set("v13:k", "x") is True


# --- headroom to the servers ------------------------------------------------------------


def test_a_tls_node_killed_and_restarted_is_reconnected_over_tls(tls):
    t = tls_client(tls)
    # Values big enough (20 MB in all) to spread over several nodes.
    keys = [f"restart:{i}" for i in range(100)]
    value = {k: k * (200_000 // len(k)) for k in keys}
    for k in keys:
        t.set(k, value[k])
    node = next(n for n in tls.nodes if n.name in tls.node_of(keys[0]))
    on_node = [k for k in keys if node.name in tls.node_of(k)]
    assert len(on_node) < len(keys)
    node.stop()
    with pytest.raises(redis.ResponseError, match=UNAVAILABLE.format(name=node.name, port=node.port)):
        t.get(on_node[0])
    other = next(k for k in keys if k not in on_node)
    assert t.get(other) == value[other]  # other nodes unaffected
    node.start()  # same port, same AOF
    wait_for(lambda: t.get(on_node[0]) == value[on_node[0]], "the node's keys served again over TLS")
    assert [t.get(k) for k in keys] == [value[k] for k in keys]
    with open(tls.proxy.log, errors="replace") as f:  # all of it: read() keeps only the tail
        assert f.read().count(f"node {node.name}: connected") >= 2


def test_the_tls_main_server_killed_and_restarted(tls):
    t = tls_client(tls)
    assert t.set("main:before", "1") is True
    tls.main.proc.kill()
    tls.main.proc.wait()
    # Keys headroom knows keep being served meanwhile.
    assert t.get("main:before") == "1"
    tls.main.start()  # same port, same AOF: the directory comes back
    # New keys can be placed again once headroom is back on the main server over TLS.
    wait_for(lambda: t.set("main:after", "2") is True, "a new key placed after the main server restarted")
    assert t.get("main:after") == "2" and t.get("main:before") == "1"
    assert len(tls.node_of("main:after")) == 1


def test_a_node_with_an_untrusted_certificate_is_unavailable(certs, procs):
    main = procs.server("main", certs, maxmemory="0")
    good = [procs.server(f"good{i}", certs) for i in range(2)]
    rogue = procs.server("rogue", certs, untrusted=True)
    # verify: false trusts it (as redis-cli --insecure): keys land on every node.
    insecure = procs.proxy(main, good + [rogue], "insecure", settings={"backend_tls": {"verify": False}})
    q = insecure.client(decode_responses=True, socket_timeout=10)
    keys = [f"u:{i}" for i in range(60)]
    for k in keys:
        assert q.set(k, k) is True
    on_rogue = [k for k in keys if rogue.client.exists(k)]
    assert on_rogue, "verify: false put no key on the untrusted node"
    assert q.mget(keys) == keys
    assert "node rogue: connected" in read(insecure.log)

    # A verifying headroom: the rogue node is unavailable, its keys get the error.
    p = procs.proxy(main, good + [rogue], "verifying", settings={"backend_tls": backend_section(certs)})
    r = p.client(decode_responses=True, socket_timeout=10)
    with pytest.raises(redis.ResponseError, match=UNAVAILABLE.format(name="rogue", port=rogue.port)):
        r.get(on_rogue[0])
    elsewhere = next(k for k in keys if k not in on_rogue)
    assert r.get(elsewhere) == elsewhere
    assert "certificate verify failed" in read(p.log)
    # New keys go only where the certificate verified.
    before = rogue.client.dbsize()
    for i in range(40):
        assert r.set(f"new:{i}", "v") is True
    assert rogue.client.dbsize() == before
    nodes = r.info("nodes")
    assert nodes["rogue"]["status"] == "down" and nodes["good0"]["status"] == "up", nodes
    # The insecure one still serves them.
    assert q.get(on_rogue[0]) == on_rogue[0]


def test_backend_server_name(certs, procs):
    # headroom loads the directory from the main server before it listens, so the main
    # server must verify; its certificate also holds main.example, the nodes' do not.
    main = procs.server("main", certs, maxmemory="0",
                        cert=certs.leaf("main-server", "IP:127.0.0.1,DNS:localhost,DNS:main.example"))
    nodes = [procs.server(f"node{i}", certs) for i in range(2)]
    ok = procs.proxy(main, nodes, "sni-localhost", settings={"backend_tls": backend_section(certs, server_name="localhost")})
    r = ok.client(decode_responses=True, socket_timeout=10)
    keys = [f"sni:{i}" for i in range(20)]
    for k in keys:
        assert r.set(k, k) is True
    assert r.mget(keys) == keys
    # server_name main.example: the main server verifies, the nodes do not.
    bad = procs.proxy(main, nodes, "sni-main", settings={"backend_tls": backend_section(certs, server_name="main.example")})
    b = bad.client(decode_responses=True, socket_timeout=10)
    node = next(n for n in nodes if n.client.exists(keys[0]))
    with pytest.raises(redis.ResponseError, match=UNAVAILABLE.format(name=node.name, port=node.port)):
        b.get(keys[0])
    wait_for(lambda: "certificate verify failed" in read(bad.log), "the log naming the verify failure")
    with pytest.raises(redis.ResponseError, match="no data node can take a new key"):
        b.set("sni:new", "v")  # no node to place it on
    assert r.get(keys[0]) == keys[0]


def test_servers_that_require_client_certificates(certs, procs):
    main = procs.server("main", certs, maxmemory="0", auth_clients="yes")
    nodes = [procs.server(f"node{i}", certs, auth_clients="yes") for i in range(2)]
    p = procs.proxy(main, nodes, "with-cert",
                    settings={"backend_tls": backend_section(certs, cert_file=certs.client_cert,
                                                             key_file=certs.client_key)})
    r = p.client(decode_responses=True, socket_timeout=10)
    keys = [f"cc:{i}" for i in range(30)]
    for k in keys:
        assert r.set(k, k) is True
    assert r.mget(keys) == keys
    assert sum(n.client.dbsize() for n in nodes) == len(keys)
    assert min(n.client.dbsize() for n in nodes) > 0


def test_a_node_requiring_a_client_certificate_headroom_lacks(certs, procs):
    # TLS 1.3: the handshake completes on headroom's side and the server's
    # "certificate required" alert comes with the first read.
    main = procs.server("main", certs, maxmemory="0")
    open_node = procs.server("open", certs)
    strict = procs.server("strict", certs, auth_clients="yes")
    writer = procs.proxy(main, [open_node, strict], "writer",
                         settings={"backend_tls": backend_section(certs, cert_file=certs.client_cert,
                                                                  key_file=certs.client_key)})
    writer.wait_nodes_up()  # both nodes must be able to take keys before they are written
    w = writer.client(decode_responses=True, socket_timeout=10)
    keys = [f"req:{i}" for i in range(30)]
    for k in keys:
        assert w.set(k, k) is True
    on_strict = [k for k in keys if strict.client.exists(k)]
    assert on_strict and len(on_strict) < len(keys)
    q = procs.proxy(main, [open_node, strict], "without-cert", settings={"backend_tls": backend_section(certs)})
    c = q.client(decode_responses=True, socket_timeout=10)
    with pytest.raises(redis.ResponseError, match=UNAVAILABLE.format(name="strict", port=strict.port)):
        c.get(on_strict[0])
    elsewhere = next(k for k in keys if k not in on_strict)
    assert c.get(elsewhere) == elsewhere
    assert "certificate required" in read(q.log)
    # New keys go to the node it can use.
    before = strict.client.dbsize()
    for i in range(20):
        assert c.set(f"req:new:{i}", "v") is True
    assert strict.client.dbsize() == before
    assert w.get(on_strict[0]) == on_strict[0]


def test_a_bad_key_is_reported_at_startup(certs, workdir):
    cfg = os.path.join(workdir, "bad.yml")
    with open(cfg, "w") as f:
        f.write("main: {name: main, address: 127.0.0.1:5000}\n"
                "nodes: [{name: n1, address: 127.0.0.1:5300}]\n"
                f"tls: {{cert_file: {certs.server_cert}, key_file: {certs.client_key}}}\n")
    out = subprocess.run([headroom_bin(), "-t", "-c", cfg], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "tls.key_file" in out.stderr and "mismatch" in out.stderr, out.stderr


def peer_certificate(port, certs):
    s = tls_socket(port, certs)
    assert ping_on(s) == b"+PONG\r\n"
    return s, s.getpeercert(binary_form=True)


def test_sighup_reloads_certificates(tls, certs, workdir):
    cert, key = os.path.join(workdir, "live.crt"), os.path.join(workdir, "live.key")
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="rotating", certs=certs,
                 settings={"tls": {"cert_file": cert, "key_file": key}, "backend_tls": backend_section(certs)})
    tls.proxies.append(p)
    old_conn, first = peer_certificate(p.port, certs)
    # A new certificate from the same CA replaces the files; SIGHUP loads it.
    new_cert, new_key = certs.leaf("rotated", "IP:127.0.0.1,DNS:localhost")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "certificates reloaded" in read(p.log), "the reload")
    conn, second = peer_certificate(p.port, certs)
    assert second != first
    conn.close()
    assert ping_on(old_conn) == b"+PONG\r\n"  # a connection opened before keeps working
    old_conn.close()
    # A file that does not load leaves the current certificate in place.
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "certificates not reloaded" in read(p.log), "the failed reload")
    conn, third = peer_certificate(p.port, certs)
    assert third == second
    conn.close()
    assert p.client().ping() is True

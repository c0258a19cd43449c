"""TLS: clients to headroom (redis-cli --tls, redis-py, ioredis) and headroom to the
main server and data nodes, all redis-server processes speaking TLS only, with
certificates the tests make with the openssl command line."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import redis

from cluster import Certs, Cluster, Headroom, RedisServer, free_port, headroom_bin, read

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="headroom-certs-")
    yield Certs(d)
    shutil.rmtree(d, ignore_errors=True)


def tls_settings(certs, **extra):
    """The `tls` section: headroom's certificate, the CA for client certificates."""
    fields = {"cert_file": certs.server_cert, "key_file": certs.server_key, "ca_file": certs.ca, **extra}
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


@pytest.fixture(scope="module")
def tls(certs):
    """Every server TLS-only; headroom plaintext on `listen` and TLS on tls.listen;
    AOF on the data nodes so a restarted node still has its keys."""
    tls_port = free_port()
    c = Cluster(certs=certs, node_extra=("--appendonly", "yes"),
                settings={"tls": tls_settings(certs, listen=f"127.0.0.1:{tls_port}", auth_clients="optional"),
                          "backend_tls": f"{{ca_file: {certs.ca}}}"})
    c.tls_port = tls_port
    yield c
    c.close()


def tls_client(cluster, **kw):
    args = {"socket_timeout": 10, "decode_responses": True, **cluster.certs.client_kw(), **kw}
    return redis.Redis(port=cluster.tls_port, **args)


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


def test_redis_cli_over_tls_end_to_end(tls):
    rc, out, err = cli(tls.certs, tls.tls_port, "PING")
    assert (rc, out) == (0, "PONG"), err
    keys = [f"cli:{i}" for i in range(40)]
    rc, out, err = cli(tls.certs, tls.tls_port, "MSET", *[x for k in keys for x in (k, k.upper())])
    assert out == "OK", err
    rc, out, err = cli(tls.certs, tls.tls_port, "MGET", *keys)
    assert out.split("\n") == [k.upper() for k in keys]
    # Spread over the nodes, which were reached over TLS.
    assert len({n for k in keys for n in tls.node_of(k)}) >= 2
    rc, out, err = cli(tls.certs, tls.tls_port, "INFO", "server")
    assert f"tls_port:{tls.tls_port}" in out and f"tcp_port:{tls.proxy.port}" in out


def test_tls_and_plaintext_ports_serve_the_same_keys(tls):
    t = tls_client(tls)
    plain = tls.proxy.client(decode_responses=True)
    assert t.set("both:a", "from-tls") is True
    assert plain.get("both:a") == "from-tls"
    assert plain.set("both:b", "from-plain") is True
    assert t.get("both:b") == "from-plain"
    assert t.hset("both:h", mapping={"f1": "1", "f2": "2"}) == 2
    assert plain.hgetall("both:h") == {"f1": "1", "f2": "2"}


def test_large_values_and_deep_pipelines_over_tls(tls):
    t = tls_client(tls, decode_responses=False)
    big = os.urandom(5 << 20)
    assert t.set("tls:big", big) is True
    assert t.get("tls:big") == big
    p = t.pipeline(transaction=False)
    for i in range(10000):
        p.set(f"tls:deep:{i}", str(i) * 20)
    assert all(p.execute())
    p = t.pipeline(transaction=False)
    for i in range(10000):
        p.get(f"tls:deep:{i}")
    assert p.execute() == [(str(i) * 20).encode() for i in range(10000)]
    keys = [f"tls:deep:{i}" for i in range(0, 10000, 7)]
    assert t.mget(keys) == [(k.split(":")[2] * 20).encode() for k in keys]


def test_plaintext_client_on_the_tls_port_is_disconnected(tls):
    before = int(tls.proxy.client().info("stats")["total_tls_errors"])
    s = socket.create_connection(("127.0.0.1", tls.tls_port))
    s.settimeout(10)
    s.sendall(b"PING\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"PONG" not in data  # at most a TLS alert, then the connection closes
    s.close()
    # Others are unaffected, and the failure is counted.
    assert tls_client(tls).ping() is True
    wait_for(lambda: int(tls.proxy.client().info("stats")["total_tls_errors"]) > before, "tls error counted")


def test_client_certificate_optional_is_checked_when_sent(tls, certs):
    with_cert = tls_client(tls, ssl_certfile=certs.client_cert, ssl_keyfile=certs.client_key)
    assert with_cert.ping() is True
    # A certificate from a CA headroom does not trust is refused even when optional.
    bad = redis.Redis(port=tls.tls_port, socket_timeout=10, ssl=True, ssl_ca_certs=certs.ca,
                      ssl_certfile=certs.other_server_cert, ssl_keyfile=certs.other_server_key)
    with pytest.raises((redis.ConnectionError, ssl.SSLError, OSError)):
        bad.ping()


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
    with pytest.raises(redis.ResponseError, match=f"node {node.name} .* is unavailable"):
        t.get(on_node[0])
    other = next(k for k in keys if k not in on_node)
    assert t.get(other) == value[other]  # other nodes unaffected
    node.start()  # same port, same AOF
    wait_for(lambda: t.get(on_node[0]) == value[on_node[0]], "the node's keys served again over TLS")
    assert [t.get(k) for k in keys] == [value[k] for k in keys]
    assert read(tls.proxy.log).count(f"node {node.name}: connected") >= 2


def test_tls_only_listen_with_required_client_certificates_and_requirepass(tls, certs):
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="tls-only",
                 settings={"tls": tls_settings(certs, auth_clients="yes"),
                           "backend_tls": f"{{ca_file: {certs.ca}}}", "requirepass": "s3cret"},
                 client_kw={**certs.client_kw(with_cert=True)})
    tls.proxies.append(p)
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "SET", "mtls:k", "v", with_cert=True)
    assert (rc, out) == (0, "OK"), err
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "GET", "mtls:k", with_cert=True)
    assert out == "v"
    rc, out, err = cli(certs, p.port, "GET", "mtls:k", with_cert=True)
    assert out.startswith("NOAUTH"), out + err
    # Without a client certificate the handshake is refused: no reply at all.
    rc, out, err = cli(certs, p.port, "--no-auth-warning", "-a", "s3cret", "PING")
    assert out != "PONG" and (rc != 0 or "rror" in out + err)
    # The listen port speaks nothing but TLS.
    s = socket.create_connection(("127.0.0.1", p.port))
    s.settimeout(10)
    s.sendall(b"PING\r\n")
    assert b"PONG" not in s.recv(4096)
    s.close()
    info = p.client().info("server")
    assert info["tcp_port"] == 0 and info["tls_port"] == p.port


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="headroom-tls-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_node_with_an_untrusted_certificate_is_unavailable(certs, workdir):
    servers, proxies = [], []
    try:
        main = RedisServer(workdir, "main", "0", certs=certs)
        servers.append(main)
        good = [RedisServer(workdir, f"good{i}", certs=certs) for i in range(2)]
        servers += good
        rogue = RedisServer(workdir, "rogue", certs=certs, untrusted=True)
        servers.append(rogue)
        p = Headroom(workdir, main, good + [rogue], name="verifying",
                     settings={"backend_tls": f"{{ca_file: {certs.ca}}}"})
        proxies.append(p)
        r = p.client(decode_responses=True)
        for i in range(60):
            assert r.set(f"u:{i}", "v") is True
        # New keys only where the certificate verified.
        assert rogue.client.dbsize() == 0
        assert sum(g.client.dbsize() for g in good) == 60
        assert "certificate verify failed" in read(p.log)
        nodes = r.info("nodes")
        assert nodes["rogue"]["status"] == "down" and nodes["good0"]["status"] == "up", nodes

        # verify: false trusts it (as redis-cli --insecure).
        q = Headroom(workdir, main, good + [rogue], name="insecure",
                     settings={"backend_tls": "{verify: false}"})
        proxies.append(q)
        wait_for(lambda: "node rogue: connected" in read(q.log), "the insecure proxy connects to rogue")
    finally:
        failures = []
        for x in proxies:
            try:
                x.stop()
            except AssertionError as e:
                failures.append(str(e))
        for s in servers:
            s.stop()
        assert not failures, "\n".join(failures)


def test_a_bad_key_is_reported_at_startup(certs, workdir):
    cfg = os.path.join(workdir, "bad.yml")
    with open(cfg, "w") as f:
        f.write("main: {name: main, address: 127.0.0.1:5000}\n"
                "nodes: [{name: n1, address: 127.0.0.1:5300}]\n"
                f"tls: {{cert_file: {certs.server_cert}, key_file: {certs.client_key}}}\n")
    out = subprocess.run([headroom_bin(), "-t", "-c", cfg], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "tls.key_file" in out.stderr and "mismatch" in out.stderr, out.stderr


def test_ioredis_over_tls(tls, certs):
    if shutil.which("node") is None or not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.skip("node modules are not installed (scripts/test runs npm ci)")
    script = ("const Redis = require('ioredis'); const fs = require('fs');"
              f"const r = new Redis({{port: {tls.tls_port}, host: '127.0.0.1',"
              f" tls: {{ca: fs.readFileSync('{certs.ca}'), servername: 'localhost'}}}});"
              "(async () => { await r.set('io:tls', 'yes'); const v = await r.get('io:tls');"
              " const m = await r.mget('io:tls', 'both:a'); console.log('got', v, m.length);"
              " r.disconnect(); })().catch(e => { console.error(e); process.exit(1); });")
    out = subprocess.run(["node", "-e", script], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "got yes 2" in out.stdout, out.stdout + out.stderr
    assert tls_client(tls).get("io:tls") == "yes"


def peer_certificate(port, certs):
    ctx = ssl.create_default_context(cafile=certs.ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    s.settimeout(10)
    s.sendall(b"PING\r\n")
    assert s.recv(100) == b"+PONG\r\n"
    return s, s.getpeercert(binary_form=True)


def test_sighup_reloads_certificates(tls, certs, workdir):
    cert, key = os.path.join(workdir, "live.crt"), os.path.join(workdir, "live.key")
    shutil.copy(certs.server_cert, cert)
    shutil.copy(certs.server_key, key)
    p = Headroom(tls.workdir, tls.main, tls.nodes, name="rotating",
                 settings={"tls": f"{{cert_file: {cert}, key_file: {key}}}",
                           "backend_tls": f"{{ca_file: {certs.ca}}}"},
                 client_kw=certs.client_kw())
    tls.proxies.append(p)
    old_conn, first = peer_certificate(p.port, certs)
    # A new certificate from the same CA replaces the files; SIGHUP loads it.
    new_cert, new_key = certs._leaf("rotated", "ca", "IP:127.0.0.1,DNS:localhost")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "certificates reloaded" in read(p.log), "the reload")
    conn, second = peer_certificate(p.port, certs)
    assert second != first
    conn.close()
    old_conn.sendall(b"PING\r\n")  # a connection opened before keeps working
    assert old_conn.recv(100) == b"+PONG\r\n"
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

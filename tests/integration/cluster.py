"""Real processes for the integration tests: five redis-server processes (main +
four data nodes), a reference redis-server to compare replies with, and headroom in
front. Every process is started in the foreground as a child and stopped (terminate,
then kill) when the fixture ends, even when a test fails."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def headroom_bin():
    env = os.environ.get("HEADROOM_BIN")
    if env:
        return env
    for cand in sorted(glob.glob(os.path.join(ROOT, "build*", "headroom")), key=os.path.getmtime, reverse=True):
        return cand
    raise RuntimeError("no headroom binary: build it or set HEADROOM_BIN")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, timeout=20.0, proc=None, log=None, password=None, client_kw=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited: {read(log)}")
        try:
            if redis.Redis(port=port, socket_timeout=1, password=password, **(client_kw or {})).ping():
                return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers PING on port {port}: {read(log)}")


def entry_node(value):
    """The node an entry names: its value is "<node> <version>[ R| M<to>:<n>]" (docs/directory.md)."""
    return None if value is None else (value.decode() if isinstance(value, bytes) else value).split()[0]


def bucket_of(key):
    """The main server's hash holding `key`'s directory entry (balancer/main_store.h)."""
    h = 14695981039346656037
    for c in key.encode() if isinstance(key, str) else key:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"hr:dir:{h % 65536}"


def read(path):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()[-4000:]


def stop(proc, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Certs:
    """Certificates made with the openssl command line: a CA; a server certificate it
    signs for 127.0.0.1 and localhost; a client certificate it signs; and an unrelated
    CA with a server certificate of its own (one nobody should trust)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "certs")
        os.makedirs(self.dir, exist_ok=True)
        self.ca, self.ca_key = self._ca("ca")
        self.server_cert, self.server_key = self._leaf("server", "ca", "IP:127.0.0.1,DNS:localhost")
        self.client_cert, self.client_key = self._leaf("client", "ca", None)
        self.other_ca, _ = self._ca("other-ca")
        self.other_server_cert, self.other_server_key = self._leaf("other-server", "other-ca",
                                                                   "IP:127.0.0.1,DNS:localhost")

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def _ca(self, name):
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=headroom test {name}",
                      "-keyout", f"{name}.key", "-out", f"{name}.crt")
        return self.path(f"{name}.crt"), self.path(f"{name}.key")

    def leaf(self, name, san, ca="ca"):
        """Another server certificate, signed by `ca`, with subjectAltName `san`."""
        return self._leaf(name, ca, san)

    def _leaf(self, name, ca, san):
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                      "-out", f"{name}.csr")
        ext = self.path(f"{name}.ext")
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                      "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt")
        return self.path(f"{name}.crt"), self.path(f"{name}.key")

    def client_kw(self, with_cert=False, ca=None):
        """redis-py (4.x) arguments for a TLS connection that trusts the CA (or `ca`)
        and checks the server's name (redis-py's default host, localhost, is in the
        certificates' subjectAltName); `with_cert` sends the client certificate."""
        kw = {"ssl": True, "ssl_ca_certs": ca or self.ca, "ssl_cert_reqs": "required", "ssl_check_hostname": True}
        if with_cert:
            kw.update(ssl_certfile=self.client_cert, ssl_keyfile=self.client_key)
        return kw

    def cli(self, with_cert=False):
        """redis-cli arguments for the same."""
        args = ["--tls", "--cacert", self.ca]
        if with_cert:
            args += ["--cert", self.client_cert, "--key", self.client_key]
        return args


class RedisServer:
    def __init__(self, workdir, name, maxmemory="256mb", extra=(), certs=None, untrusted=False, auth_clients="no",
                 cert=None):
        """With `certs`, the server speaks TLS only (`--port 0 --tls-port P`);
        `auth_clients` is its --tls-auth-clients (no: clients need no certificate;
        yes: one the CA signed); `untrusted` makes it present the unrelated CA's
        certificate, `cert` (a (cert, key) pair the CA signed) another one.
        `client_kw` is what redis-py needs to reach it."""
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "redis.log")
        if certs is None:
            listen = ["--port", str(self.port)]
            self.client_kw = {}
        else:
            if untrusted:
                cert, key = certs.other_server_cert, certs.other_server_key
            else:
                cert, key = cert or (certs.server_cert, certs.server_key)
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", cert, "--tls-key-file", key,
                      "--tls-ca-cert-file", certs.ca, "--tls-auth-clients", auth_clients]
            self.client_kw = certs.client_kw(with_cert=auth_clients != "no",
                                             ca=certs.other_ca if untrusted else certs.ca)
        args = ["redis-server", *listen, "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--maxmemory", maxmemory,
                "--maxmemory-policy", "noeviction", "--logfile", self.log, *extra]  # later arguments win
        self.args = args
        self.start()
        self.client = redis.Redis(port=self.port, socket_timeout=10, **self.client_kw)
        self.paused = False

    def start(self, timeout=20.0):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            wait_ping(self.port, timeout=timeout, proc=self.proc, log=self.log, client_kw=self.client_kw)
        except BaseException:
            stop(self.proc)  # no caller holds it yet: do not leave it running
            raise

    def up(self):
        """Running and not stopped with SIGSTOP."""
        return self.proc.poll() is None and not self.paused

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def kill(self):
        """SIGKILL, as a crash: no shutdown, no final save. start() brings it back on
        the same port with the same arguments and data directory, replaying its AOF
        when it has one (`--appendonly yes`)."""
        self.proc.kill()
        self.proc.wait()
        self.paused = False

    def stop(self):
        if self.paused:
            self.resume()
        stop(self.proc)


def run_headroom(workdir, main, nodes, name):
    """Runs headroom once in the foreground on a minimal config (`name`.yml) and returns
    the finished process: for configs it must refuse at start."""
    cfg = f"{workdir}/{name}.yml"
    with open(cfg, "w") as f:
        f.write(f"listen: 127.0.0.1:{free_port()}\nmain: {{name: main, address: 127.0.0.1:{main.port}}}\nnodes:\n")
        for n in nodes:
            f.write(f"  - {{name: {n.name}, address: 127.0.0.1:{n.port}}}\n")
    return subprocess.run([headroom_bin(), "-c", cfg], capture_output=True, text=True, timeout=60)


def yaml_value(v):
    """A settings value as YAML: strings as written (existing callers pass YAML text
    such as "{connect_ms: 1000}"), booleans as true/false, dicts as flow mappings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yaml_value(x)}" for k, x in v.items()) + "}"
    return str(v)


class Headroom:
    def __init__(self, workdir, main, nodes, name="headroom", settings=None, backend_password=None, client_kw=None,
                 certs=None, env=None):
        """`client_kw`: what a redis-py client needs to reach the listen port. Without
        it, when `settings` has a `tls` section given as a dict and `certs` is given:
        with tls.listen, `listen` stays plaintext and `tls_port`/`tls_client()` reach
        the TLS port; without it, `listen` speaks TLS only, so wait_ping and client()
        use TLS (with the client certificate, which any auth_clients accepts)."""
        self.port = free_port()
        self.tls_port = None
        tls = (settings or {}).get("tls")
        self.tls_client_kw = certs.client_kw(with_cert=True) if certs is not None else {}
        if isinstance(tls, dict):
            if "listen" in tls:
                self.tls_port = int(str(tls["listen"]).rsplit(":", 1)[1])
            else:
                self.tls_port = self.port
                if client_kw is None:
                    if certs is None:
                        raise ValueError("a TLS-only listen port needs `certs` or `client_kw`")
                    client_kw = self.tls_client_kw
        self.client_kw = client_kw or {}
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "headroom.yml")
        pw = f", password: {backend_password}" if backend_password else ""
        lines = [f"listen: 127.0.0.1:{self.port}",
                 f"main: {{name: main, address: 127.0.0.1:{main.port}{pw}}}",
                 "nodes:"]
        lines += [f"  - {{name: {n.name}, address: 127.0.0.1:{n.port}{pw}}}" for n in nodes]
        top = {"poll_interval_ms": "100", "timeouts": "{connect_ms: 1000, request_ms: 5000}", "log": "{level: info}",
               "allow_dangerous_commands": "[flushall, flushdb, keys]",
               # Keys move only when a test asks (HEADROOM REBALANCE, DRAIN, MOVE).
               "rebalance": "{enabled: false}"}
        top.update(settings or {})
        lines += [f"{k}: {yaml_value(v)}" for k, v in top.items()]
        self.password = top.get("requirepass")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = os.path.join(self.dir, "headroom.log")
        self.env = {**os.environ, **(env or {})}
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([headroom_bin(), "-c", self.config], stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env)
        try:
            wait_ping(self.port, proc=self.proc, log=self.log, password=self.password, client_kw=self.client_kw)
        except BaseException:
            stop(self.proc)  # no caller holds it yet: do not leave it running
            self.proc = None
            self.logf.close()
            raise

    def stop(self):
        """Stops headroom gracefully; a sanitizer report or a bad exit is a failure."""
        if self.proc is None:
            return
        running = self.proc.poll() is None
        stop(self.proc)
        self.logf.close()
        with open(self.log, errors="replace") as f:
            log = f.read()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer"):
            if marker in log:
                raise AssertionError(f"headroom's sanitizer report:\n{log}")
        if running and self.proc.returncode != 0:
            raise AssertionError(f"headroom exited with {self.proc.returncode}:\n{log}")
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def flushes(self):
        """FLUSHALL messages the proxy has received."""
        return int(self.client(socket_timeout=10).info("directory")["directory_flushes_received"])

    def wait_current(self, timeout=30.0, flushed_seq=0, flushes_above=-1):
        """Waits until the proxy's directory is current (loaded, following the stream),
        has seen the flush numbered `flushed_seq` if one is given, and has received
        more than `flushes_above` FLUSHALL messages."""
        c = self.client(socket_timeout=10)
        deadline = time.time() + timeout
        while True:
            info = c.info("directory")
            if info.get("directory_current") == 1 and int(info.get("directory_flushed_seq", 0)) >= flushed_seq and \
                    int(info["directory_flushes_received"]) > flushes_above:
                break
            if time.time() > deadline:
                raise AssertionError(f"{self.dir}: directory not current after {timeout} s")
            time.sleep(0.05)

    def wait_nodes_up(self, timeout=30.0):
        """Waits until INFO nodes shows every data node up (connected and polled):
        headroom listens once the directory is loaded, maybe before every node is."""
        c = self.client(socket_timeout=10)
        deadline = time.time() + timeout
        while True:
            nodes = {k: v for k, v in c.info("nodes").items() if isinstance(v, dict) and k != "main"}
            if nodes and all(v.get("status") == "up" for v in nodes.values()):
                return
            if time.time() > deadline:
                raise AssertionError(f"nodes not all up after {timeout} s: {nodes}")
            time.sleep(0.05)

    def client(self, **kw):
        kw.setdefault("password", self.password)
        for k, v in self.client_kw.items():
            kw.setdefault(k, v)
        return redis.Redis(port=self.port, **kw)

    def tls_client(self, **kw):
        """A redis-py client on the TLS port (tls.listen, or the TLS-only listen port)."""
        assert self.tls_port is not None and self.tls_client_kw, "this headroom has no TLS port, or no certs"
        kw.setdefault("password", self.password)
        for k, v in self.tls_client_kw.items():
            kw.setdefault(k, v)
        return redis.Redis(port=self.tls_port, **kw)


class Cluster:
    """main + node1..node4 (+ a reference server) and one headroom in front."""

    def __init__(self, maxmemory=("256mb",) * 4, settings=None, main_extra=(), certs=None, node_extra=(),
                 proxy_client_kw=None, proxy_env=None):
        """`certs`: every server speaks TLS only, with certificates from it.
        `proxy_client_kw`: how clients reach headroom (when its listen port is TLS)."""
        self.settings = settings
        self.certs = certs
        self.proxy_client_kw = proxy_client_kw
        self.proxy_env = proxy_env
        self.workdir = tempfile.mkdtemp(prefix="headroom-it-")
        self.servers = []
        self.proxies = []
        try:
            self.main = self._server("main", "0", main_extra)
            self.nodes = [self._server(f"node{i + 1}", maxmemory[i], node_extra) for i in range(4)]
            self.reference = self._server("reference", "0")
            self.proxy = self.add_proxy("headroom")
        except Exception:
            self.close()
            raise

    def _server(self, name, maxmemory, extra=()):
        s = RedisServer(self.workdir, name, maxmemory, extra, certs=self.certs)
        self.servers.append(s)
        return s

    def add_proxy(self, name):
        p = Headroom(self.workdir, self.main, self.nodes, name=name, settings=self.settings,
                     client_kw=self.proxy_client_kw, certs=self.certs, env=self.proxy_env)
        self.proxies.append(p)
        return p

    def flushall(self):
        running = [p for p in self.proxies if p.proc is not None]
        before = [p.flushes() for p in running]
        for s in self.servers:
            s.client.flushall()
        # The main server's directory went back behind the proxies' backs: each reloads
        # it all (and the FLUSHALL through headroom marks what it had retiring).
        self.proxy.client().flushall()
        # FLUSHALL is answered once the nodes are empty; the directory's flush on the
        # main server follows, and its message. Each proxy has taken that message (a
        # proxy that loaded before the main server went back finds that out at that
        # message, and reloads) and is current again. (Its number says nothing: every
        # flush here is number 1 of a fresh stream.)
        for p, seen in zip(running, before):
            p.wait_current(flushes_above=seen)
        # The main server's flush dropped every registration too: each proxy finds that
        # out at its next heartbeat and starts over under a new id (reloading again).
        # Done once each is registered again, and current.
        deadline = time.time() + 30
        for p in running:
            c = p.client(socket_timeout=10)
            while True:
                info = c.info("directory")
                if info.get("directory_current") == 1 and \
                        self.main.client.hexists("hr:proxies", str(info.get("proxy_id"))):
                    break
                assert time.time() < deadline, f"{p.dir}: not registered again after the flush"
                time.sleep(0.05)

    def node_of(self, key):
        """The data nodes that hold `key`, checked on the nodes directly."""
        return [n.name for n in self.nodes if n.up() and n.client.exists(key)]

    def logs(self):
        return "\n".join(f"--- {p.log}\n{read(p.log)}" for p in self.proxies)

    def close(self):
        failures = []
        for p in self.proxies:
            try:
                p.stop()
            except AssertionError as e:
                failures.append(str(e))
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        assert not failures, "\n".join(failures)


def raw(client, *cmd):
    """Runs one command and returns Redis's reply as sent (no redis-py reply callbacks);
    a Redis error is raised as redis.ResponseError."""
    conn = client.connection_pool.get_connection(cmd[0])
    try:
        conn.send_command(*cmd)
        return conn.read_response()
    finally:
        client.connection_pool.release(conn)


def wait_for(cond, timeout=30, what="condition"):
    """Waits until cond() holds; `what` (or what()) says what did not happen."""
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, what() if callable(what) else what
        time.sleep(0.05)


def leased(r):
    """Connections headroom has leased to clients (WATCH, blocking calls), INFO clients."""
    return int(r.info("clients")["leased_connections"])


def keys_on_two_nodes(c, r, first, prefix, write):
    """`first` and another key (returned) written with `write(key)` through headroom
    that landed on different nodes: a megabyte beside the first key makes its node no
    longer the emptiest."""
    write(first)
    (node,) = c.node_of(first)
    for i in range(20):
        r.set(f"{prefix}:fill{i}", "x" * 1_000_000)
        k = f"{prefix}:b{i}"
        write(k)
        if c.node_of(k) != [node]:
            return k
    raise AssertionError("20 new keys after a megabyte each all went to one node")

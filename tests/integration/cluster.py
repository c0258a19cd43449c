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


def wait_ping(port, timeout=20.0, proc=None, log=None, password=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited: {read(log)}")
        try:
            if redis.Redis(port=port, socket_timeout=1, password=password).ping():
                return
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answers PING on port {port}: {read(log)}")


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


class RedisServer:
    def __init__(self, workdir, name, maxmemory="256mb", extra=()):
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.log = os.path.join(self.dir, "redis.log")
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, "--maxmemory", maxmemory,
                "--maxmemory-policy", "noeviction", "--logfile", self.log, *extra]  # later arguments win
        self.args = args
        self.start()
        self.client = redis.Redis(port=self.port, socket_timeout=10)
        self.paused = False

    def start(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_ping(self.port, proc=self.proc, log=self.log)

    def up(self):
        """Running and not stopped with SIGSTOP."""
        return self.proc.poll() is None and not self.paused

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self):
        if self.paused:
            self.resume()
        stop(self.proc)


class Headroom:
    def __init__(self, workdir, main, nodes, name="headroom", settings=None, backend_password=None):
        self.port = free_port()
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.config = os.path.join(self.dir, "headroom.yml")
        pw = f", password: {backend_password}" if backend_password else ""
        lines = [f"listen: 127.0.0.1:{self.port}",
                 f"main: {{name: main, address: 127.0.0.1:{main.port}{pw}}}",
                 "nodes:"]
        lines += [f"  - {{name: {n.name}, address: 127.0.0.1:{n.port}{pw}}}" for n in nodes]
        top = {"poll_interval_ms": "100", "timeouts": "{connect_ms: 1000, request_ms: 5000}", "log": "{level: info}",
               "allow_dangerous_commands": "[flushall, flushdb, keys]"}
        top.update(settings or {})
        lines += [f"{k}: {v}" for k, v in top.items()]
        self.password = top.get("requirepass")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = os.path.join(self.dir, "headroom.log")
        self.proc = None
        self.start()

    def start(self):
        self.logf = open(self.log, "a")
        self.proc = subprocess.Popen([headroom_bin(), "-c", self.config], stdout=self.logf, stderr=subprocess.STDOUT)
        wait_ping(self.port, proc=self.proc, log=self.log, password=self.password)

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

    def client(self, **kw):
        kw.setdefault("password", self.password)
        return redis.Redis(port=self.port, **kw)


class Cluster:
    """main + node1..node4 (+ a reference server) and one headroom in front."""

    def __init__(self, maxmemory=("256mb",) * 4, settings=None, main_extra=()):
        self.settings = settings
        self.workdir = tempfile.mkdtemp(prefix="headroom-it-")
        self.servers = []
        self.proxies = []
        try:
            self.main = self._server("main", "0", main_extra)
            self.nodes = [self._server(f"node{i + 1}", maxmemory[i]) for i in range(4)]
            self.reference = self._server("reference", "0")
            self.proxy = self.add_proxy("headroom")
        except Exception:
            self.close()
            raise

    def _server(self, name, maxmemory, extra=()):
        s = RedisServer(self.workdir, name, maxmemory, extra)
        self.servers.append(s)
        return s

    def add_proxy(self, name):
        p = Headroom(self.workdir, self.main, self.nodes, name=name, settings=self.settings)
        self.proxies.append(p)
        return p

    def flushall(self):
        for s in self.servers:
            s.client.flushall()
        # proxies drop their cached entries through the directory's flush event
        self.proxy.client().flushall()  # the directory, through headroom

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

"""ioredis, node-redis 4 and node-redis 5 (RESP2 and RESP3), unchanged, through headroom."""
import os
import shutil
import subprocess

import pytest

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def run(script, port, *args):
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        pytest.skip("node modules are not installed (scripts/test runs npm ci)")
    out = subprocess.run(["node", script, str(port), *args], cwd=NODE_DIR, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_ioredis(clean):
    assert "ioredis ok" in run("ioredis_check.js", clean.proxy.port)


def test_node_redis(clean):
    assert "node-redis ok" in run("node_redis_check.js", clean.proxy.port)


@pytest.mark.parametrize("resp", ["2", "3"])
def test_node_redis_5(clean, resp):
    assert f"node-redis 5 RESP{resp} ok" in run("node_redis5_check.js", clean.proxy.port, resp)


def test_node_redis_client_commands(clean):
    # clientInfo() and clientList() parse headroom's CLIENT INFO/LIST lines
    assert "node-redis client ok" in run("node_redis_client_check.js", clean.proxy.port)

import pytest
import redis

from cluster import Cluster


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    yield c
    c.close()


@pytest.fixture
def clean(cluster):
    """A cluster with every server empty (data nodes, main, reference)."""
    cluster.flushall()
    return cluster


@pytest.fixture
def r(clean):
    return clean.proxy.client(decode_responses=True)


@pytest.fixture
def ref(clean):
    return redis.Redis(port=clean.reference.port, decode_responses=True)


@pytest.fixture
def own():
    """Makes clusters of the test's own (Cluster's arguments), closed when it ends."""
    made = []

    def make(**kw):
        c = Cluster(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def pytest_runtest_makereport(item, call):
    # On failure, show headroom's log: it says what the proxy saw.
    if call.when == "call" and call.excinfo is not None and "cluster" in item.fixturenames:
        c = item.funcargs.get("cluster")
        if c is not None:
            item.add_report_section("call", "headroom log", c.logs()[-3000:])

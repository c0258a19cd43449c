"""Logs (proxy/logging.h): log.file written as events happen (not at shutdown), one
JSON object a line with log.format json, and the file reopened by SIGHUP after
logrotate renamed it."""
import json
import os
import signal
import tempfile

from cluster import Cluster, wait_for


def test_the_log_file_is_written_as_it_goes_as_json_lines_and_reopened_on_sighup():
    d = tempfile.mkdtemp(prefix="headroom-log-")
    path = os.path.join(d, "headroom.log")
    c = Cluster(settings={"log": f"{{level: info, file: {path}, format: json}}"})
    try:
        # While it runs: the startup lines are in the file already.
        def started():
            return os.path.exists(path) and "listening on" in open(path).read()
        wait_for(started, 30, "startup lines in the log file while headroom runs")
        lines = [json.loads(line) for line in open(path).read().splitlines()]
        assert all(set(o) == {"time", "level", "pid", "message"} for o in lines)
        assert any("listening on" in o["message"] for o in lines)
        # logrotate: rename, then SIGHUP; the reload's own lines go to a new file.
        os.rename(path, path + ".1")
        c.proxy.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: os.path.exists(path) and "reloaded" in open(path).read(), 30, "a new file after SIGHUP")
        assert all(json.loads(line)["message"] for line in open(path).read().splitlines())
        assert c.proxy.client().ping()
    finally:
        c.close()

"""Liveness on one host: a client that is connected but frozen loses its session.

A stopped process (SIGSTOP, or a debugger) keeps its TCP connection: the kernel still
acknowledges what the broker sends, so neither TCP keepalive nor TCP_USER_TIMEOUT ever
fires. Only the broker's heartbeat, a ping that must be answered, tells it from a live one.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

HOLDING_WORKER = r"""
import json, time
import fixture_broker
c = fixture_broker.connect()
lease = c.acquire({"p": {"kind": "port"}})
print(json.dumps(lease.fixtures["p"]), flush=True)
time.sleep(3600)
"""


@pytest.fixture
def broker(tmp_path):
    started = []

    def start(*args):
        p = subprocess.Popen(
            [os.environ["FXB_BROKER"], "--listen", "127.0.0.1:0", "--drain-timeout-ms", "0", "--ports", "27700-27709",
             "--port-lock-file", "none", "--state-dir", str(tmp_path / "state"), *args],
            stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert line.startswith("listening ws://"), line
        started.append(p)
        return int(line.strip().rsplit(":", 1)[1])

    yield start
    for p in started:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0


def leases(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=5) as r:
        return json.load(r)["leases"]


def freeze_and_time_reclaim(port, within_s):
    worker = subprocess.Popen([sys.executable, "-c", HOLDING_WORKER], stdout=subprocess.PIPE,
                              text=True, env={**os.environ,
                                              "FIXTURE_BROKER_URL": "ws://127.0.0.1:%d" % port})
    try:
        json.loads(worker.stdout.readline())
        assert leases(port) == 1
        worker.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        while time.monotonic() - frozen < within_s:
            if leases(port) == 0:
                return time.monotonic() - frozen
            time.sleep(0.1)
        return None
    finally:
        worker.kill()
        worker.wait()


def test_a_frozen_client_is_dropped_after_dead_after_ms_and_its_lease_freed(broker):
    port = broker("--heartbeat-ms", "300", "--dead-after-ms", "1000", "--grace-ms", "500")
    took = freeze_and_time_reclaim(port, within_s=30)
    assert took is not None, "a frozen client kept its lease"
    assert took >= 1.0, "freed %.1f s after the freeze: before dead_after_ms" % took


def test_a_live_client_that_is_only_idle_keeps_its_lease(broker):
    port = broker("--heartbeat-ms", "200", "--dead-after-ms", "600", "--grace-ms", "0")
    worker = subprocess.Popen([sys.executable, "-c", HOLDING_WORKER], stdout=subprocess.PIPE,
                              text=True, env={**os.environ,
                                              "FIXTURE_BROKER_URL": "ws://127.0.0.1:%d" % port})
    try:
        json.loads(worker.stdout.readline())
        time.sleep(3)  # five times dead_after_ms of sending nothing but pongs
        assert leases(port) == 1, "an idle client that answers pings lost its lease"
    finally:
        worker.kill()
        worker.wait()


def test_heartbeat_settings_are_checked(tmp_path):
    r = subprocess.run([os.environ["FXB_BROKER"], "--listen", "127.0.0.1:0",
                        "--heartbeat-ms", "5000", "--dead-after-ms", "5000"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0 and "dead_after_ms" in r.stderr, r.stderr

"""test_liveness.py: a silent connection is left and resumed; a lost session is reported.

A stopped broker (SIGSTOP) keeps its TCP connections open, the kernel acknowledging what
the client sends, so only silence tells the client that nothing answers any more.
Ports 27740-27749.
"""

import os
import signal
import socket
import time
from typing import Any, Dict, List

import pytest

import fixture_broker
from conftest import until
from fixture_broker import FixtureBrokerError




def test_a_silent_broker_is_left_after_dead_after_ms_and_the_session_resumes(start):
    b = start("27740-27741", "--heartbeat-ms", "200", "--dead-after-ms", "1000", "--grace-ms", "10000")
    with fixture_broker.connect(b.url) as client:
        assert client.limits is not None and client.limits["dead_after_ms"] == 1000
        assert client.dead_after == 1.0
        lease = client.acquire({"http": "port"})
        session = client.session
        os.kill(b.proc.pid, signal.SIGSTOP)
        try:
            until(lambda: not client.connected)
        finally:
            os.kill(b.proc.pid, signal.SIGCONT)
        until(lambda: client.reconnects == 1, timeout=20)
        assert client.session == session and client.sessions_lost == 0
        assert client.hello is not None and client.hello["resumed"] is True
        assert not lease.released and not lease.lost
        assert [held["lease"] for held in client.list()] == [lease.id]
        assert lease.release() is True


def test_an_idle_client_that_hears_the_brokers_pings_keeps_its_connection(start):
    b = start("27742-27742", "--heartbeat-ms", "100", "--dead-after-ms", "400")
    with fixture_broker.connect(b.url) as client:
        time.sleep(3)  # more than seven times dead_after_ms without a call
        assert client.reconnects == 0 and client.connected


def test_without_heartbeat_ms_the_client_probes_with_its_own_ping(start):
    # A broker that never pings still answers pings: the probe halfway to dead_after keeps
    # an idle connection alive.
    b = start("27743-27743", "--heartbeat-ms", "0")
    with fixture_broker.connect(b.url, dead_after=0.4) as client:
        assert client.limits is not None and client.limits["heartbeat_ms"] == 0
        time.sleep(3)
        assert client.reconnects == 0 and client.connected


def test_a_lost_session_is_reported_and_its_leases_raise_session_lost(start):
    b = start("27744-27745", "--grace-ms", "0")
    lost: List[Dict[str, Any]] = []
    with fixture_broker.connect(b.url, on_session_lost=lost.append) as client:
        lease = client.acquire({"http": "port"})
        session = client.session
        assert client._ws is not None
        client._ws.socket.shutdown(socket.SHUT_RDWR)
        until(lambda: client.reconnects == 1)
        assert client.sessions_lost == 1
        [info] = lost
        assert info["previous"] == session and info["session"] == client.session
        assert info["leases"] == [lease]
        assert lease.lost and lease.released
        with pytest.raises(FixtureBrokerError) as err:
            lease.renew(1000)
        assert (err.value.code, err.value.name, err.value.method) == (-9, "SESSION_LOST", "lease.renew")
        assert not err.value.from_broker
        assert lease.release() is False
        assert client.status()["ports"]["leased"] == 0


@pytest.mark.parametrize("bad", [-1, "5", True])
def test_dead_after_must_be_a_non_negative_number(bad):
    with pytest.raises(FixtureBrokerError) as err:
        fixture_broker.connect("ws://127.0.0.1:1", dead_after=bad)
    assert err.value.name == "INVALID_ARGUMENT"

"""portpicker's portserver protocol, served by the broker, driven by portpicker itself.

Each test starts the real broker binary ($FXB_BROKER) with a portserver on an abstract
Unix socket of its own and a port pool of its own, so a port portpicker returns is known to
come from the broker: portpicker falls back to picking a port by itself when a portserver
does not answer, and that must not pass for success here.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

FIRST, LAST = 27400, 27499

CHILD = r"""
import socket, sys
import portpicker
port = portpicker.pick_unused_port()
s = socket.socket()
s.bind(("127.0.0.1", port))  # a port the broker hands out is free to bind
s.listen()
print(port, flush=True)
sys.stdin.readline()         # hold the port until the test says so
"""


class Broker:
    def __init__(self, tmp_path, extra_config=None):
        self.address = "@fxb-portserver-test-%d-%d" % (os.getpid(), time.monotonic_ns())
        config = {"portserver": {"socket": self.address}}
        config["portserver"].update(extra_config or {})
        path = tmp_path / "broker.json"
        path.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [os.environ["FXB_BROKER"], "--listen", "127.0.0.1:0", "--drain-timeout-ms", "0", "--config", str(path),
             "--ports", "%d-%d" % (FIRST, LAST), "--state-dir", str(tmp_path / "state")],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening ws://"), "the broker did not start: %r" % line
        self.http = "http://" + line.strip()[len("listening ws://"):]

    def status(self):
        with urllib.request.urlopen(self.http + "/status", timeout=5) as r:
            return json.load(r)

    def wait_for(self, key, n, within_s=10.0):
        """Waits until /status shows n for key ("leases", "sessions")."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.status()[key] == n:
                return
            time.sleep(0.1)
        assert self.status()[key] == n, key

    def ask(self, text):
        """Sends one raw request; returns what the broker answered before closing."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect("\0" + self.address[1:])
        answer = b""
        try:
            s.sendall(text)
            while True:
                chunk = s.recv(1024)
                if not chunk:
                    break
                answer += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed on us mid-request: no answer
        finally:
            s.close()
        return answer

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0, "the broker did not stop cleanly"


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def spawn(broker, n):
    env = dict(os.environ, PORTSERVER_ADDRESS=broker.address)
    return [subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True) for _ in range(n)]


def test_eight_processes_get_distinct_bindable_ports_that_come_back_when_they_exit(broker):
    children = spawn(broker, 8)
    ports = [int(c.stdout.readline()) for c in children]
    assert len(set(ports)) == 8, ports
    assert all(FIRST <= p <= LAST for p in ports), "not the broker's pool: %s" % ports
    assert broker.status()["leases"] == 8
    for c in children:
        c.stdin.close()
        assert c.wait(timeout=10) == 0
    broker.wait_for("leases", 0)
    broker.wait_for("sessions", 0)


def test_a_process_keeps_its_ports_while_it_lives_and_gets_a_new_one_each_time(broker):
    me = str(os.getpid()).encode()
    first = broker.ask(me + b"\n")
    second = broker.ask(me + b"\n")
    assert first != second and first.endswith(b"\n") and second.endswith(b"\n")
    assert FIRST <= int(first) <= LAST and FIRST <= int(second) <= LAST
    time.sleep(1.5)  # a sweep or more: this process is alive, so its leases stay
    assert broker.status()["leases"] == 2


@pytest.mark.parametrize("request_text", [
    b"1\n",                  # init: a client that meant its parent
    b"0\n",
    b"-5\n",
    b"4194305\n",            # above any pid_max: no such process
    b"12ab\n",
    b"9" * 30,               # more than a PID, no newline
])
def test_refuses_what_it_cannot_serve_by_closing_without_an_answer(broker, request_text):
    assert broker.ask(request_text) == b""
    assert broker.status()["leases"] == 0
    # and goes on serving
    assert FIRST <= int(broker.ask(b"%d\n" % os.getpid())) <= LAST


def test_a_lease_ttl_gives_a_living_process_port_back(tmp_path):
    b = Broker(tmp_path, {"lease_ttl_ms": 300})
    try:
        assert FIRST <= int(b.ask(b"%d\n" % os.getpid())) <= LAST
        assert b.status()["leases"] == 1
        b.wait_for("leases", 0, within_s=5)
        b.wait_for("sessions", 0, within_s=5)  # a process holding nothing is forgotten
    finally:
        b.stop()


def test_a_silent_client_does_not_hold_the_server(broker):
    silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(70)]
    for s in silent:
        s.connect("\0" + broker.address[1:])
    try:
        # More silent connections than the broker reads at once; it still answers a
        # client once the silent ones time out or are turned away.
        deadline = time.monotonic() + 10
        answer = b""
        while not answer and time.monotonic() < deadline:
            try:
                answer = broker.ask(b"%d\n" % os.getpid())
            except BlockingIOError:
                pass  # the listen backlog is full for now
            time.sleep(0.05)
        assert FIRST <= int(answer) <= LAST
    finally:
        for s in silent:
            s.close()

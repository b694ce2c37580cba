"""Workers whose link goes down and comes back: each SDK resumes after a short cut and
reports a lost session after a long one.

The topology of test_multihost.py (its namespaces, its broker): a worker in w1 leases a port
through the broker, its link (the worker side of the veth pair) goes down, and comes back.
The broker runs with --heartbeat-ms 300 --dead-after-ms 1000, so a cut of 2 s is one the
broker and the client both notice: the broker drops the connection and keeps the session
for grace_ms; the client, hearing nothing for dead_after_ms, gives the connection up and
reconnects once it can.

- short cut (the client is back within dead_after_ms + grace_ms): the session resumes, and
  the lease is still the worker's, with the same port, and usable (it renews and releases);
- long cut (the broker has freed the lease before the link comes back): sdk-js emits
  sessionLost, libfxb answers FXB_ELOST on the lease, and the Python client counts the loss
  and raises SESSION_LOST, each going on in a new session.

Workers: tests/multihost/js_cut_worker.mjs (sdk-js from this checkout, under node),
fxb_cut_worker (libfxb, built by `make multihost-test` into $FXB_MULTIHOST_BIN) and the
script PY_CUT_WORKER below (the Python client). Each prints its lease, waits for a line on
stdin (sent once the link is back up) and prints what its client then says, including
whether it had given the connection up while the link was down: then nothing (no RST, no
close frame) could tell it, only the silence.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from test_multihost import broker_factory, broker_status  # noqa: F401 (a fixture)
from topology import LINKS, NS_W1, sh

HERE = os.path.dirname(os.path.abspath(__file__))
SHORT = ("--heartbeat-ms", "300", "--dead-after-ms", "1000", "--grace-ms", "4000")
LONG = ("--heartbeat-ms", "300", "--dead-after-ms", "1000", "--grace-ms", "1000")
SHORT_CUT_S = 2.0

PY_CUT_WORKER = r"""
import json, sys
import fixture_broker
from fixture_broker import FixtureBrokerError
lost = []
c = fixture_broker.connect(on_session_lost=lambda info: lost.append(info["previous"]))
lease = c.acquire({"p": {"kind": "port"}})
print(json.dumps({"session": c.session, "lease": lease.id, "port": lease.fixtures["p"]["port"]}),
      flush=True)
sys.stdin.readline()
# With the link down nothing (no RST, no close) could tell the client: only the silence.
dropped_while_down = not c.connected or c.reconnects > 0
import time
deadline = time.monotonic() + 30
while c.reconnects == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
try:
    lease.renew(60000)
    renew = "ok"
except FixtureBrokerError as err:
    renew = err.name
listed = [{"lease": l["lease"], "port": l["fixtures"]["p"]["port"]} for l in c.list()]
out = {"dropped_while_down": dropped_while_down, "reconnects": c.reconnects, "sessions_lost": c.sessions_lost, "lost": lost,
       "session": c.session, "resumed": c.hello["resumed"], "lease_lost": lease.lost,
       "listed": listed, "renew": renew, "release": lease.release()}
print(json.dumps(out), flush=True)
c.close()
"""


def worker_argv(sdk):
    if sdk == "js":
        node = shutil.which("node")
        if not node:
            pytest.skip("needs node for the sdk-js worker")
        return [node, os.path.join(HERE, "js_cut_worker.mjs")]
    if sdk == "c":
        return [os.path.join(os.environ["FXB_MULTIHOST_BIN"], "fxb_cut_worker")]
    return [sys.executable, "-c", PY_CUT_WORKER]


def link(state):
    sh("ip", "-n", NS_W1, "link", "set", LINKS[NS_W1][1], state)


def read_json(proc):
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        pytest.fail("the worker printed nothing and exited %s:\n%s" % (
            proc.returncode, proc.stderr.read()))
    return json.loads(line)


def cut(b, sdk, hold):
    """Runs the sdk's worker in w1, takes the link down, calls hold() while it is down,
    brings it back and returns (the worker's lease, what it said after, hold()'s value)."""
    proc = subprocess.Popen(["ip", "netns", "exec", NS_W1, *worker_argv(sdk)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FIXTURE_BROKER_URL": b.url("10.213.1.1")})
    try:
        before = read_json(proc)
        assert broker_status(b)["leases"] == 1
        link("down")
        try:
            held = hold()
        finally:
            link("up")
        proc.stdin.write("link is up\n")
        proc.stdin.flush()
        after = read_json(proc)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        return before, after, held
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        link("up")


@pytest.mark.parametrize("sdk", ["js", "c", "py"])
def test_a_short_cut_is_survived_with_the_same_lease_and_port(broker_factory, sdk):
    b = broker_factory(args=SHORT)

    def hold():
        time.sleep(SHORT_CUT_S)
        # Long enough for the broker to have dropped the connection: the session is in
        # its grace period, and its lease still held.
        return broker_status(b)

    before, after, during = cut(b, sdk, hold)
    assert during["leases"] == 1, "the lease was freed within the grace period"
    assert after["dropped_while_down" if sdk != "js" else "droppedWhileDown"], \
        "the client did not notice the silence: %s" % after
    assert after["session"] == before["session"], "the session was not resumed: %s" % after
    want = [{"lease": before["lease"], "port": before["port"]}]
    if sdk == "js":
        assert after["disconnect"] and "nothing from the broker" in after["disconnect"]["reason"], after
        assert after["reconnect"] == {"resumed": True, "session": before["session"]}
        assert after["sessionLost"] is None
        assert after["lease"] == {"released": True, "lost": False}  # released just now
        assert after["listed"] == want and after["renew"] == "ok" and after["release"] is True
    elif sdk == "c":
        assert after["sessions_lost"] == 0 and after["callbacks"] == 0
        assert after["lease_state"] == 0 and after["port"] == before["port"]
        assert after["host"] == "10.213.1.1"
        assert after["release"] == 0, after["errmsg"]
    else:
        assert after["reconnects"] == 1 and after["resumed"] is True
        assert after["sessions_lost"] == 0 and after["lost"] == [] and not after["lease_lost"]
        assert after["listed"] == want and after["renew"] == "ok" and after["release"] is True
    assert broker_status(b)["leases"] == 0


@pytest.mark.parametrize("sdk", ["js", "c", "py"])
def test_a_long_cut_loses_the_session_and_the_sdk_says_so(broker_factory, sdk):
    b = broker_factory(args=LONG)

    def hold():
        # The link stays down until the broker has given the lease back (after
        # dead_after_ms + grace_ms = 2 s; the bound only keeps the test from waiting forever).
        went = time.monotonic()
        while broker_status(b)["leases"] != 0:
            if time.monotonic() - went > 20:
                pytest.fail("the broker kept the lease of a vanished worker for 20 s")
            time.sleep(0.1)
        return time.monotonic() - went

    before, after, freed_after = cut(b, sdk, hold)
    assert freed_after >= 1.0, "freed %.1f s after the cut: before dead_after_ms" % freed_after
    print("%s: the lease was freed %.2f s after the cut (dead_after_ms + grace_ms = 2.0 s)"
          % (sdk, freed_after))
    assert after["dropped_while_down" if sdk != "js" else "droppedWhileDown"], \
        "the client did not notice the silence: %s" % after
    assert after["session"] != before["session"]
    if sdk == "js":
        assert after["sessionLost"] == {"previous": before["session"], "session": after["session"],
                                        "leases": [before["lease"]]}
        assert after["reconnect"] == {"resumed": False, "session": after["session"]}
        assert after["lease"] == {"released": True, "lost": True}
        assert after["listed"] == [] and after["renew"] == "SESSION_LOST"
        assert after["release"] is False
    elif sdk == "c":
        assert after["sessions_lost"] == 1 and after["callbacks"] == 1
        assert after["lost_session"] == before["session"]
        FXB_ELOST = -9
        assert after["lease_state"] == FXB_ELOST and after["port"] == FXB_ELOST
        assert after["host"] is None
        assert after["release"] == FXB_ELOST and "lost with its session" in after["errmsg"]
    else:
        assert after["sessions_lost"] == 1 and after["lost"] == [before["session"]]
        assert after["resumed"] is False and after["lease_lost"]
        assert after["listed"] == [] and after["renew"] == "SESSION_LOST"
        assert after["release"] is False
    assert broker_status(b)["leases"] == 0

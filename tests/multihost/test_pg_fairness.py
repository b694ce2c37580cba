"""Tenants sharing a PostgreSQL pool take turns (one host, no namespaces).

A pool of one clone, held by a third tenant; team-a queues three acquires, then team-b one.
When clones come back one at a time, team-a's first waiter is served, then team-b's only
one, not team-a's second (first come, first served would), as the port queue does.
"""
import json
import os
import signal
import subprocess
import time

from websockets.sync.client import connect

TOKENS = "tok-a team-a\ntok-b team-b\ntok-h holder\n"
POOL = {"postgres": {"pool": {"min_ready": 0, "max": 1, "global_max": 1}}}


def acquire(i):
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "lease.acquire",
                       "params": {"fixtures": {"db": {"kind": "postgres"}}}})


def release(i, lease):
    return json.dumps({"jsonrpc": "2.0", "id": i, "method": "lease.release",
                       "params": {"lease": lease}})


def read(ws, timeout):
    """The next message, or None after timeout seconds."""
    try:
        return json.loads(ws.recv(timeout=timeout))
    except TimeoutError:
        return None


def test_a_postgres_pool_serves_its_waiters_tenants_in_turn(tmp_path):
    (tmp_path / "tokens").write_text(TOKENS)
    (tmp_path / "pool.json").write_text(json.dumps(POOL))
    broker = subprocess.Popen(
        [os.environ["FXB_BROKER"], "--listen", "127.0.0.1:0", "--drain-timeout-ms", "0", "--ports", "27710-27729",
         "--port-lock-file", "none", "--token-file", str(tmp_path / "tokens"), "--config",
         str(tmp_path / "pool.json"), "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE, text=True)
    url = broker.stdout.readline().split()[-1]
    socks = []
    try:
        def session(token):
            ws = connect(url, subprotocols=["fixture-broker.v1"], open_timeout=10,
                         additional_headers={"Authorization": "Bearer " + token})
            socks.append(ws)
            return ws

        holder, a, b = session("tok-h"), session("tok-a"), session("tok-b")
        holder.send(acquire(1))
        held = read(holder, 60)["result"]["lease"]
        for i in range(3):
            a.send(acquire(200 + i))
        time.sleep(0.3)
        b.send(acquire(300))
        assert read(b, 1) is None, "served while the pool's one clone is held"

        holder.send(release(2, held))
        assert read(holder, 10)["result"]["released"]
        first = read(a, 60)
        assert first and first["id"] == 200 and "result" in first, first
        assert read(a, 1) is None, "two of team-a's served from a pool of one"

        a.send(release(3, first["result"]["lease"]))
        assert read(a, 10)["result"]["released"]
        turn = read(b, 60)
        assert turn and turn["id"] == 300 and "result" in turn, \
            "team-b's one waiter was not served before team-a's other two: %s" % turn
        assert read(a, 1) is None, "team-a's second waiter overtook team-b's"
    finally:
        for ws in socks:
            ws.close()
        broker.send_signal(signal.SIGTERM)
        assert broker.wait(timeout=30) == 0

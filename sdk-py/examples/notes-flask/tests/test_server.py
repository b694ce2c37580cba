"""The app as a real server process: on a port leased from the broker, over real HTTP.

The port comes from the ``fixtures`` marker (leased for this module and released after it),
so two workers never start two servers on one port; the server's database is the test's own.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import pytest

pytestmark = pytest.mark.fixtures(http="port")

EXAMPLE = Path(__file__).resolve().parent.parent


def call(base: str, method: str, path: str, body: Optional[Any] = None) -> Tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


@pytest.fixture
def server(fixtures, postgres) -> Iterator[str]:
    """Starts ``python -m notes.server`` on the leased port; stops it after the test."""
    port = fixtures["http"]["port"]
    env = {**os.environ, "DATABASE_URL": postgres, "PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "notes.server"], cwd=EXAMPLE, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, health = call(base, "GET", "/health")
                # Only this server counts: another process on the port would mislead the test.
                if status == 200 and health.get("pid") == proc.pid:
                    break
            except (OSError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.communicate()[0]
                pytest.fail(f"notes.server did not come up on port {port}:\n{out}")
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        finally:
            if proc.stdout:
                proc.stdout.close()
    assert proc.returncode == 0, f"notes.server exited with {proc.returncode}"


def test_server_round_trip(server, fixtures):
    assert server.endswith(f":{fixtures['http']['port']}")
    status, note = call(server, "POST", "/notes", {"title": "Over the wire", "body": "real HTTP"})
    assert status == 201
    assert call(server, "PUT", f"/notes/{note['id']}/tags/net")[1]["tags"] == ["net"]
    assert [n["title"] for n in call(server, "GET", "/notes")[1]] == ["Welcome", "Groceries", "Over the wire"]
    assert call(server, "GET", "/notes/999999")[0] == 404


def test_server_sees_a_fresh_database(server):
    status, notes = call(server, "GET", "/notes")
    assert status == 200 and [n["title"] for n in notes] == ["Welcome", "Groceries"]
    assert call(server, "DELETE", f"/notes/{notes[0]['id']}")[0] == 204
    assert len(call(server, "GET", "/notes")[1]) == 1

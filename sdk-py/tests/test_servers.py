"""test_servers.py: server fixtures through the client: a real child process, its logs, its failure."""

import json
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import fixture_broker
from fixture_broker import FixtureBrokerError


def servers_config(tmp_path: Path) -> str:
    config = tmp_path / "fixture-broker.json"
    config.write_text(json.dumps({"servers": {
        "web": {
            "command": [sys.executable, "-u", "-m", "http.server", "{ports.main}", "--bind", "127.0.0.1"],
            "client_env": ["GREETING"],
            "stop_grace_ms": 2000,
        },
        "crashes": {
            "command": [sys.executable, "-u", "-c", "print('reading app.toml'); print('cannot open app.toml'); raise SystemExit(3)"],
        },
    }}))
    return str(config)


def test_a_server_fixture_runs_until_its_lease_is_released(start, tmp_path):
    b = start("27720-27729", "--config", servers_config(tmp_path))
    with fixture_broker.connect(b.url) as client:
        with client.acquire({"web": {"kind": "server", "template": "web", "env": {"GREETING": "hi"}}}) as lease:
            web = lease.fixtures["web"]
            assert web["kind"] == "server" and b.first <= web["port"] <= b.last
            with urllib.request.urlopen(f"http://127.0.0.1:{web['port']}/", timeout=5) as r:
                assert r.status == 200
            # http.server logs the request after it has answered: wait for the line.
            deadline = time.monotonic() + 10
            logs = lease.logs("web")
            while "GET / HTTP" not in logs["stderr"] and time.monotonic() < deadline:
                time.sleep(0.05)
                logs = lease.logs("web")
            assert set(logs) == {"stdout", "stderr"} and "GET / HTTP" in logs["stderr"]
            assert len(lease.logs("web", tail=1)["stderr"].strip().splitlines()) <= 1
        assert client.list() == []
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"web": {"kind": "server", "template": "web", "env": {"PATH": "/"}}})
        assert (caught.value.code, caught.value.name) == (1302, "SERVER_ENV_NOT_ALLOWED")


def test_a_server_that_exits_before_it_is_ready_fails_the_acquire_with_its_log_tail(start, tmp_path):
    b = start("27730-27739", "--config", servers_config(tmp_path))
    with fixture_broker.connect(b.url) as client:
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"api": {"kind": "server", "template": "crashes"}})
        err = caught.value
        assert (err.code, err.name) == (1304, "SERVER_EXITED")
        assert err.data["status"] == 3
        assert "reading app.toml" in err.data["log_tail"]
        # str() adds the whole tail to the broker's message, which has its last line only.
        assert "reading app.toml" in str(err) and "reading app.toml" not in err.message
        assert client.status()["leases"] == 0

"""A fleet: one shared PostgreSQL, two shared brokers over it, two runners forwarding to them.

The broker namespace stands for the fixture hosts: a PostgreSQL server of the test's own
(pgserver.py) and two shared brokers on it, with tokens. Each worker namespace is a CI runner:
the express-pg example's Jest suite runs there exactly as on a laptop (its preset starts a
broker for the run with the example's configuration), with FIXTURE_BROKER_UPSTREAM and a
token in the environment, so its broker keeps ports and the API servers local and forwards
the databases to a shared broker. Both runners run at once. The example's template "app"
(its migrate command and inputs in fixture-broker.json) is built once for the whole fleet:
by the runner whose ensure won, from its checkout, on the shared server.
Skipped, saying why, where network namespaces cannot be made (not root, no ip(8)), or
without PostgreSQL 15's server binaries.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import pgserver
from topology import NS_B, NS_W1, NS_W2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
EXAMPLE = os.path.join(ROOT, "sdk-js", "examples", "express-pg")
PG_PORT = 27540
RUNNERS = ((NS_W1, "10.213.1.1", "runner-1"), (NS_W2, "10.213.2.1", "runner-2"))
RUNNER_PORTS = ("27600-27699", "27700-27799")
GET_METRICS = """
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
sys.stdout.write(urllib.request.urlopen(req, timeout=20).read().decode())
"""
MIGRATE_RAN = "template app: running its migrate command"


class Shared:
    """A shared broker in the broker namespace, on the fleet's PostgreSQL."""

    def __init__(self, tmp_path, name, pg, client_host, tokens, *args):
        config = tmp_path / (name + ".json")
        self.audit = tmp_path / (name + "-audit.jsonl")
        config.write_text(json.dumps({
            "listen": "0.0.0.0:0",
            "state_dir": str(tmp_path / name),
            "token_file": str(tokens),
            "audit_log": str(self.audit),
            "postgres": {"url": pg.admin_url(), "client_host": client_host,
                         "client_port": pg.port},
        }))
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, os.environ["FXB_BROKER"], "--config", str(config),
             "--ports", "27550-27599", "--port-lock-file", "none", *args],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening ws://"), "the shared broker did not start: %r" % line
        self.port = int(line.strip().rsplit(":", 1)[1])
        self.host = client_host

    def url(self):
        return "ws://%s:%d" % (self.host, self.port)

    def metrics(self, token):
        """GET /metrics, from the broker namespace (this process is not in it)."""
        r = subprocess.run(["ip", "netns", "exec", NS_B, sys.executable, "-c", GET_METRICS,
                            "http://127.0.0.1:%d/metrics" % self.port, token],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def audit_events(self, event):
        with open(self.audit) as f:
            return [e for e in map(json.loads, f) if e["event"] == event]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            assert self.proc.wait(timeout=60) == 0


def metric(text, name):
    """The sum of a counter's samples in a /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def pool(text, state):
    """The sum of fxb_pg_pool's samples of one state in a /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("fxb_pg_pool{") and 'state="%s"' % state in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def fleet(net, tmp_path):
    if not pgserver.bindir():
        pytest.skip("no PostgreSQL 15 binaries (make deps installs postgresql-15)")
    pg = pgserver.Server(NS_B, ["10.213.1.1", "10.213.2.1"], PG_PORT)
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token admin admin=true\nrunner-1-token ci\nrunner-2-token ci\n")
    tokens.chmod(0o600)
    shared = []
    try:
        for i, (_, host, _) in enumerate(RUNNERS):
            shared.append(Shared(tmp_path, "shared-%d" % (i + 1), pg, host, tokens))
        yield pg, shared
    finally:
        for s in shared:
            s.stop()
        left = pg.query("SELECT datname FROM pg_database WHERE datname LIKE 'fxb\\_%' "
                        "AND NOT datistemplate")
        left += pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'fxb\\_%' "
                         "AND rolcanlogin")
        pg.stop()
        assert not left, "databases or login roles left on the shared server: %s" % left


def runner(ns, name, shared, token, ports, tmp_path):
    """The example's Jest suite on a runner, as CI runs it there: no FIXTURE_BROKER_URL, so
    the preset starts the runner's own broker (private to the run), which forwards the
    databases to the shared broker named in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIXTURE_BROKER")}
    env.update({
        "FIXTURE_BROKER_BIN": os.environ["FXB_BROKER"],
        "FIXTURE_BROKER_WARM": "0",
        "FIXTURE_BROKER_UPSTREAM": shared.url(),
        "FIXTURE_BROKER_UPSTREAM_TOKEN": token,
        "FIXTURE_BROKER_ARGS": "--state-dir %s --ports %s" % (tmp_path / (name + "-state"),
                                                             ports),
        "FIXTURE_BROKER_LOG": str(tmp_path / (name + ".log")),
    })
    jest = os.path.join(EXAMPLE, "node_modules", ".bin", "jest")
    return subprocess.Popen(["ip", "netns", "exec", ns, "node", jest, "--maxWorkers=2", "--ci",
                             "--cacheDirectory", str(tmp_path / (name + "-jest-cache"))],
                            cwd=EXAMPLE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)


def test_two_runners_share_one_template_build_and_the_fixture_hosts(fleet, tmp_path):
    pg, shared = fleet
    runs = [runner(ns, name, shared[i], name + "-token", RUNNER_PORTS[i], tmp_path)
            for i, (ns, _, name) in enumerate(RUNNERS)]
    for (_, _, name), r in zip(RUNNERS, runs):
        try:
            out, _ = r.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            r.kill()
            out, _ = r.communicate()
        log = tmp_path / (name + ".log")
        assert r.returncode == 0, "%s: the suite failed:\n%s\n%s" % (
            name, out[-4000:], log.read_text()[-3000:] if log.exists() else "(no log)")
        tests = re.search(r"Tests:\s+(\d+) passed, (\d+) total", out)
        assert tests and tests.group(1) == tests.group(2) != "0", out[-2000:]

    # Built once for the fleet: one build between the shared brokers, one migrate run
    # between the runners (on the runner whose ensure won), one template on the server.
    builds = [metric(s.metrics("admin-token"), "fxb_pg_template_builds_total") for s in shared]
    assert sum(builds) == 1, "template builds per shared broker: %s" % builds
    migrated = [(tmp_path / (name + ".log")).read_text().count(MIGRATE_RAN)
                for _, _, name in RUNNERS]
    assert sum(migrated) == 1, "migrate runs per runner: %s" % migrated
    assert pg.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'fxb\\_%' "
                    "AND datistemplate AND shobj_description(oid, 'pg_database')::json->>'key' "
                    "LIKE 'conf:app:%'") == ["1"]

    # The shared brokers leased databases only, each to its own runner's broker (labelled
    # with its host, session and lease): the ports and the API servers stayed local.
    for i, s in enumerate(shared):
        grants = s.audit_events("lease.grant")
        assert grants, "shared broker %d granted nothing" % (i + 1)
        kinds = {k for g in grants for k in g["fixtures"].values()}
        assert kinds == {"postgres"}, "shared broker %d granted %s" % (i + 1, kinds)
        for g in grants:
            labels = g["labels"]
            assert labels["runner_host"] == socket.gethostname(), labels
            assert labels["runner_lease"] and labels["runner_session"], labels
            assert labels["runner"] == "jest", labels
        assert {g["tenant"] for g in grants} == {"ci"}

    # Nothing of a lease is left: no lease on either shared broker (a runner's broker that
    # stopped releases its leases, or the shared broker does after its grace period), and
    # on the server only the clones the pools keep ready, each with its login role (they go
    # when the shared brokers stop: the fixture checks that none is left then).
    for i, s in enumerate(shared):
        for _ in range(600):
            text = s.metrics("admin-token")
            busy = (metric(text, "fxb_leases_active"), pool(text, "leased"),
                    pool(text, "cloning"), pool(text, "dropping"))
            if busy == (0, 0, 0, 0):
                break
            time.sleep(0.1)
        assert busy == (0, 0, 0, 0), "shared broker %d: leases, leased, cloning, dropping: " \
            "%s" % (i + 1, busy)
    ready = sum(pool(s.metrics("admin-token"), "ready") for s in shared)
    clones = pg.query("SELECT datname FROM pg_database WHERE datname LIKE 'fxb\\_%' "
                      "AND NOT datistemplate")
    logins = pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'fxb\\_%' "
                      "AND rolcanlogin")
    assert len(clones) == ready, "%d ready in the pools, on the server: %s" % (ready, clones)
    assert len(logins) == ready, "%d ready in the pools, login roles: %s" % (ready, logins)

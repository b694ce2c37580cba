"""test_pytest_plugin.py: the pytest plugin, through real inner pytest runs (pytester) against the real broker.

Each test writes a small suite into pytester's directory and runs it in a subprocess, with
and without xdist, the way a user's suite runs: the plugin comes from the installed
package's entry point. Inner tests leave what they saw in files under ``out/``, which the
outer test reads back. The PostgreSQL brokers keep their state in one directory from run
to run ($FXB_PY_PLUGIN_STATE, else ../build/py-plugin-state), so their embedded cluster is
made once and then reused.
"""

import json
import os
import re
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

import fixture_broker
from conftest import SDK, Broker, start_broker, until

pytest_plugins = ["pytester"]

STATE = Path(os.environ.get("FXB_PY_PLUGIN_STATE") or SDK.parent / "build" / "py-plugin-state").resolve()
PG_PORTS = "29100-29199"
AUTOSTART_PORTS = "29200-29249"
INNER_TIMEOUT = 120




@pytest.fixture(scope="module")
def pg_broker() -> Iterator[Broker]:
    """A broker the inner runs share through FIXTURE_BROKER_URL (PostgreSQL state reused)."""
    b = start_broker(STATE / "shared", PG_PORTS)
    yield b
    assert b.stop() == 0, "the broker did not exit cleanly on SIGTERM"


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester with an out/ directory, psycopg-free defaults and no broker set."""
    monkeypatch.delenv("FIXTURE_BROKER_URL", raising=False)
    monkeypatch.delenv("FIXTURE_BROKER_ARGS", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.setenv("OUT", str(pytester.path / "out"))
    (pytester.path / "out").mkdir()
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    return pytester


def use(monkeypatch: pytest.MonkeyPatch, broker: Broker) -> None:
    monkeypatch.setenv("FIXTURE_BROKER_URL", broker.url)


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("-p", "no:randomly", *args, timeout=INNER_TIMEOUT)


def records(p: pytest.Pytester) -> List[Dict[str, Any]]:
    """What the inner tests wrote with ``record(...)``, one JSON object per file."""
    return [json.loads(f.read_text()) for f in sorted((p.path / "out").glob("*.json"))]


def assert_nothing_held(broker: Broker) -> None:
    """Once the inner run is over, the broker holds no lease and no session for it."""
    with fixture_broker.connect(broker.url, client="checker") as c:
        until(lambda: c.status()["leases"] == 0 and c.status()["sessions"] == 1)


# Inner suites import this from their conftest.py: record(name, **values) writes out/<name>.json.
RECORD = '''
import json, os, uuid
def record(name, **values):
    values.setdefault("worker", os.environ.get("PYTEST_XDIST_WORKER", "main"))
    path = os.path.join(os.environ["OUT"], f"{name}-{uuid.uuid4().hex[:8]}.json")
    with open(path, "w") as f:
        json.dump({"name": name, **values}, f)
'''


def bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- marker fixtures ----------------------------------------------------------------------


MARKERS = '''
import socket
import pytest
from record import record

pytestmark = pytest.mark.fixtures(http="port")

def test_module_and_test_fixtures(fixtures, fixture_broker):
    assert set(fixtures) == {"http"}
    record("plain", http=fixtures["http"]["port"], leases=len(fixture_broker.list()),
           session=fixture_broker.session)

@pytest.mark.fixtures({"api.admin": "port"}, grpc={"kind": "port"})
def test_own_marker(fixtures, fixture_broker):
    assert set(fixtures) == {"http", "api.admin", "grpc"}
    assert all(f["kind"] == "port" for f in fixtures.values())
    with socket.socket() as s:
        s.bind((fixtures["grpc"]["host"], fixtures["grpc"]["port"]))   # leased: ours to bind
    record("own", http=fixtures["http"]["port"], admin=fixtures["api.admin"]["port"],
           grpc=fixtures["grpc"]["port"], leases=len(fixture_broker.list()), session=fixture_broker.session)

@pytest.mark.fixtures(extra={"kind": "postgres"})
class TestClass:
    @pytest.mark.fixtures(extra="port")
    def test_closest_marker_wins(self, fixtures, fixture_broker):
        assert set(fixtures) == {"http", "extra"}
        assert fixtures["extra"]["kind"] == "port"
        record("class", http=fixtures["http"]["port"], extra=fixtures["extra"]["port"],
               leases=len(fixture_broker.list()), session=fixture_broker.session)
'''


@pytest.mark.parametrize("workers", ["0", "2"])
def test_marker_fixtures_are_leased_per_module_and_per_test(inner, monkeypatch, pg_broker, workers):
    use(monkeypatch, pg_broker)
    inner.makepyfile(record=RECORD, test_a=MARKERS, test_b=MARKERS)
    result = run(inner, "-n", workers, "--dist", "loadfile")
    result.assert_outcomes(passed=6)
    seen = records(inner)
    assert len(seen) == 6
    # One connection (one broker session) per process: per xdist worker, or the run's one.
    sessions = {(r["worker"], r["session"]) for r in seen}
    assert len(sessions) == len({r["worker"] for r in seen}) == len({r["session"] for r in seen})
    assert len(sessions) == (1 if workers == "0" else 2)
    # One module lease per file: its tests share the http port; the two files have two.
    by_http: Dict[int, List[Dict[str, Any]]] = {}
    for r in seen:
        by_http.setdefault(r["http"], []).append(r)
    assert sorted(len(v) for v in by_http.values()) == [3, 3]
    for r in seen:
        # the module's lease, plus the test's own when it has a marker of its own
        assert r["leases"] == (1 if r["name"] == "plain" else 2)
    ports = [r["http"] for r in seen] + [r[k] for r in seen for k in ("admin", "grpc", "extra") if k in r]
    per_test = [r[k] for r in seen for k in ("admin", "grpc", "extra") if k in r]
    assert len(set(per_test)) == len(per_test), "a per-test port was handed out twice at once"
    assert not set(per_test) & set(by_http)
    first, last = (int(x) for x in PG_PORTS.split("-"))
    assert all(first <= p <= last for p in ports)
    assert_nothing_held(pg_broker)
    assert all(bindable(p) for p in set(ports)), "a leased port is still bound after the run"


def test_a_bad_marker_fails_the_test_with_a_clear_error(inner, monkeypatch, pg_broker):
    use(monkeypatch, pg_broker)
    inner.makepyfile(test_bad='''
import pytest

@pytest.mark.fixtures(http=5)
def test_no_kind(fixtures):
    pass

@pytest.mark.fixtures(http={"kind": "no-such-kind"})
def test_unknown_kind(fixtures):
    pass
''')
    result = run(inner)
    result.assert_outcomes(errors=2)
    result.stdout.re_match_lines([r'fixture-broker: \[INVALID_ARGUMENT -1\] test_bad.py::test_no_kind: '
                                  r'fixture "http" needs a kind.*'])
    result.stdout.re_match_lines([r'fixture-broker: \[UNKNOWN_FIXTURE_KIND 1005\] \(lease.acquire\) .*"no-such-kind".*'])
    assert "During handling" not in result.stdout.str()
    assert_nothing_held(pg_broker)


# -- postgres -----------------------------------------------------------------------------


POSTGRES_PER_TEST = '''
import psycopg
from record import record

def test_1_write(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        c.execute("CREATE TABLE t (v text)")
        c.execute("INSERT INTO t VALUES ('from test 1')")
    record("write", url=postgres)

def test_2_read(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        exists = c.execute("SELECT to_regclass('t') IS NOT NULL").fetchone()[0]
    record("read", url=postgres, table=exists)
'''

POSTGRES_PER_MODULE = '''
import psycopg
import pytest
from record import record

pytestmark = pytest.mark.postgres(reset="module")

def test_1_write(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        c.execute("CREATE TABLE t (v text)")
        c.execute("INSERT INTO t VALUES ('from test 1')")
    record("m-write", url=postgres)

def test_2_read(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        rows = c.execute("SELECT v FROM t").fetchall()
    record("m-read", url=postgres, rows=[r[0] for r in rows])
'''

POSTGRES_AFTER = '''
import psycopg
from record import record

def test_3_fresh(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        exists = c.execute("SELECT to_regclass('t') IS NOT NULL").fetchone()[0]
    record("after", url=postgres, table=exists)
'''


@pytest.mark.parametrize("workers", ["0", "2"])
def test_postgres_resets_per_test_or_per_module(inner, monkeypatch, pg_broker, workers):
    use(monkeypatch, pg_broker)
    inner.makepyfile(record=RECORD, test_a_per_test=POSTGRES_PER_TEST, test_b_per_module=POSTGRES_PER_MODULE,
                     test_c_after=POSTGRES_AFTER)
    result = run(inner, "-n", workers, "--dist", "loadfile")
    result.assert_outcomes(passed=5)
    seen = {r["name"]: r for r in records(inner)}
    assert seen["read"]["table"] is False, "reset per test: the table of test 1 must be gone in test 2"
    assert seen["read"]["url"] != seen["write"]["url"], "reset per test gives a new database"
    assert seen["m-read"]["rows"] == ["from test 1"], "reset per module: test 2 sees test 1's row"
    assert seen["m-read"]["url"] == seen["m-write"]["url"]
    assert seen["after"]["table"] is False
    assert_nothing_held(pg_broker)


def test_an_invalid_reset_mode_is_a_clear_error(inner, monkeypatch, pg_broker):
    use(monkeypatch, pg_broker)
    inner.makepyfile(test_bad='''
import pytest

@pytest.mark.postgres(reset="never")
def test_it(postgres):
    pass
''')
    result = run(inner)
    result.assert_outcomes(errors=1)
    result.stdout.re_match_lines([r"fixture-broker: \[INVALID_ARGUMENT -1\] .*postgres reset must be one of \('test', 'module'\), not 'never'"])


# -- templates ----------------------------------------------------------------------------


TEMPLATE_CONFTEST = '''
import os
import psycopg
import pytest
from fixture_broker import Template

def build(url):
    with open(os.path.join(os.environ["OUT"], "builds.log"), "a") as f:
        f.write(os.environ.get("PYTEST_XDIST_WORKER", "main") + "\\n")
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE items (id serial PRIMARY KEY, name text)")
        c.execute("INSERT INTO items (name) VALUES ('built by a callable')")

@pytest.fixture(scope="session")
def fixture_broker_templates():
    return {
        "app": Template(["migrations/*.sql"], build=build),
        "sql": Template(["migrations/*.sql"]),
    }
'''

TEMPLATE_TEST = '''
import psycopg
import pytest
from record import record

@pytest.mark.postgres(template="app")
def test_callable_template_{n}(postgres):
    with psycopg.connect(postgres, autocommit=True) as c:
        names = [r[0] for r in c.execute("SELECT name FROM items")]
        c.execute("INSERT INTO items (name) VALUES ('test {n}')")
    assert names == ["built by a callable"]
    record("callable", n={n})

@pytest.mark.fixtures(db={{"kind": "postgres", "template": "sql"}})
def test_sql_template_{n}(fixtures):
    with psycopg.connect(fixtures["db"]["url"], autocommit=True) as c:
        rows = c.execute("SELECT v FROM from_sql ORDER BY v").fetchall()
        c.execute("DELETE FROM from_sql")
    assert [r[0] for r in rows] == ["one", "two"]
    record("sql", n={n})
'''


def test_a_template_is_built_once_under_xdist(inner, monkeypatch, pg_broker):
    use(monkeypatch, pg_broker)
    # A new template every run: its key is the hash of these files.
    inner.mkdir("migrations")
    (inner.path / "migrations" / "001_from_sql.sql").write_text(
        f"-- run {uuid.uuid4()}\nCREATE TABLE from_sql (v text);\n")
    (inner.path / "migrations" / "002_rows.sql").write_text("INSERT INTO from_sql VALUES ('one'), ('two');\n")
    inner.makeconftest(TEMPLATE_CONFTEST)
    inner.makepyfile(record=RECORD, **{f"test_t{n}": TEMPLATE_TEST.format(n=n) for n in range(8)})
    result = run(inner, "-n", "4")
    result.assert_outcomes(passed=16)
    builds = (inner.path / "out" / "builds.log").read_text().split()
    assert len(builds) == 1, f"the template was built {len(builds)} times: {builds}"
    workers = {r["worker"] for r in records(inner)}
    assert len(workers) >= 2, f"the tests ran on {workers} only"
    assert_nothing_held(pg_broker)

    # The next run finds the templates built.
    result = run(inner, "-n", "2")
    result.assert_outcomes(passed=16)
    assert len((inner.path / "out" / "builds.log").read_text().split()) == 1
    assert_nothing_held(pg_broker)


def test_a_failing_template_build_fails_its_tests_and_is_discarded(inner, monkeypatch, pg_broker):
    use(monkeypatch, pg_broker)
    inner.mkdir("migrations")
    (inner.path / "migrations" / "001.sql").write_text(f"-- {uuid.uuid4()}\nCREATE TABLE x (;\n")
    inner.makeconftest('''
import pytest
from fixture_broker import Template

@pytest.fixture(scope="session")
def fixture_broker_templates():
    return {"broken": Template("migrations/*.sql")}
''')
    inner.makepyfile(test_broken='''
import pytest

@pytest.mark.postgres(template="broken")
def test_it(postgres):
    pass
''')
    result = run(inner)
    result.assert_outcomes(errors=1)
    result.stdout.re_match_lines([r".*SyntaxError.*"])
    assert_nothing_held(pg_broker)


# -- the broker the plugin starts ---------------------------------------------------------


AUTOSTART = '''
import os
import pytest
from record import record

pytestmark = pytest.mark.fixtures(p="port")

def test_{n}(fixture_broker, fixtures):
    record("autostart", url=os.environ["FIXTURE_BROKER_URL"], client_url=fixture_broker.url,
           pid=os.getpid(), ppid=os.getppid(), port=fixtures["p"]["port"])

def test_no_broker_needed_{n}():
    pass
'''


def processes_mentioning(text: str) -> List[str]:
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{d.name}: {cmd}")
    return found


@pytest.mark.parametrize("workers", ["0", "3"])
def test_without_a_url_the_plugin_starts_a_broker_and_leaves_nothing_behind(inner, monkeypatch, workers):
    state = STATE / "autostart"
    monkeypatch.setenv("FIXTURE_BROKER_ARGS", f"--state-dir {state} --ports {AUTOSTART_PORTS}")
    monkeypatch.delenv("FIXTURE_BROKER_LOG", raising=False)
    inner.makepyfile(record=RECORD, **{f"test_s{n}": AUTOSTART.format(n=n) for n in range(4)})
    inner.makepyfile(test_pg='''
import psycopg
def test_pg(postgres):
    with psycopg.connect(postgres) as c:
        assert c.execute("SELECT 1").fetchone()[0] == 1
''')
    result = run(inner, "-n", workers)
    result.assert_outcomes(passed=9)
    seen = records(inner)
    urls = {r["url"] for r in seen}
    assert len(urls) == 1, f"one broker for the whole run, not {urls}"
    url = urls.pop()
    assert {r["client_url"] for r in seen} == {url}
    assert re.fullmatch(r"ws://127\.0\.0\.1:\d+", url)
    if workers != "0":
        assert len({r["worker"] for r in seen}) >= 2
        assert len({r["ppid"] for r in seen}) == 1, "the workers share one controller"
    # Nothing left: the broker is gone (its port refuses connections), with its PostgreSQL.
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the broker still listens after the run"
    assert processes_mentioning(str(state)) == []
    for cluster in (state / "pg").glob("*"):
        assert processes_mentioning(os.path.realpath(cluster)) == [], f"a postgres of {cluster} is still running"
    assert processes_mentioning(f"--ports {AUTOSTART_PORTS}") == []
    # The process that started the broker removed the log it made (the broker exited with 0).
    starter = seen[0]["pid"] if workers == "0" else seen[0]["ppid"]
    assert list(Path(tempfile.gettempdir()).glob(f"fixture-broker-{starter}-*.log")) == []
    first, last = (int(x) for x in AUTOSTART_PORTS.split("-"))
    assert all(first <= r["port"] <= last for r in seen)


def test_a_run_that_needs_no_broker_starts_none(inner, monkeypatch):
    monkeypatch.setenv("FIXTURE_BROKER_BIN", str(inner.path / "no-such-broker"))
    inner.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    result = run(inner)
    result.assert_outcomes(passed=1)


def test_an_unreachable_broker_is_a_clear_error(inner, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    monkeypatch.setenv("FIXTURE_BROKER_URL", url)
    inner.makepyfile(test_u='''
def test_client(fixture_broker):
    pass

def test_pg(postgres):
    pass

def test_plain():
    pass
''')
    result = run(inner, "-n", "2")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.re_match_lines([
        rf".*fixture-broker: cannot use the broker at {re.escape(url)} \(from FIXTURE_BROKER_URL\): \[CONNECT_FAILED\].*"])


def test_a_missing_broker_binary_is_a_clear_error(inner, monkeypatch):
    missing = inner.path / "no-such-broker"
    monkeypatch.setenv("FIXTURE_BROKER_BIN", str(missing))
    inner.makepyfile(test_m='''
def test_client(fixture_broker):
    pass

def test_plain():
    pass
''')
    for workers in ("0", "2"):
        result = run(inner, "-n", workers)
        result.assert_outcomes(passed=1, errors=1)
        result.stdout.re_match_lines([rf".*fixture-broker: {re.escape(str(missing))} \(from FIXTURE_BROKER_BIN\) "
                                      r"is not an executable file.*"])

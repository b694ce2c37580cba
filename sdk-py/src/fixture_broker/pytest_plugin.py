"""pytest_plugin.py: the pytest plugin of fixture-broker (entry point ``pytest11``, name ``fixture_broker``).

What sdk-js's Jest preset does, in pytest's terms (README.md, "pytest"):

- The broker: with ``FIXTURE_BROKER_URL`` set, that one. Otherwise the plugin starts one for
  the run (``broker_process.start_broker``: ``FIXTURE_BROKER_BIN``, ``fixture-broker`` on
  PATH, or a checkout's ``build/fixture-broker``) and stops it at the end: under xdist the
  controller starts it before the workers exist (``pytest_xdist_setupnodes``), so they inherit
  its URL; without xdist the process starts it the first time a test needs it. A run that
  never asks for a fixture starts nothing unless xdist spawns workers.
- One connection per process (per xdist worker, or the run's one process): the
  session-scoped ``fixture_broker`` fixture, closed at the end of the session (which releases
  what it still holds).
- ``fixtures``: the fixtures the test's ``@pytest.mark.fixtures(...)`` markers name, as
  ``{name: fields}``. A marker on the module (``pytestmark``) is leased once for the module;
  one on a class or a test, for each test.
- ``postgres``: the URL of a database of the test's own. The worker holds one lease per kind
  of database and resets it (``lease.reset``, a fresh clone of its template) before each test,
  or only when the module changes (``reset="module"``).
- Templates: ``fixture_broker_templates`` (override it in conftest.py) maps names to
  ``Template(files, build=None)``; a fixture naming one gets the template built once per
  broker (the broker picks one builder among all workers) and keyed by the hash of its files.

Every name, port and database comes from the broker; the xdist worker id is only a label.
"""

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, TypeVar

import pytest

from .broker_process import BrokerProcess, BrokerStartError, start_broker
from .client import Client, Lease, connect, normalize_fixtures
from .errors import FixtureBrokerError
from .templates import Template

T = TypeVar("T")
ENV_URL = "FIXTURE_BROKER_URL"
WORKER_INPUT_ERROR = "fixture_broker_start_error"
POSTGRES_NAME = "db"
RESET_MODES = ("test", "module")
# A lease or a reset that fails with one of these is gone with its session: lease afresh.
_LEASE_GONE = ("LEASE_NOT_FOUND", "LEASE_NOT_OWNED", "CONNECTION_LOST")


def _invalid(message: str) -> FixtureBrokerError:
    return FixtureBrokerError.client("INVALID_ARGUMENT", message)


class _PgSlot:
    """A worker's lease on one kind of database, and which module used it last."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.fresh = True
        self.module: Optional[str] = None


class _State:
    """The plugin's state in one process: the broker it started, its connection, templates."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.worker = getattr(config, "workerinput", None) is not None
        self.started: Optional[BrokerProcess] = None
        self.start_error: Optional[str] = None
        self.client: Optional[Client] = None
        self.connect_error: Optional[str] = None
        self.templates: Dict[Tuple[str, str], str] = {}
        self.pg: Dict[str, _PgSlot] = {}
        self.lock = threading.Lock()
        if self.worker:
            self.start_error = config.workerinput.get(WORKER_INPUT_ERROR)  # type: ignore[attr-defined]

    def ensure_broker(self) -> str:
        """The broker's URL, after starting one if none is set (never in an xdist worker)."""
        with self.lock:
            url = os.environ.get(ENV_URL)
            if url:
                return url
            if self.start_error is None and self.worker:
                self.start_error = (f"fixture-broker: {ENV_URL} is not set in xdist worker "
                                    f"{os.environ.get('PYTEST_XDIST_WORKER', '?')}; the controller did "
                                    "not start a broker (is the plugin disabled there?)")
            if self.start_error is None:
                args = list(self.config.getini("fixture_broker_args"))
                try:
                    self.started = start_broker(args=args)
                except BrokerStartError as err:
                    self.start_error = str(err)
                else:
                    os.environ[ENV_URL] = self.started.url
                    return self.started.url
            raise _BrokerUnavailable(self.start_error)

    def connect(self) -> Client:
        if self.client is not None and not self.client.closed:
            return self.client
        if self.connect_error is not None:
            raise _BrokerUnavailable(self.connect_error)
        url = self.ensure_broker()
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        try:
            self.client = connect(url, client="pytest", labels={"runner": "pytest", "worker": worker})
        except FixtureBrokerError as err:
            where = "started by this run" if self.started else f"from {ENV_URL}"
            self.connect_error = f"fixture-broker: cannot use the broker at {url} ({where}): [{err.name}] {err}"
            raise _BrokerUnavailable(self.connect_error) from None
        return self.client

    def close_client(self) -> None:
        self.pg.clear()
        self.templates.clear()
        if self.client is not None:
            self.client.close()
            self.client = None

    def stop_broker(self) -> None:
        started, self.started = self.started, None
        if started is None:
            return
        if os.environ.get(ENV_URL) == started.url:
            del os.environ[ENV_URL]
        status = started.stop()
        if status != 0:
            # The run's report is written by now: say it on stderr, with the log kept for it.
            sys.stderr.write(f"fixture-broker: the broker this run started exited with {status}: "
                             f"{started.describe()}\n")

    def template_key(self, name: str, template: Template, client: Client) -> str:
        """Ensures the template once per process and returns the key it is leased under."""
        rootdir = Path(str(self.config.rootpath))
        cache = (client.url, name)
        key = self.templates.get(cache)
        if key is None:
            key = template.key(rootdir)
            client.ensure_template(key, lambda url: template.run(url, rootdir), wait_ms=template.wait_ms)
            self.templates[cache] = key
        return key


class _BrokerUnavailable(Exception):
    pass


def _reported(fn: Callable[[], T]) -> T:
    """fn(), failing the test on a FixtureBrokerError with its stable name and code, and no
    traceback into the plugin."""
    try:
        return fn()
    except FixtureBrokerError as err:
        method = f" ({err.method})" if err.method else ""
        failure = f"fixture-broker: [{err.name} {err.code}]{method} {err}"
    pytest.fail(failure, pytrace=False)


_STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("fixture_broker_args", type="args", default=[],
                  help="fixture-broker: flags for a broker the plugin starts (after $FIXTURE_BROKER_ARGS)")
    parser.addini("fixture_broker_wait_ms", default="60000",
                  help="fixture-broker: how long an acquire may queue when a pool is short (ms)")
    parser.addini("fixture_broker_postgres_template", default="",
                  help="fixture-broker: the postgres fixture's template (a name in fixture_broker_templates, "
                       "a configured template or a hash); none: an empty database")
    parser.addini("fixture_broker_postgres_reset", default="test",
                  help="fixture-broker: when the postgres fixture's database is replaced by a fresh clone: "
                       "test (before every test) or module (when the module changes)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "fixtures(specs=None, **named): broker fixtures for the `fixtures` fixture, "
        "e.g. fixtures(http='port', db={'kind': 'postgres', 'template': 'app'}); "
        "on a module leased once for the module, else for each test")
    config.addinivalue_line(
        "markers",
        "postgres(template=None, reset='test'|'module', **request): how the `postgres` fixture's "
        "database is made and when it is reset")
    config.stash[_STATE] = _State(config)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Any) -> None:
    """The xdist controller, before it spawns the workers: starts the broker they inherit."""
    state = _state(config)
    try:
        state.ensure_broker()
    except _BrokerUnavailable:
        pass  # each worker's first test that needs the broker fails with state.start_error


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    state = _state(node.config)
    if state.start_error is not None:
        node.workerinput[WORKER_INPUT_ERROR] = state.start_error


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close_client()
        state.stop_broker()


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fixture_broker(request: pytest.FixtureRequest) -> Iterator[Client]:
    """This process's connection to the broker (one per xdist worker)."""
    state = _state(request.config)
    try:
        client = state.connect()
    except _BrokerUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    yield client
    state.close_client()


@pytest.fixture(scope="session")
def fixture_broker_templates() -> Mapping[str, Template]:
    """Client-built templates by name; override this fixture in conftest.py."""
    return {}


def _wait_ms(config: pytest.Config) -> int:
    raw = config.getini("fixture_broker_wait_ms")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _invalid(f"fixture_broker_wait_ms must be an integer number of milliseconds, not {raw!r}") from None


def _marker_specs(marks: Any, where: str) -> Dict[str, Any]:
    """Merges ``fixtures`` markers, given closest first: the closest wins on a name."""
    merged: Dict[str, Any] = {}
    for mark in reversed(list(marks)):
        if len(mark.args) > 1 or (mark.args and not isinstance(mark.args[0], Mapping)):
            raise _invalid(f"{where}: @pytest.mark.fixtures takes one dict of name -> spec and/or "
                           f"name=spec keywords, not {mark.args!r}")
        specs = {**(mark.args[0] if mark.args else {}), **mark.kwargs}
        for name, spec in specs.items():
            if not isinstance(spec, (str, Mapping)) or (isinstance(spec, Mapping) and
                                                         not isinstance(spec.get("kind"), str)):
                raise _invalid(f'{where}: fixture "{name}" needs a kind ("port" or {{"kind": ...}}), '
                               f"not {spec!r}")
        merged.update(normalize_fixtures(specs))
    return merged


def _resolve_templates(specs: Dict[str, Any], request: pytest.FixtureRequest, client: Client) -> Dict[str, Any]:
    templates = request.getfixturevalue("fixture_broker_templates")
    state = _state(request.config)
    out = {}
    for name, spec in specs.items():
        tname = spec.get("template")
        if isinstance(tname, str) and tname in templates:
            spec = {**spec, "template": state.template_key(tname, templates[tname], client)}
        out[name] = spec
    return out


def _lease(request: pytest.FixtureRequest, specs: Dict[str, Any]) -> Lease:
    client: Client = request.getfixturevalue("fixture_broker")
    specs = _resolve_templates(specs, request, client)
    return client.acquire(specs, wait_ms=_wait_ms(request.config))


@pytest.fixture(scope="module")
def fixture_broker_module_fixtures(request: pytest.FixtureRequest) -> Iterator[Dict[str, Dict[str, Any]]]:
    """The fields of the fixtures the module's own ``fixtures`` marker names, leased for the module."""
    specs = _reported(lambda: _marker_specs(request.node.iter_markers("fixtures"), request.node.nodeid))
    lease = _reported(lambda: _lease(request, specs)) if specs else None
    if lease is None:
        yield {}
        return
    try:
        yield lease.fixtures
    finally:
        if not lease.client.closed:
            lease.release()


@pytest.fixture
def fixtures(request: pytest.FixtureRequest,
             fixture_broker_module_fixtures: Dict[str, Dict[str, Any]]) -> Iterator[Dict[str, Dict[str, Any]]]:
    """``{name: fields}`` for every fixture the test's ``fixtures`` markers name: the
    module's (leased once for the module) and the class's and test's (leased for this test)."""
    own = [mark for node, mark in request.node.iter_markers_with_node("fixtures")
           if not isinstance(node, pytest.Module)]
    result = dict(fixture_broker_module_fixtures)
    specs = _reported(lambda: _marker_specs(own, request.node.nodeid))
    lease = _reported(lambda: _lease(request, specs)) if specs else None
    if lease is None:
        yield result
        return
    result.update(lease.fixtures)
    try:
        yield result
    finally:
        if not lease.client.closed:
            lease.release()


def _postgres_options(request: pytest.FixtureRequest) -> Tuple[Dict[str, Any], str]:
    """The postgres fixture's request and reset mode: the ini defaults, then the ``postgres``
    markers from the module's down to the test's."""
    config = request.config
    opts: Dict[str, Any] = {}
    default_template = config.getini("fixture_broker_postgres_template")
    if default_template:
        opts["template"] = default_template
    opts["reset"] = config.getini("fixture_broker_postgres_reset")
    for mark in reversed(list(request.node.iter_markers("postgres"))):
        if mark.args:
            raise _invalid(f"{request.node.nodeid}: @pytest.mark.postgres takes keywords only "
                           f"(template=..., reset=...), not {mark.args!r}")
        opts.update(mark.kwargs)
    reset = opts.pop("reset")
    if reset not in RESET_MODES:
        raise _invalid(f"{request.node.nodeid}: postgres reset must be one of {RESET_MODES}, not {reset!r}")
    if opts.get("template") is None:
        opts.pop("template", None)
    opts.pop("kind", None)
    return {"kind": "postgres", **opts}, reset


@pytest.fixture
def postgres(request: pytest.FixtureRequest, fixture_broker: Client) -> str:
    """The URL of a PostgreSQL database of this test's own (see the ``postgres`` marker)."""
    return _reported(lambda: _postgres_url(request, fixture_broker))


def _postgres_url(request: pytest.FixtureRequest, fixture_broker: Client) -> str:
    spec, reset = _postgres_options(request)
    spec = _resolve_templates({POSTGRES_NAME: spec}, request, fixture_broker)[POSTGRES_NAME]
    state = _state(request.config)
    key = json.dumps(spec, sort_keys=True)
    module = request.node.nodeid.split("::", 1)[0]
    slot = state.pg.get(key)
    if slot is not None and (slot.lease.released or slot.lease.client is not fixture_broker):
        slot = None
    if slot is not None and not slot.fresh and (reset == "test" or slot.module != module):
        try:
            slot.lease.reset(POSTGRES_NAME)
        except FixtureBrokerError as err:
            if err.name not in _LEASE_GONE:
                raise
            slot = None
    if slot is None:
        lease = fixture_broker.acquire({POSTGRES_NAME: spec}, wait_ms=_wait_ms(request.config))
        slot = state.pg[key] = _PgSlot(lease)
    slot.fresh = False
    slot.module = module
    return str(slot.lease.fixtures[POSTGRES_NAME]["url"])

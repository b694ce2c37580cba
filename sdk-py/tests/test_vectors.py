"""test_vectors.py: walks protocol/vectors/*.json against the real broker, raw over WebSocket and through the client.

The broker is the one the vectors assume (protocol/vectors/README.md): a pool of ten ports,
no quarantine, every other setting at its default. Its pool is 27700-27709 rather than
15000-15009, so the expected ``first``/``last`` values are adjusted to it, as the JS walker
does when 15000-15009 is taken.

Each file runs twice, each time on a fresh session: once raw (every case's text sent as one
WebSocket message, its replies compared by the vectors' matching rules), and once through
``Client.call()`` for the cases that are plain calls (the result, or the error's code,
message and data, compared the same way). No case waits, so "no reply" is checked without a
timer: after each case a marker call follows, and whatever arrives before the marker's reply
is the case's reply.
"""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

import fixture_broker
from fixture_broker import FixtureBrokerError

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors"
FILES = sorted(VECTORS.glob("*.json"))
ASSUMED = (15000, 15009)
PORTS = (27700, 27709)
CASES: List[Tuple[str, Dict[str, Any]]] = [
    (f.name, case) for f in FILES for case in json.loads(f.read_text())["cases"]
]


def kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


_MISSING = object()


def match(expected: Any, actual: Any, where: str = "$") -> Optional[str]:
    """None when ``actual`` matches ``expected`` by the vectors' rules, else the first difference."""
    if expected == "*" and isinstance(expected, str):
        return f"{where}: missing" if actual is _MISSING else None
    if actual is _MISSING:
        return f"{where}: missing"
    if kind(expected) != kind(actual):
        return f"{where}: expected {kind(expected)} {json.dumps(expected)}, got {kind(actual)} {json.dumps(actual)}"
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{where}: expected {len(expected)} elements, got {len(actual)}: {json.dumps(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            r = match(e, a, f"{where}[{i}]")
            if r:
                return r
        return None
    if isinstance(expected, dict):
        open_ = expected.get("*") == "*"
        for key, e in expected.items():
            if open_ and key == "*":
                continue
            r = match(e, actual.get(key, _MISSING), f"{where}.{key}")
            if r:
                return r
        if not open_:
            for key in actual:
                if key not in expected:
                    return f"{where}.{key}: not expected ({json.dumps(actual[key])})"
        return None
    return None if expected == actual else f"{where}: expected {json.dumps(expected)}, got {json.dumps(actual)}"


def adjust(expected: Any) -> Any:
    """The expected value with the pool's first and last ports replaced by the ones in use."""
    if isinstance(expected, list):
        return [adjust(v) for v in expected]
    if isinstance(expected, dict):
        out = {}
        for k, v in expected.items():
            if k == "first" and v == ASSUMED[0]:
                out[k] = PORTS[0]
            elif k == "last" and v == ASSUMED[1]:
                out[k] = PORTS[1]
            else:
                out[k] = adjust(v)
        return out
    return expected


def is_plain_call(case: Dict[str, Any]) -> bool:
    """Cases that Client.call() can send as they are: one call by name, with an id."""
    r = case.get("request")
    if not isinstance(r, dict) or "request_text" in case:
        return False
    if any(k not in ("jsonrpc", "id", "method", "params") for k in r):
        return False
    if r.get("jsonrpc") != "2.0" or not isinstance(r.get("method"), str) or kind(r.get("id")) != "number":
        return False
    if not isinstance(r.get("id"), int) or ("params" in r and not isinstance(r["params"], dict)):
        return False
    return isinstance(case["response"], dict)


class RawSession:
    """A raw WebSocket session that reads its messages in order."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = ws_connect(url, subprotocols=["fixture-broker.v1"]).__enter__()  # type: ignore[list-item]
        self.marker = 0

    def exchange(self, text: str) -> List[Any]:
        """Sends ``text``, then a marker call; returns the replies that came before the marker's."""
        self.marker += 1
        marker = f"vectors-marker-{self.marker}"
        self.ws.send(text)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": marker, "method": "broker.status"}))
        replies = []
        while True:
            msg = json.loads(self.ws.recv(timeout=10))
            if isinstance(msg, dict) and msg.get("id") == marker:
                return replies
            replies.append(msg)

    def give_back(self) -> None:
        """Releases what the session leased, checking each release, and closes it."""
        [listed] = self.exchange(json.dumps({"jsonrpc": "2.0", "id": "list", "method": "lease.list"}))
        for held in listed["result"]["leases"]:
            [r] = self.exchange(json.dumps(
                {"jsonrpc": "2.0", "id": "release", "method": "lease.release", "params": {"lease": held["lease"]}}))
            assert r["result"]["released"] is True
        self.ws.close()


class Sessions:
    """One session per vector file: a new file closes the previous file's session first."""

    def __init__(self, url: str, opener: Any, closer: Any) -> None:
        self.url, self.opener, self.closer = url, opener, closer
        self.file: Optional[str] = None
        self.session: Any = None

    def for_file(self, file: str) -> Any:
        if file != self.file:
            self.finish()
            self.file, self.session = file, self.opener(self.url)
        return self.session

    def finish(self) -> None:
        if self.session is not None:
            self.closer(self.session)
            self.session = self.file = None


@pytest.fixture(scope="module")
def vectors_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from conftest import start_broker

    b = start_broker(tmp_path_factory.mktemp("vectors"), f"{PORTS[0]}-{PORTS[1]}", "--port-quarantine-ms", "0")
    yield b
    assert b.stop() == 0, "the broker did not exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def raw_sessions(vectors_broker: Any) -> Iterator[Sessions]:
    s = Sessions(vectors_broker.url, RawSession, RawSession.give_back)
    yield s
    s.finish()


@pytest.fixture(scope="module")
def client_sessions(vectors_broker: Any) -> Iterator[Sessions]:
    s = Sessions(vectors_broker.url, lambda url: fixture_broker.connect(url, client="vectors"), lambda c: c.close())
    yield s
    s.finish()


def test_star_matches_any_present_value_null_included_but_not_a_missing_one():
    assert match("*", None) is None
    assert match({"a": "*"}, {"a": 0}) is None
    assert match({"a": "*"}, {}) is not None


def test_objects_need_exactly_the_expected_keys_unless_star_allows_more():
    assert match({"a": 1}, {"a": 1, "b": 2}) is not None
    assert match({"a": 1, "*": "*"}, {"a": 1, "b": 2}) is None
    assert match({"a": 1, "*": "*"}, {"b": 2}) is not None


def test_arrays_match_in_order_and_scalars_by_value_and_json_type():
    assert match([1, 2], [2, 1]) is not None
    assert match([1], [1, 1]) is not None
    assert match(1, True) is not None
    assert match("1", 1) is not None
    assert match(None, {}) is not None
    assert match([{"a": [1, "*"]}], [{"a": [1, "x"]}]) is None


@pytest.mark.parametrize("file,case", CASES, ids=[f"{f}::{c['name']}" for f, c in CASES])
def test_raw(raw_sessions: Sessions, file: str, case: Dict[str, Any]) -> None:
    session = raw_sessions.for_file(file)
    text = case["request_text"] if "request_text" in case else json.dumps(case["request"], separators=(",", ":"))
    replies = session.exchange(text)
    if case["response"] is None:
        assert replies == [], "a reply came where none must"
        return
    assert len(replies) == 1, f"expected one reply, got {json.dumps(replies)}"
    mismatch = match(adjust(case["response"]), replies[0])
    assert mismatch is None, f"{mismatch}\nreply: {json.dumps(replies[0])}"


PLAIN = [(f, c) for f, c in CASES if is_plain_call(c)]


@pytest.mark.parametrize("file,case", PLAIN, ids=[f"{f}::{c['name']}" for f, c in PLAIN])
def test_client_call(client_sessions: Sessions, file: str, case: Dict[str, Any]) -> None:
    client = client_sessions.for_file(file)
    expected = adjust(case["response"])
    try:
        outcome: Dict[str, Any] = {"result": client.call(case["request"]["method"], case["request"].get("params"))}
    except FixtureBrokerError as err:
        if not err.from_broker:
            raise
        outcome = {"error": {"code": err.code, "message": err.message, "data": err.data}}
    if "error" in expected:
        assert "error" in outcome, f"expected an error, got {json.dumps(outcome['result'])}"
        mismatch = match(expected["error"], outcome["error"])
        assert mismatch is None, f"{mismatch}\nerror: {json.dumps(outcome['error'])}"
    else:
        assert "result" in outcome, f"expected a result, got {json.dumps(outcome['error'])}"
        mismatch = match(expected["result"], outcome["result"])
        assert mismatch is None, f"{mismatch}\nresult: {json.dumps(outcome['result'])}"


def test_the_walks_leave_no_lease_behind(vectors_broker: Any, raw_sessions: Sessions, client_sessions: Sessions) -> None:
    raw_sessions.finish()
    client_sessions.finish()
    with fixture_broker.connect(vectors_broker.url, client="vectors-observer") as observer:
        assert observer.status()["leases"] == 0

"""client.py: the fixture-broker client: one WebSocket connection (one broker session), its leases.

A Client owns one connection to the broker at a time and the JSON-RPC calls in flight on it.
Its API is blocking; a background thread reads the replies and hands each to the thread
waiting for it, matched by id, never by order (a waiting acquire is answered when it is
done), so several threads may call one Client at once. The same thread answers the broker's
pings (websockets does that while it reads): the broker pings every client
(``--heartbeat-ms``) and drops one silent for ``--dead-after-ms``.

Silence: the broker's pings also tell this client that the connection lives. A connection on
which nothing at all (no message, no ping, no pong) has arrived for ``dead_after`` (the
``dead_after_ms`` of the broker's hello, else 15 s) is dead even if TCP has not noticed (a
link down, a host gone): the reader shuts it down and reconnects as after any drop. Halfway
there it sends a ping of its own, so a broker that pings rarely or never still answers.

When the connection drops, the calls in flight fail at once with CONNECTION_LOST (the broker
may or may not have acted on them), calls made afterwards wait, and the background thread
reconnects with backoff and resumes the session with ``session.hello {resume}``: within the
broker's grace period the session and its leases survive. If the session cannot be resumed
(the grace period ran out, or another connection took it over with close code 4001), the
client opens a fresh session, counts the loss in ``sessions_lost``, marks its old leases
released and lost (their calls raise SESSION_LOST) and calls ``on_session_lost``.
"""

import inspect
import json
import os
import socket
import ssl as _ssl
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Union, cast

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from .errors import FixtureBrokerError

SUBPROTOCOL = "fixture-broker.v1"
DEFAULT_URL = "ws://127.0.0.1:7357"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CALL_TIMEOUT = 60.0
RELEASE_ON_CLOSE = 5.0
# The broker keeps a dropped session for 5 s by default: the first attempts come fast.
BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
# The broker's close code for a connection whose session another connection resumed.
CLOSE_TAKEN_OVER = 4001
# The silence after which a connection counts as dead when the broker's hello does not say.
DEFAULT_DEAD_AFTER = 15.0

FixtureSpec = Union[str, Mapping[str, Any]]

# websockets 14 renamed the sync client's ssl_context to ssl.
_SSL_PARAM = "ssl" if "ssl" in inspect.signature(ws_connect).parameters else "ssl_context"
# The PEM files a wss:// connection uses when not given, as libfxb's tls.ca/cert/key.
TLS_ENV = {"ca": "FIXTURE_BROKER_CA", "cert": "FIXTURE_BROKER_CERT", "key": "FIXTURE_BROKER_KEY"}


def _tls_context(
    ssl: Optional[_ssl.SSLContext], ca: Optional[str], cert: Optional[str], key: Optional[str]
) -> _ssl.SSLContext:
    """The context of a wss:// connection: ``ssl`` as given, or one that verifies the broker
    against ``ca`` (else $FIXTURE_BROKER_CA, else the system's CAs) and presents ``cert``
    with ``key`` (else $FIXTURE_BROKER_CERT/_KEY), if any."""
    if ssl is not None:
        if ca or cert or key:
            raise FixtureBrokerError.client(
                "INVALID_ARGUMENT", "give either ssl (a context) or ca/cert/key, not both")
        if not isinstance(ssl, _ssl.SSLContext):
            raise FixtureBrokerError.client(
                "INVALID_ARGUMENT", f"ssl must be an ssl.SSLContext, not {type(ssl).__name__}")
        return ssl
    ca = ca or os.environ.get(TLS_ENV["ca"]) or None
    cert = cert or os.environ.get(TLS_ENV["cert"]) or None
    key = key or os.environ.get(TLS_ENV["key"]) or None
    if (cert is None) != (key is None):
        raise FixtureBrokerError.client(
            "INVALID_ARGUMENT", "a client certificate needs its key and the other way round (cert and key)")
    try:
        ctx = _ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(cert, key)
    except (OSError, _ssl.SSLError) as err:
        raise FixtureBrokerError.client(
            "INVALID_ARGUMENT", f"cannot load the TLS files (ca={ca}, cert={cert}, key={key}): {err}") from err
    return ctx

# websockets 15 added a client-side keepalive to its sync client, on by default, which would
# ping on a schedule of its own and close with its own timeout; this client watches for the
# broker's pings instead (and pings only when they stop coming), as sdk-js and libfxb do,
# whatever websockets version is installed.
_KEEPALIVE_OFF: Dict[str, Any] = (
    {"ping_interval": None} if "ping_interval" in inspect.signature(ws_connect).parameters else {}
)


# The silence watch needs to see every frame that arrives, pings included: websockets hands
# each to process_event() on its own reading thread. Every sync client since websockets 12
# takes a connection class.
_CAN_WATCH = "create_connection" in inspect.signature(ws_connect).parameters


class _WatchedConnection(ClientConnection):
    """A ClientConnection that notes when it last received anything."""

    heard = 0.0

    def process_event(self, event: Any) -> None:
        self.heard = time.monotonic()
        super().process_event(event)


def _string_labels(labels: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items() if v is not None}


def normalize_fixtures(fixtures: Mapping[str, FixtureSpec]) -> Dict[str, Any]:
    """``{"http": "port"}`` is short for ``{"http": {"kind": "port"}}``; dicts are sent as they are."""
    if not isinstance(fixtures, Mapping):
        return fixtures  # not a mapping: sent as it is, the broker answers INVALID_PARAMS
    return {name: {"kind": spec} if isinstance(spec, str) else dict(spec) for name, spec in fixtures.items()}


class _Call:
    """One call in flight: its caller waits on ``done``; the reader sets result or error."""

    __slots__ = ("method", "done", "result", "error")

    def __init__(self, method: str) -> None:
        self.method = method
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[FixtureBrokerError] = None

    def finish(self, result: Any = None, error: Optional[FixtureBrokerError] = None) -> None:
        self.result = result
        self.error = error
        self.done.set()


class Lease:
    """The fixtures one ``lease.acquire`` granted, under the caller's names.

    ``fixtures`` maps each name to the fixture's fields (``lease.fixtures["http"]["port"]``).
    Releasing is idempotent; ``with client.acquire(...) as lease:`` releases it on exit.
    """

    def __init__(self, client: "Client", result: Mapping[str, Any]) -> None:
        self.client = client
        self.id: str = result["lease"]
        self.fixtures: Dict[str, Dict[str, Any]] = json.loads(json.dumps(result["fixtures"]))
        self.ttl_ms: Optional[int] = result.get("ttl_ms")
        self.released = False
        #: True once the client knows the lease's session was lost (the broker released the
        #: lease); its calls then raise SESSION_LOST and ``release()`` returns False.
        self.lost = False

    def _check(self, method: str) -> None:
        if self.lost:
            raise FixtureBrokerError.client(
                "SESSION_LOST",
                f"{method}: lease {self.id} was lost with its session (the broker released it)",
                method,
            )

    def release(self) -> bool:
        """Releases the lease; True if this call released it, False if it was already gone."""
        if self.released:
            return False
        return self.client.release(self)

    def renew(self, ttl_ms: Optional[int] = None) -> Dict[str, Any]:
        """Pushes the expiry to now + ``ttl_ms`` (or the lease's own TTL without it).
        Returns ``{"ttl_ms", "expires_in_ms"}`` as the broker now holds them."""
        self._check("lease.renew")
        params: Dict[str, Any] = {"lease": self.id}
        if ttl_ms is not None:
            params["ttl_ms"] = ttl_ms
        r = self.client.call("lease.renew", params)
        self.ttl_ms = r.get("ttl_ms")
        return {"ttl_ms": r.get("ttl_ms"), "expires_in_ms": r.get("expires_in_ms")}

    def reset(self, name: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Swaps the named fixture for a fresh one (``lease.reset``; for a postgres fixture a
        new clone of its template). Returns the new fields, which also replace
        ``self.fixtures[name]``."""
        self._check("lease.reset")
        r = self.client.call("lease.reset", {"lease": self.id, "fixture": name}, timeout=timeout)
        fields = r.get("fixtures", {}).get(name) if isinstance(r, dict) else None
        if not isinstance(fields, dict):
            raise FixtureBrokerError.client(
                "PROTOCOL_ERROR", f'lease.reset: the reply has no fields for fixture "{name}"', "lease.reset"
            )
        self.fixtures[name] = fields
        return fields

    def logs(self, name: str, tail: Optional[int] = None) -> Dict[str, str]:
        """The server fixture's captured output: ``{"stdout", "stderr"}``."""
        self._check("server.logs")
        return self.client.logs(self, name, tail=tail)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.released and not self.client.closed:
            self.release()

    def __repr__(self) -> str:
        return f"Lease(id={self.id!r}, fixtures={self.fixtures!r})"


class Client:
    """One broker session. Use :func:`connect`, which also opens the connection."""

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        client: Optional[str] = None,
        labels: Optional[Mapping[str, Any]] = None,
        timeout: float = DEFAULT_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        resume: Optional[str] = None,
        dead_after: Optional[float] = None,
        on_session_lost: Optional[Callable[[Dict[str, Any]], Any]] = None,
        ssl: Optional[_ssl.SSLContext] = None,
        ca: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
    ) -> None:
        if dead_after is not None and (
            isinstance(dead_after, bool) or not isinstance(dead_after, (int, float)) or dead_after < 0
        ):
            raise FixtureBrokerError.client(
                "INVALID_ARGUMENT", f"dead_after must be a number of seconds (0: never), not {dead_after!r}")
        self.url: str = url or os.environ.get("FIXTURE_BROKER_URL") or DEFAULT_URL
        self._token = token if token is not None else os.environ.get("FIXTURE_BROKER_TOKEN")
        self._ssl = _tls_context(ssl, ca, cert, key) if self.url.lower().startswith("wss:") else None
        self._client_name = client or "fixture-broker-py"
        self._labels = _string_labels({"pid": os.getpid(), **(labels or {})})
        self._timeout = timeout
        self._call_timeout = call_timeout
        self._resume = resume
        self._dead_after = dead_after
        self._on_session_lost = on_session_lost
        self._silence: Optional[str] = None

        # _lock guards everything below; _changed is notified on every change of _state/_ws.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._ws: Optional[ClientConnection] = None
        self._state = "idle"  # idle, open, reconnecting, closed
        self._next_id = 1
        self._inflight: Dict[int, _Call] = {}
        self._abandoned: Set[int] = set()
        self._refused: Optional[FixtureBrokerError] = None
        self._dropped_at = 0.0
        self._leases: Dict[str, Lease] = {}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closing = False

        self.session: Optional[str] = None
        self.resume_token: Optional[str] = None
        self.broker: Optional[Dict[str, Any]] = None
        self.limits: Optional[Dict[str, Any]] = None
        self.hello: Optional[Dict[str, Any]] = None
        #: How many times the connection was re-established, and how many of those had to
        #: start a fresh session because the old one could not be resumed.
        self.reconnects = 0
        self.sessions_lost = 0

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (or ``connect()`` failed)."""
        return self._state == "closed"

    @property
    def connected(self) -> bool:
        """True while the client has a live session (not reconnecting, not closed)."""
        return self._state == "open"

    @property
    def dead_after(self) -> float:
        """How long (seconds) the connection may stay silent before the client takes it for
        dead: the ``dead_after`` argument, else the broker's ``limits["dead_after_ms"]``, else
        15. 0: never (also when the installed websockets cannot watch)."""
        if not _CAN_WATCH:
            return 0.0
        if self._dead_after is not None:
            return float(self._dead_after)
        announced = (self.limits or {}).get("dead_after_ms")
        if isinstance(announced, int) and not isinstance(announced, bool) and announced > 0:
            return announced / 1000.0
        return DEFAULT_DEAD_AFTER

    # -- connection -------------------------------------------------------------------

    def _open(self) -> None:
        try:
            ws = self._establish(reconnecting=False)
        except BaseException:
            self._state = "closed"
            raise
        with self._lock:
            self._ws = ws
            self._state = "open"
        self._thread = threading.Thread(target=self._run, args=(ws,), name="fixture-broker-reader", daemon=True)
        self._thread.start()

    def _open_socket(self) -> ClientConnection:
        try:
            # websockets 17 wants connect() used as a context manager and later versions will
            # return a connecter from it; entering it by hand opens the connection the same
            # way in every version from 12 on. The client closes it with close().
            return ws_connect(
                self.url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                # The token goes once, here: the broker checks it before it upgrades.
                additional_headers={"Authorization": f"Bearer {self._token}"} if self._token else None,
                **({_SSL_PARAM: self._ssl} if self._ssl else {}),
                open_timeout=self._timeout,
                compression=None,
                max_size=None,
                **_KEEPALIVE_OFF,
                **({"create_connection": _WatchedConnection} if _CAN_WATCH else {}),
            ).__enter__()
        except InvalidStatus as err:
            if err.response.status_code == 401:
                # As the broker's own UNAUTHENTICATED: a wrong token will not mend itself.
                raise FixtureBrokerError(
                    1001, "UNAUTHENTICATED",
                    f"cannot connect to {self.url}: the broker refused the bearer token (HTTP 401)",
                ) from err
            raise FixtureBrokerError.client("CONNECT_FAILED", f"cannot connect to {self.url}: {err}") from err
        except _ssl.SSLCertVerificationError as err:
            raise FixtureBrokerError.client(
                "CONNECT_FAILED",
                f"cannot connect to {self.url}: the broker's TLS certificate was not accepted: "
                f"{err.verify_message}",
            ) from err
        except Exception as err:
            raise FixtureBrokerError.client("CONNECT_FAILED", f"cannot connect to {self.url}: {err}") from err

    def _hello(self, ws: ClientConnection, params: Dict[str, Any]) -> Dict[str, Any]:
        """Calls session.hello on ``ws`` before the reader thread reads it."""
        with self._lock:
            call_id = self._next_id
            self._next_id += 1
        deadline = time.monotonic() + self._timeout
        try:
            ws.send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": "session.hello", "params": params}))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError()
                text = ws.recv(timeout=remaining)
                try:
                    msg = json.loads(text)
                except ValueError:
                    continue
                if isinstance(msg, dict) and msg.get("id") == call_id:
                    break
        except TimeoutError:
            raise FixtureBrokerError.client(
                "TIMEOUT", f"session.hello: no reply from {self.url} within {self._timeout} s", "session.hello"
            ) from None
        except ConnectionClosed as err:
            raise FixtureBrokerError.client(
                "CONNECTION_LOST", f"session.hello: the connection to {self.url} dropped ({err})", "session.hello"
            ) from err
        if "error" in msg:
            raise FixtureBrokerError.from_rpc(msg["error"], "session.hello")
        result = msg.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("session"), str) or not isinstance(
            result.get("resume"), str
        ):
            raise FixtureBrokerError.client(
                "PROTOCOL_ERROR", "session.hello: the reply has no session or resume token", "session.hello"
            )
        return result

    def _establish(self, reconnecting: bool) -> ClientConnection:
        """Connects and says hello; when ``reconnecting``, resumes the session (or, when it
        is gone for good, begins a fresh one and marks the old leases released)."""
        ws = self._open_socket()
        params: Dict[str, Any] = {"client": self._client_name, "labels": self._labels}
        if self._resume:
            params["resume"] = self._resume
        try:
            try:
                hello = self._hello(ws, params)
            except FixtureBrokerError as err:
                # A resume token given to connect() that does not work is the caller's error.
                if not reconnecting or err.name != "RESUME_UNKNOWN" or "resume" not in params:
                    raise
                # Within the grace period the old connection may just not be gone yet on
                # the broker's side: try again later rather than give the leases up.
                grace = ((self.limits or {}).get("grace_ms") or 0) / 1000.0
                if time.monotonic() - self._dropped_at < grace:
                    raise
                del params["resume"]
                hello = self._hello(ws, params)
        except BaseException:
            ws.close()
            raise
        previous = self.session
        self.session = hello["session"]
        self.resume_token = hello["resume"]
        self._resume = hello["resume"]
        self.broker = hello.get("broker")
        self.limits = hello.get("limits")
        self.hello = hello
        # A resumed session keeps its id, and the broker says "resumed"; a new id, or a hello
        # that did not resume (another broker, behind a load balancer, may hand out the same
        # id), means the old session and its leases are gone.
        if reconnecting and previous is not None and (
                hello["session"] != previous or hello.get("resumed") is False):
            self.sessions_lost += 1
            with self._lock:
                lost = list(self._leases.values())
                for lease in lost:
                    lease.released = True
                    lease.lost = True
                self._leases.clear()
            if self._on_session_lost is not None:
                try:
                    self._on_session_lost({"previous": previous, "session": hello["session"], "leases": lost})
                except Exception:
                    pass  # the callback's own failure must not stop the reconnection
        return ws

    def _run(self, ws: ClientConnection) -> None:
        """The reader thread: reads replies until the connection drops, then reconnects."""
        while True:
            closed = self._read(ws)
            # The close frame the broker sent, if any (ws.close_code is missing before websockets 13).
            rcvd = closed.rcvd if closed is not None else None
            code = rcvd.code if rcvd is not None else None
            reason = (rcvd.reason if rcvd is not None else "") or (f"code {code}" if code else "connection closed")
            if self._silence is not None:
                reason, self._silence = self._silence, None
            with self._lock:
                self._ws = None
                closing = self._state == "closed" or self._closing
                inflight = list(self._inflight.items())
                self._inflight.clear()
                for call_id, call in inflight:
                    if call.method == "lease.acquire":
                        self._abandoned.add(call_id)
                    if closing:
                        call.finish(error=FixtureBrokerError.client(
                            "CLIENT_CLOSED", f"{call.method}: the client is closed", call.method))
                    else:
                        call.finish(error=FixtureBrokerError.client(
                            "CONNECTION_LOST",
                            f"{call.method}: the connection to {self.url} dropped before the reply ({reason})",
                            call.method))
                if code == CLOSE_TAKEN_OVER:
                    # Another connection resumed this session: do not take it back from it.
                    self._resume = None
                if closing:
                    self._changed.notify_all()
                    return
                self._state = "reconnecting"
                self._dropped_at = time.monotonic()
                self._changed.notify_all()
            reconnected = self._reconnect()
            if reconnected is None:
                return
            ws = reconnected

    def _read(self, ws: ClientConnection) -> Optional[ConnectionClosed]:
        """Hands out the replies read on ``ws`` until it closes; returns how it closed. Shuts
        ``ws`` down when it has been silent for ``dead_after``, pinging halfway there."""
        started = time.monotonic()
        probed: Optional[float] = None  # when the last sign of life was, at the last probe
        cut = False
        while True:
            timeout: Optional[float] = None
            dead_after = self.dead_after
            if dead_after and not cut:
                heard = max(getattr(ws, "heard", 0.0), started)
                silent = time.monotonic() - heard
                if silent >= dead_after:
                    self._silence = "nothing from the broker for %d ms (dead_after %g s)" % (
                        silent * 1000, dead_after)
                    cut = True
                    try:
                        # Not close(): its closing handshake would wait for a dead peer.
                        # The reading side ends at once and the connection with it.
                        ws.socket.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                else:
                    if silent >= dead_after / 2 and probed != heard:
                        probed = heard
                        try:
                            ws.ping()
                        except Exception:
                            pass  # closing: recv() says so next
                    timeout = (dead_after if silent >= dead_after / 2 else dead_after / 2) - silent
            try:
                text = ws.recv(timeout=timeout)
            except TimeoutError:
                continue
            except ConnectionClosed as closed:
                return closed
            except Exception:
                ws.close()
                return None
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            for m in msg if isinstance(msg, list) else [msg]:
                self._on_message(ws, m)

    def _on_message(self, ws: ClientConnection, m: Any) -> None:
        if not isinstance(m, dict):
            return
        if isinstance(m.get("method"), str) and "id" not in m:
            return  # a notification (server.exited): nothing waits for it
        with self._lock:
            call = self._inflight.pop(m.get("id"), None)  # type: ignore[arg-type]
            abandoned = call is None and m.get("id") in self._abandoned
            if abandoned:
                self._abandoned.discard(m.get("id"))
        if call is None:
            # A grant whose caller gave up would hold fixtures nobody knows of until the
            # session ends: give it back (the reply to that release is ignored in turn).
            result = m.get("result")
            if abandoned and isinstance(result, dict) and isinstance(result.get("lease"), str):
                try:
                    self._send(ws, "lease.release", {"lease": result["lease"]})
                except Exception:
                    pass
            return
        if "error" in m:
            call.finish(error=FixtureBrokerError.from_rpc(m["error"], call.method))
        elif "result" in m:
            call.finish(result=m["result"])
        else:
            call.finish(error=FixtureBrokerError.client(
                "PROTOCOL_ERROR", f"{call.method}: the reply has neither result nor error", call.method))

    def _reconnect(self) -> Optional[ClientConnection]:
        """Tries again with backoff until a session is back (returns its connection) or the
        client is closed (returns None)."""
        attempt = 0
        while True:
            if self._stop.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)]):
                return None
            attempt += 1
            try:
                ws = self._establish(reconnecting=True)
            except FixtureBrokerError as err:
                # The broker refusing the session (a bad token) will not mend itself: let
                # the waiting calls know rather than make them wait for their timeouts.
                if err.from_broker and err.name != "RESUME_UNKNOWN":
                    with self._lock:
                        self._refused = err
                        self._changed.notify_all()
                continue
            with self._lock:
                if self._state == "closed" or self._closing:
                    ws.close()
                    return None
                self._ws = ws
                self._state = "open"
                self._refused = None
                self.reconnects += 1
                self._changed.notify_all()
            return ws

    # -- calls --------------------------------------------------------------------------

    def _send(self, ws: ClientConnection, method: str, params: Any, call: Optional[_Call] = None) -> int:
        """Sends one request on ``ws``; registers ``call`` under its id first. Returns the id."""
        message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        with self._lock:
            call_id = self._next_id
            self._next_id += 1
            if call is not None:
                self._inflight[call_id] = call
        message["id"] = call_id
        if params is not None:
            message["params"] = params
        text = json.dumps(message, separators=(",", ":"))
        cap = (self.limits or {}).get("max_message_bytes")
        if cap and len(text.encode()) > cap:
            with self._lock:
                self._inflight.pop(call_id, None)
            raise FixtureBrokerError.client(
                "INVALID_ARGUMENT",
                f"{method}: the request is {len(text.encode())} bytes, over the broker's limit of {cap}",
                method,
            )
        with self._send_lock:
            ws.send(text)
        return call_id

    def call(self, method: str, params: Optional[Mapping[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        """Calls any broker method and returns its result, or raises FixtureBrokerError.
        ``timeout`` bounds the wait for the reply, in seconds (default: the client's
        ``call_timeout``), including any wait for a reconnection."""
        limit = timeout if timeout is not None else self._call_timeout
        deadline = time.monotonic() + limit
        call = _Call(method)
        while True:
            with self._lock:
                while self._state == "reconnecting" and self._refused is None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise FixtureBrokerError.client(
                            "TIMEOUT", f"{method}: not connected to {self.url} within {limit} s", method)
                    self._changed.wait(remaining)
                if self._state == "closed" or self._closing:
                    raise FixtureBrokerError.client("CLIENT_CLOSED", f"{method}: the client is closed", method)
                if self._state == "reconnecting" and self._refused is not None:
                    raise self._refused
                ws = self._ws
            assert ws is not None
            try:
                call_id = self._send(ws, method, dict(params) if params is not None else None, call)
                break
            except (ConnectionClosed, OSError):
                # The request never left: wait for the reader to notice and reconnect.
                with self._lock:
                    for k, v in list(self._inflight.items()):
                        if v is call:
                            del self._inflight[k]
                    while self._ws is ws and self._state == "open":
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._changed.wait(remaining)
        if not call.done.wait(max(0.0, deadline - time.monotonic())):
            with self._lock:
                timed_out = self._inflight.pop(call_id, None) is call
                if timed_out and method == "lease.acquire":
                    self._abandoned.add(call_id)
            if timed_out:
                raise FixtureBrokerError.client("TIMEOUT", f"{method}: no reply from {self.url} within {limit} s", method)
            # The reader took the reply just now and is handing it over (or failing the call).
            if not call.done.wait(self._timeout):
                raise FixtureBrokerError.client("TIMEOUT", f"{method}: no reply from {self.url} within {limit} s", method)
        if call.error is not None:
            raise call.error
        return call.result

    def acquire(
        self,
        fixtures: Mapping[str, FixtureSpec],
        wait_ms: Optional[int] = None,
        ttl_ms: Optional[int] = None,
        labels: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> Lease:
        """Leases fixtures, all or none. ``fixtures`` maps the caller's names to fixture
        requests (``{"kind": "port"}``, or just ``"port"``). With ``wait_ms`` the broker queues
        the request that long when a pool is short; the call's timeout grows by as much."""
        params: Dict[str, Any] = {"fixtures": normalize_fixtures(fixtures)}
        if wait_ms is not None:
            params["wait_ms"] = wait_ms
        if ttl_ms is not None:
            params["ttl_ms"] = ttl_ms
        if labels is not None:
            params["labels"] = _string_labels(labels)
        limit = timeout if timeout is not None else self._call_timeout + (wait_ms or 0) / 1000.0
        result = self.call("lease.acquire", params, timeout=limit)
        if not isinstance(result, dict) or not isinstance(result.get("lease"), str) or not isinstance(
            result.get("fixtures"), dict
        ):
            raise FixtureBrokerError.client(
                "PROTOCOL_ERROR", "lease.acquire: the reply has no lease or fixtures", "lease.acquire")
        lease = Lease(self, result)
        with self._lock:
            self._leases[lease.id] = lease
        return lease

    def release(self, lease: Union[Lease, str]) -> bool:
        """Releases a lease (a Lease or its id); returns the broker's ``released``."""
        lease_id = lease if isinstance(lease, str) else lease.id
        r = self.call("lease.release", {"lease": lease_id})
        with self._lock:
            held = self._leases.pop(lease_id, None)
        if held is not None:
            held.released = True
        if isinstance(lease, Lease):
            lease.released = True
        return bool(isinstance(r, dict) and r.get("released") is True)

    def list(self) -> List[Dict[str, Any]]:
        """This session's leases as the broker lists them (``lease.list``)."""
        return cast(List[Dict[str, Any]], self.call("lease.list", {})["leases"])

    def status(self) -> Dict[str, Any]:
        """The broker's counts (``broker.status``)."""
        return cast(Dict[str, Any], self.call("broker.status", {}))

    def logs(self, lease: Union[Lease, str], name: str, tail: Optional[int] = None) -> Dict[str, str]:
        """A server fixture's captured output (``server.logs``): ``{"stdout", "stderr"}``."""
        params: Dict[str, Any] = {"lease": lease if isinstance(lease, str) else lease.id, "fixture": name}
        if tail is not None:
            params["tail"] = tail
        return cast(Dict[str, str], self.call("server.logs", params))

    def ensure_template(
        self,
        hash: str,
        build: Callable[[str], Any],
        wait_ms: int = 300000,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Makes sure the PostgreSQL template with this hash exists. Exactly one caller
        across all clients builds it: for that caller ``build(url)`` runs against the private
        build database, then the template is finished; if ``build`` raises, the build is
        discarded (the next waiter builds) and the exception propagates. Every other caller
        waits (up to ``wait_ms``) until it is ready. Returns ``{"hash", "built"}``."""
        limit = timeout if timeout is not None else self._call_timeout + wait_ms / 1000.0
        r = self.call("pg.template.ensure", {"hash": hash, "wait_ms": wait_ms}, timeout=limit)
        if isinstance(r, dict) and r.get("state") == "ready":
            return {"hash": hash, "built": False}
        if not isinstance(r, dict) or r.get("state") != "build" or not isinstance(r.get("url"), str):
            raise FixtureBrokerError.client(
                "PROTOCOL_ERROR", f"pg.template.ensure: unexpected reply {json.dumps(r)}", "pg.template.ensure")
        try:
            build(r["url"])
        except BaseException:
            try:
                self.discard_template(hash)
            except FixtureBrokerError:
                pass
            raise
        self.finish_template(hash)
        return {"hash": hash, "built": True}

    def finish_template(self, hash: str) -> Dict[str, Any]:
        """Marks the template this session is building ready (``pg.template.finish``)."""
        return cast(Dict[str, Any], self.call("pg.template.finish", {"hash": hash}))

    def discard_template(self, hash: str) -> Dict[str, Any]:
        """Gives up this session's build of the template (``pg.template.discard``); the next
        waiting caller becomes the builder."""
        return cast(Dict[str, Any], self.call("pg.template.discard", {"hash": hash}))

    def close(self, release: bool = True) -> None:
        """Releases this session's leases (unless ``release=False``) and closes the
        connection; calls still waiting fail with CLIENT_CLOSED. Idempotent."""
        with self._lock:
            if self._state == "closed" or self._closing:
                return
            was_open = self._state == "open"
        if release and was_open:
            try:
                for held in self.call("lease.list", {}, timeout=RELEASE_ON_CLOSE)["leases"]:
                    try:
                        self.call("lease.release", {"lease": held["lease"]}, timeout=RELEASE_ON_CLOSE)
                    except FixtureBrokerError:
                        pass
            except FixtureBrokerError:
                pass  # the broker releases them after its grace period anyway
        with self._lock:
            self._closing = True
            self._state = "closed"
            ws = self._ws
            for held_lease in self._leases.values():
                held_lease.released = True
            self._leases.clear()
            self._changed.notify_all()
        self._stop.set()
        if ws is not None:
            ws.close(1000, "client closing")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r}, session={self.session!r}, state={self._state!r})"


def connect(
    url: Optional[str] = None,
    token: Optional[str] = None,
    client: Optional[str] = None,
    labels: Optional[Mapping[str, Any]] = None,
    timeout: float = DEFAULT_TIMEOUT,
    call_timeout: float = DEFAULT_CALL_TIMEOUT,
    resume: Optional[str] = None,
    dead_after: Optional[float] = None,
    on_session_lost: Optional[Callable[[Dict[str, Any]], Any]] = None,
    ssl: Optional[_ssl.SSLContext] = None,
    ca: Optional[str] = None,
    cert: Optional[str] = None,
    key: Optional[str] = None,
) -> Client:
    """Connects to the broker and opens a session (``session.hello``).

    ``url`` defaults to $FIXTURE_BROKER_URL, else ws://127.0.0.1:7357; ``token`` to
    $FIXTURE_BROKER_TOKEN; ``client`` names the client in the broker's logs; ``labels`` are
    the session's labels (``pid`` is added). ``timeout`` bounds the connection and
    ``session.hello``, ``call_timeout`` each later call's wait for its reply (seconds).
    ``resume`` takes over a session by its resume token. ``dead_after`` (seconds) is how long
    the connection may stay silent before the client takes it for dead and reconnects
    (default: the broker's ``dead_after_ms``, else 15; 0: never). ``on_session_lost`` is called
    (on the client's reading thread, with ``{"previous", "session", "leases"}``) when the
    session could not be resumed and a fresh one began.

    For a ``wss://`` URL the broker's certificate is verified: against ``ssl`` (an
    ``ssl.SSLContext`` of your own), or a default context trusting the CAs of the PEM file
    ``ca`` (default $FIXTURE_BROKER_CA, else the system's CAs) that presents the client
    certificate ``cert`` with its key ``key`` (PEM files; default $FIXTURE_BROKER_CERT and
    $FIXTURE_BROKER_KEY) to a broker that asks for one. The token is sent once, in the
    upgrade request's Authorization header; a wrong one is ``UNAUTHENTICATED``.
    """
    c = Client(url, token, client, labels, timeout, call_timeout, resume, dead_after, on_session_lost,
               ssl, ca, cert, key)
    c._open()
    return c

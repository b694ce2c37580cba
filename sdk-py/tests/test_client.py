"""test_client.py: the client against a real broker: leases, errors, context managers, resume."""

import socket
import threading
import time
from typing import List

import pytest

import fixture_broker
from conftest import until
from fixture_broker import FixtureBrokerError




def drop_connection(client: fixture_broker.Client) -> None:
    """Cuts the client's TCP connection under it, as a network failure would."""
    ws = client._ws
    assert ws is not None
    ws.socket.shutdown(socket.SHUT_RDWR)


def test_acquire_leases_distinct_ports_from_the_pool_and_release_gives_them_back(broker):
    with fixture_broker.connect(broker.url, client="test") as client:
        lease = client.acquire({"http": "port", "grpc": {"kind": "port"}, "admin": "port"})
        ports = [lease.fixtures[n]["port"] for n in ("http", "grpc", "admin")]
        assert len(set(ports)) == 3
        assert all(broker.first <= p <= broker.last for p in ports)
        assert lease.fixtures["http"] == {"kind": "port", "host": "127.0.0.1", "port": ports[0]}
        assert lease.id.startswith("l-")
        assert [held["lease"] for held in client.list()] == [lease.id]
        assert lease.release() is True
        assert lease.release() is False
        assert client.release(lease.id) is False
        assert client.list() == []


def test_an_acquire_that_cannot_be_served_in_full_takes_nothing(start):
    b = start("27710-27712")
    with fixture_broker.connect(b.url) as client:
        held = client.acquire({"one": "port"})
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"a": "port", "b": "port", "c": "port"})
        err = caught.value
        assert (err.code, err.name) == (1101, "PORTS_EXHAUSTED")
        assert err.from_broker
        assert err.method == "lease.acquire"
        assert isinstance(err.message, str) and err.message
        assert err.data["name"] == "PORTS_EXHAUSTED"
        assert err.data["requested"] == 3 and err.data["held_by_session"] == 1
        assert err.data["fixture"] in ("a", "b", "c")
        ports = client.status()["ports"]
        assert (ports["size"], ports["leased"]) == (3, 1)
        assert [lease["lease"] for lease in client.list()] == [held.id]


def test_broker_errors_carry_code_name_message_and_data(broker):
    with fixture_broker.connect(broker.url) as client:
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"db": "mongodb"})
        err = caught.value
        assert (err.code, err.name) == (1005, "UNKNOWN_FIXTURE_KIND")
        assert err.data == {"name": "UNKNOWN_FIXTURE_KIND", "fixture": "db", "kind": "mongodb"}
        assert str(err) == err.message
        with pytest.raises(FixtureBrokerError) as caught:
            client.call("lease.renew", {"lease": "l-none"})
        assert (caught.value.code, caught.value.name) == (1003, "LEASE_NOT_FOUND")
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"http": "port"}, ttl_ms=0)
        assert (caught.value.code, caught.value.name) == (-32602, "INVALID_PARAMS")
        assert "detail" in caught.value.data
        with client.acquire({"http": "port"}) as lease:
            with pytest.raises(FixtureBrokerError) as caught:
                lease.reset("http")
            assert (caught.value.code, caught.value.name) == (1009, "FIXTURE_NOT_RESETTABLE")
            with pytest.raises(FixtureBrokerError) as caught:
                lease.logs("http")
            assert caught.value.name == "INVALID_PARAMS"


def test_client_side_errors_use_the_same_class_with_negative_codes(broker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(FixtureBrokerError) as caught:
        fixture_broker.connect(f"ws://127.0.0.1:{closed_port}", timeout=2)
    assert (caught.value.code, caught.value.name) == (-3, "CONNECT_FAILED")
    assert not caught.value.from_broker and caught.value.data is None

    client = fixture_broker.connect(broker.url)
    client.close()
    assert client.closed
    with pytest.raises(FixtureBrokerError) as caught:
        client.status()
    assert (caught.value.code, caught.value.name) == (-7, "CLIENT_CLOSED")
    client.close()  # idempotent


def test_renew_sets_the_ttl_the_broker_reports(broker):
    with fixture_broker.connect(broker.url) as client:
        with client.acquire({"http": "port"}, ttl_ms=60000, labels={"worker": 3}) as lease:
            assert lease.ttl_ms == 60000
            renewed = lease.renew(120000)
            assert renewed["ttl_ms"] == 120000
            assert 60000 < renewed["expires_in_ms"] <= 120000
            [listed] = client.list()
            assert listed["labels"] == {"worker": "3"}


def test_context_managers_release_the_lease_and_the_session(broker):
    with fixture_broker.connect(broker.url) as observer:
        with fixture_broker.connect(broker.url) as client:
            with client.acquire({"http": "port"}) as inner:
                assert client.list() != []
            assert inner.released and client.list() == []
            kept = client.acquire({"http": "port"})
            # Another live session's lease is LEASE_NOT_OWNED: the lease is still there.
            with pytest.raises(FixtureBrokerError) as caught:
                observer.release(kept.id)
            assert caught.value.name == "LEASE_NOT_OWNED"
        assert kept.released
        # Once the client is closed the broker no longer holds the lease at all.
        assert observer.release(kept.id) is False
        status = observer.status()
        assert status["sessions"] == 1


def test_a_dropped_connection_resumes_the_session_with_its_leases(broker):
    with fixture_broker.connect(broker.url) as client:
        lease = client.acquire({"http": "port"})
        session, token = client.session, client.resume_token
        drop_connection(client)
        until(lambda: client.reconnects == 1)
        assert client.session == session and client.connected
        assert client.hello is not None and client.hello["resumed"] is True
        assert client.resume_token != token or client.resume_token
        assert [held["lease"] for held in client.list()] == [lease.id]
        assert client.sessions_lost == 0 and not lease.released
        assert lease.release() is True


def test_a_call_in_flight_when_the_connection_drops_fails_with_connection_lost(start):
    b = start("27713-27714")
    with fixture_broker.connect(b.url) as observer, fixture_broker.connect(b.url) as client:
        held = client.acquire({"a": "port", "b": "port"})
        outcome: List[BaseException] = []

        def waiting_acquire() -> None:
            try:
                client.acquire({"c": "port"}, wait_ms=30000)
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                outcome.append(err)

        t = threading.Thread(target=waiting_acquire, daemon=True)
        t.start()
        until(lambda: observer.status()["waiting"] == 1)
        began = time.monotonic()
        drop_connection(client)
        t.join(10)
        assert not t.is_alive()
        assert time.monotonic() - began < 5, "the call waited for its timeout instead of failing"
        [err] = outcome
        assert isinstance(err, FixtureBrokerError)
        assert (err.code, err.name, err.method) == (-3, "CONNECTION_LOST", "lease.acquire")
        # The client resumes, and the lease it held is still its own.
        assert [lease["lease"] for lease in client.list()] == [held.id]
        assert observer.status()["waiting"] == 0


def test_a_session_past_its_grace_period_is_replaced_and_its_leases_are_gone(start):
    b = start("27715-27716", "--grace-ms", "0")
    with fixture_broker.connect(b.url) as client:
        lease = client.acquire({"http": "port"})
        session = client.session
        drop_connection(client)
        until(lambda: client.reconnects == 1)
        assert client.session != session and client.sessions_lost == 1
        assert lease.released
        assert client.list() == []
        assert client.status()["ports"]["leased"] == 0


def test_a_session_taken_over_with_its_resume_token_is_not_taken_back(broker):
    with fixture_broker.connect(broker.url) as first:
        lease = first.acquire({"http": "port"})
        with fixture_broker.connect(broker.url, resume=first.resume_token) as second:
            assert second.session == first.session
            until(lambda: first.reconnects == 1)
            assert first.session != second.session and lease.released
            assert [held["lease"] for held in second.list()] == [lease.id]
            assert first.list() == []


def test_calls_from_several_threads_share_one_client(broker):
    errors: List[BaseException] = []
    seen: List[int] = []
    lock = threading.Lock()
    with fixture_broker.connect(broker.url) as client:

        def worker() -> None:
            try:
                for _ in range(5):
                    with client.acquire({"a": "port", "b": "port"}) as lease:
                        with lock:
                            seen.extend(f["port"] for f in lease.fixtures.values())
                        client.status()
            except BaseException as err:  # noqa: BLE001 - handed to the test thread
                errors.append(err)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert len(seen) == 80
        assert client.list() == []


def test_status_reports_the_pool_and_the_session(broker):
    with fixture_broker.connect(broker.url, client="status-test", labels={"worker": "1"}) as client:
        status = client.status()
        assert status["ports"]["first"] == broker.first and status["ports"]["last"] == broker.last
        assert status["shutting_down"] is False and status["sessions"] >= 1
        assert client.limits is not None and client.limits["grace_ms"] == 5000
        assert client.broker is not None and "version" in client.broker


def test_a_request_over_the_message_cap_is_refused_before_it_is_sent(start):
    b = start("27717-27717", "--max-message-bytes", "4096")
    with fixture_broker.connect(b.url) as client:
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"http": "port"}, labels={"big": "x" * 5000})
        assert (caught.value.code, caught.value.name) == (-1, "INVALID_ARGUMENT")
        assert client.connected and client.list() == []


def test_a_call_made_while_reconnecting_waits_for_the_session(broker):
    with fixture_broker.connect(broker.url) as client:
        lease = client.acquire({"http": "port"})
        drop_connection(client)
        until(lambda: not client.connected)
        assert [held["lease"] for held in client.list()] == [lease.id]
        assert client.connected and client.reconnects == 1


def test_a_grant_that_comes_after_its_caller_gave_up_is_given_back(start):
    b = start("27718-27718", "--port-quarantine-ms", "0")
    with fixture_broker.connect(b.url) as holder, fixture_broker.connect(b.url) as client:
        held = holder.acquire({"only": "port"})
        with pytest.raises(FixtureBrokerError) as caught:
            client.acquire({"late": "port"}, wait_ms=5000, timeout=0.3)
        assert (caught.value.code, caught.value.name) == (-4, "TIMEOUT")
        assert holder.status()["waiting"] == 1
        held.release()
        # The broker grants the waiting acquire; the client releases what nobody asked for.
        until(lambda: holder.status()["leases"] == 0)
        assert client.list() == []

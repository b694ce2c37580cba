"""test_drain.py: the client against a draining broker (SIGTERM with --drain-timeout-ms).

A client holding a lease keeps working through the drain (renew, one more acquire, release)
and the broker exits 0 once it has released; a client holding nothing is closed with 1001,
waits with backoff while the draining broker refuses it, and once a new broker answers on
the same address (as behind a load balancer) reports its session lost, since no other broker
can resume it.
"""

import re
import signal
import time
import urllib.request
from urllib.parse import urlsplit

import fixture_broker
from conftest import until


def refused_connections(port):
    """fxb_connections_refused_draining_total of the broker on port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return int(re.search(r"^fxb_connections_refused_draining_total (\d+)$", text, re.M).group(1))


def test_a_held_lease_survives_the_drain_and_an_idle_session_is_reported_lost_elsewhere(start):
    # --grace-ms 0: the client, told so in session.hello, takes RESUME_UNKNOWN from the next
    # broker as final at once (no retries within a grace period, each a session there).
    b = start("27760-27763", "--drain-timeout-ms", "60000", "--grace-ms", "0")
    port = urlsplit(b.url).port
    lost = []
    # The idle client connects first, so its session is s-1, the id the next broker gives
    # the first session it opens: the client must tell the lost session by "resumed", not
    # by its id alone.
    with fixture_broker.connect(b.url, on_session_lost=lost.append) as idle, \
            fixture_broker.connect(b.url) as holder:
        lease = holder.acquire({"http": "port"})
        idle_session = idle.session
        b.proc.send_signal(signal.SIGTERM)

        until(lambda: not idle.connected)
        status = holder.status()
        assert status["draining"] is True and status["shutting_down"] is False, status
        assert 0 < status["drain_remaining_ms"] <= 60000, status
        assert holder.connected and holder.sessions_lost == 0
        lease.renew(ttl_ms=60000)
        more = holder.acquire({"more": "port"})
        more.release()
        assert b.proc.poll() is None, "the broker exited while a lease was held"
        # Refused with 503 while the broker drains: the idle client is still waiting, and
        # tries again with backoff (100 ms, 250 ms, ... 2 s): a few attempts in 3 s, where
        # one that spun would make hundreds.
        time.sleep(3)
        assert not idle.connected and idle.sessions_lost == 0
        refused = refused_connections(port)
        assert 1 <= refused <= 8, f"{refused} connections refused in 3 s"

        lease.release()
        assert b.proc.wait(15) == 0
        holder.close()  # so that the idle client opens the next broker's first session
        start("27760-27763", "--listen", f"127.0.0.1:{port}")
        until(lambda: idle.connected and idle.sessions_lost == 1)
        assert len(lost) == 1 and lost[0]["previous"] == idle_session
        assert idle.list() == []

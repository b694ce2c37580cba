"""drain.py: how soon a draining broker exits once its last lease is released.

Each round starts the real broker twice with one lease held by the real Python client:
with --drain-timeout-ms 0 it times SIGTERM to exit (the baseline: today's immediate
shutdown, which releases the lease itself); with --drain-timeout-ms 60000 it sends
SIGTERM, checks the broker still runs 300 ms later, and times the client's last release to
the broker's exit. Prints both medians and their ratio, never asserted. Every broker is
stopped on every path.

Run by `make bench-drain` with FXB_BROKER set and the Python SDK installed.
"""
import os
import signal
import statistics
import subprocess
import sys
import time

import fixture_broker

ROUNDS = 10
BROKER = os.environ["FXB_BROKER"]


def start(*args):
    p = subprocess.Popen([BROKER, "--listen", "127.0.0.1:0", "--ports", "27770-27773",
                          "--port-lock-file", "none", "--log-level", "error", *args],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) != 2 or line[0] != "listening":
        p.kill()
        p.wait()
        sys.exit("drain.py: the broker did not start")
    return p, line[1]


def stopped(p):
    if p.poll() is None:
        p.kill()
    p.wait()
    p.stdout.close()


def main():
    base, drain = [], []
    for _ in range(ROUNDS):
        p, url = start("--drain-timeout-ms", "0")
        try:
            with fixture_broker.connect(url) as c:
                c.acquire({"p": "port"})
                t = time.monotonic()
                p.send_signal(signal.SIGTERM)
                if p.wait(15) != 0:
                    sys.exit("drain.py: the broker did not exit 0")
                base.append(time.monotonic() - t)
        finally:
            stopped(p)
        p, url = start("--drain-timeout-ms", "60000")
        try:
            with fixture_broker.connect(url) as c:
                lease = c.acquire({"p": "port"})
                p.send_signal(signal.SIGTERM)
                time.sleep(0.3)
                if p.poll() is not None:
                    sys.exit("drain.py: the broker exited while a lease was held")
                t = time.monotonic()
                lease.release()
                if p.wait(15) != 0:
                    sys.exit("drain.py: the broker did not exit 0")
                drain.append(time.monotonic() - t)
        finally:
            stopped(p)
    mb, md = statistics.median(base), statistics.median(drain)
    print("drain: %d rounds, medians" % ROUNDS)
    print("  SIGTERM to exit, drain_timeout_ms 0 (baseline)   %8.1f ms" % (mb * 1000))
    print("  last release to exit, draining                   %8.1f ms  (%.2fx)" % (md * 1000, md / mb))


if __name__ == "__main__":
    main()

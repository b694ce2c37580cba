"""linkdown.py: from a worker's link going down to its fixtures being free, against
dead_after_ms + grace_ms.

Makes two network namespaces joined by a veth pair (the broker host and a worker host,
as tests/multihost does), runs the real broker in one with a short heartbeat, and, in
each round, a worker (the real Python client) in the other that leases a port and sits
there; then takes the worker's end of the link down and times how long the broker takes
to give the port back. A watcher inside the broker's namespace reads GET /status every
few milliseconds and reports each change of the lease count with its monotonic clock,
which every namespace shares. Figures are printed, never asserted. Needs root to make
namespaces: without it, it says so and exits 0. Everything it made goes on every path.

Run by `make bench` (bench-linkdown) with FXB_BROKER set and the Python SDK installed.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HEARTBEAT_MS, DEAD_AFTER_MS, GRACE_MS = 500, 1500, 1000
ROUNDS = 3
TAG = "fxbl%d" % (os.getpid() % 100000)
NS_B, NS_W = TAG + "b", TAG + "w"
BSIDE, WSIDE = TAG + "vb", TAG + "vw"
SUBNET = "10.214.1"

WATCHER = r"""
import json, sys, time, urllib.request
url = "http://%s/status" % sys.argv[1]
last = None
while True:
    n = json.loads(urllib.request.urlopen(url, timeout=5).read())["leases"]
    if n != last:
        print("%d %.6f" % (n, time.monotonic()), flush=True)
        last = n
    time.sleep(0.002)
"""

WORKER = r"""
import json, time
import fixture_broker
c = fixture_broker.connect()
lease = c.acquire({"p": {"kind": "port"}})
print(json.dumps(lease.fixtures["p"]), flush=True)
time.sleep(3600)
"""


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def cannot_run():
    if os.geteuid() != 0:
        return "needs root to make network namespaces"
    if not shutil.which("ip"):
        return "needs ip(8) from iproute2 (make deps installs it)"
    return None


def make_net():
    for ns in (NS_B, NS_W):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", BSIDE, "netns", NS_B, "type", "veth", "peer", "name", WSIDE,
       "netns", NS_W)
    for ns, dev, host in ((NS_B, BSIDE, "1"), (NS_W, WSIDE, "2")):
        sh("ip", "-n", ns, "addr", "add", "%s.%s/24" % (SUBNET, host), "dev", dev)
        sh("ip", "-n", ns, "link", "set", dev, "up")


def drop_net():
    for ns in (NS_B, NS_W):  # the veth pair goes with its namespaces
        sh("ip", "netns", "del", ns, check=False)


def stop(p):
    if p and p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def read_change(watcher, want, within_s):
    """The monotonic time at which the watcher saw the lease count become want."""
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        line = watcher.stdout.readline()
        if not line:
            return None
        n, t = line.split()
        if int(n) == want:
            return float(t)
    return None


def one_round(port, watcher):
    env = {**os.environ, "FIXTURE_BROKER_URL": "ws://%s.1:%d" % (SUBNET, port)}
    worker = subprocess.Popen(["ip", "netns", "exec", NS_W, sys.executable, "-c", WORKER],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        json.loads(worker.stdout.readline())
        if read_change(watcher, 1, 10) is None:
            return None
        sh("ip", "-n", NS_W, "link", "set", WSIDE, "down")
        cut = time.monotonic()
        freed = read_change(watcher, 0, 30)
        return None if freed is None else freed - cut
    finally:
        worker.kill()
        worker.wait()
        sh("ip", "-n", NS_W, "link", "set", WSIDE, "up", check=False)


def main():
    print("== worker link down to fixtures free (linkdown.py) ==")
    why = cannot_run()
    if why:
        print("  SKIPPED: " + why)
        return 0
    broker = watcher = None
    state = tempfile.mkdtemp(prefix="fxb-bench-linkdown-")
    try:
        make_net()
        broker = subprocess.Popen(
            ["ip", "netns", "exec", NS_B, os.environ["FXB_BROKER"], "--listen",
             "%s.1:0" % SUBNET, "--drain-timeout-ms", "0", "--log-level", "error", "--port-lock-file", "none",
             "--state-dir", state, "--heartbeat-ms", str(HEARTBEAT_MS), "--dead-after-ms",
             str(DEAD_AFTER_MS), "--grace-ms", str(GRACE_MS)],
            stdout=subprocess.PIPE, text=True)
        line = broker.stdout.readline()
        if not line.startswith("listening ws://"):
            print("  the broker did not start: %r" % line, file=sys.stderr)
            return 1
        port = int(line.strip().rsplit(":", 1)[1])
        watcher = subprocess.Popen(["ip", "netns", "exec", NS_B, sys.executable, "-c", WATCHER,
                                    "%s.1:%d" % (SUBNET, port)], stdout=subprocess.PIPE, text=True)
        if read_change(watcher, 0, 10) is None:
            print("  the watcher never read GET /status", file=sys.stderr)
            return 1
        bound = (DEAD_AFTER_MS + GRACE_MS) / 1000.0
        print("broker: --heartbeat-ms %d --dead-after-ms %d --grace-ms %d, in its own network "
              "namespace; a worker (the Python SDK) in another holds one port; its veth end "
              "goes down" % (HEARTBEAT_MS, DEAD_AFTER_MS, GRACE_MS))
        took = []
        for i in range(ROUNDS):
            t = one_round(port, watcher)
            if t is None:
                print("  round %d: the lease was not freed within 30 s" % (i + 1))
                return 1
            took.append(t)
            print("  round %d: freed %.3f s after the cut (%.2fx dead_after_ms + grace_ms)"
                  % (i + 1, t, t / bound))
        med = statistics.median(took)
        print("link down to fixtures free: median %.3f s over %d rounds; dead_after_ms + "
              "grace_ms = %.3f s; ratio %.2fx (the broker notices within dead_after_ms plus "
              "up to one heartbeat_ms, %.1f s)" % (med, ROUNDS, bound, med / bound,
                                                  HEARTBEAT_MS / 1000.0))
        return 0
    finally:
        stop(watcher)
        stop(broker)
        if broker and broker.returncode not in (0, None):
            print("  the broker exited with %s" % broker.returncode, file=sys.stderr)
        drop_net()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

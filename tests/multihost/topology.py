"""The namespaces the multi-host suites make, and how (see test_multihost.py)."""
import os
import shutil
import subprocess

TAG = "fx%d" % (os.getpid() % 100000)
NS_B, NS_W1, NS_W2 = TAG + "b", TAG + "w1", TAG + "w2"
LINKS = {  # worker namespace: (broker side, worker side, v4 subnet, v6 prefix)
    NS_W1: (TAG + "b1", TAG + "w1", "10.213.1", "fd42:213:1::"),
    NS_W2: (TAG + "b2", TAG + "w2", "10.213.2", "fd42:213:2::"),
}


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def cannot_make_namespaces():
    """Why this suite cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (CI runs as root)"
    if not shutil.which("ip"):
        return "needs ip(8) from iproute2 (make deps installs it)"
    probe = TAG + "probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "cannot make a network namespace: " + r.stderr.strip()
    sh("ip", "netns", "del", probe, check=False)
    return None

"""The network namespaces shared by the multi-host suites (topology.py)."""
import sys

import pytest

from topology import LINKS, NS_B, NS_W1, NS_W2, cannot_make_namespaces, sh


@pytest.fixture(scope="session")
def net():
    why = cannot_make_namespaces()
    if why:
        print("multihost: SKIPPED: " + why, file=sys.stderr)
        pytest.skip(why)
    made = []
    try:
        for ns in (NS_B, NS_W1, NS_W2):
            sh("ip", "netns", "add", ns)
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Tests take links down and up; IPv6 addresses would go with them.
            sh("ip", "netns", "exec", ns, "sh", "-c",
               "echo 1 >/proc/sys/net/ipv6/conf/all/keep_addr_on_down")
        for ns, (bside, wside, v4, v6) in LINKS.items():
            sh("ip", "link", "add", bside, "netns", NS_B, "type", "veth", "peer", "name", wside,
               "netns", ns)
            for where, dev, host in ((NS_B, bside, "1"), (ns, wside, "2")):
                sh("ip", "-n", where, "addr", "add", "%s.%s/24" % (v4, host), "dev", dev)
                sh("ip", "-n", where, "addr", "add", "%s%s/64" % (v6, host), "dev", dev,
                   "nodad")
                sh("ip", "-n", where, "link", "set", dev, "up")
        yield
    finally:
        for ns in made:  # the veth pairs go with their namespaces
            sh("ip", "netns", "del", ns, check=False)

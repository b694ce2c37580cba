"""TLS on the broker's port: wss:// and https://, refusing clear text, mutual TLS.

Certificates are made per run with the openssl command line: a CA, a server certificate
for 127.0.0.1 (and the broker namespace's addresses) signed by it, a second CA that signed
nothing the broker holds, and a client certificate for mutual TLS. Clients are third-party
(the websockets package, what the Python SDK is built on, and urllib) and the four SDKs
from this checkout: libfxb (fxb_tls_worker.c), sdk-js (js_tls_worker.mjs), sdk-py (in a
child process, PY_WORKER below) and sdk-go (its internal/tlsworker), each one leasing a
port over wss:// with the settings of the environment ($FIXTURE_BROKER_CA, _CERT, _KEY).
"""
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys

import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect as ws_connect

from topology import LINKS, NS_B, NS_W1

SAN = "IP:127.0.0.1,IP:10.213.1.1,IP:10.213.2.1,DNS:localhost"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=%s" % name, "-keyout", name + ".key",
            "-out", name + ".pem", cwd=d)


def make_cert(d, name, ca, san=None):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=%s" % name, "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
    ext = d / (name + ".ext")
    ext.write_text("subjectAltName=%s\n" % san if san else "extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem",
            cwd=d)
    os.chmod(d / (name + ".key"), 0o600)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "other-ca")
    make_cert(d, "server", "ca", SAN)
    make_cert(d, "client", "ca")
    make_cert(d, "stranger", "other-ca")
    # Signed by the trusted CA, but for another name than the address clients dial.
    make_cert(d, "elsewhere", "ca", "DNS:elsewhere.test")
    return d


class Broker:
    def __init__(self, tmp_path, pki, *args, netns=None, listen="127.0.0.1:0", cert="server"):
        argv = [os.environ["FXB_BROKER"], "--listen", listen, "--drain-timeout-ms", "0", "--ports", "27800-27809",
                "--port-lock-file", "none", "--state-dir", str(tmp_path / "state"),
                "--tls-cert", str(pki / (cert + ".pem")), "--tls-key", str(pki / (cert + ".key")),
                *args]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening wss://"), "not a wss listener: %r" % line
        self.port = int(line.strip().rsplit(":", 1)[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=15) == 0


@pytest.fixture
def broker(tmp_path, pki):
    started = []

    def start(*args, **kw):
        b = Broker(tmp_path, pki, *args, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def context(pki, ca="ca", cert=None):
    ctx = ssl.create_default_context(cafile=str(pki / (ca + ".pem")))
    if cert:
        ctx.load_cert_chain(str(pki / (cert + ".pem")), str(pki / (cert + ".key")))
    return ctx


def hello(url, ctx):
    with ws_connect(url, ssl=ctx, subprotocols=["fixture-broker.v1"], open_timeout=10) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "session.hello"}))
        return json.loads(ws.recv(timeout=10))


def test_serves_wss_and_https_with_its_certificate(broker, pki):
    b = broker()
    reply = hello("wss://127.0.0.1:%d" % b.port, context(pki))
    assert reply["result"]["session"].startswith("s-")
    import urllib.request
    with urllib.request.urlopen("https://127.0.0.1:%d/healthz" % b.port,
                                context=context(pki), timeout=10) as r:
        assert r.status == 200


def test_a_client_that_trusts_another_ca_refuses_the_broker(broker, pki):
    b = broker()
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        hello("wss://127.0.0.1:%d" % b.port, context(pki, ca="other-ca"))


@pytest.mark.parametrize("request_text", [
    b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: fixture-broker.v1\r\n\r\n",
])
def test_clear_text_is_never_served_on_a_tls_port(broker, pki, request_text):
    b = broker()
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.sendall(request_text)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except ConnectionResetError:
            pass
    assert not got.startswith(b"HTTP/"), "answered in clear text: %r" % got[:200]
    # And it still serves TLS clients afterwards.
    assert "result" in hello("wss://127.0.0.1:%d" % b.port, context(pki))


def test_mutual_tls_requires_a_client_certificate_from_its_ca(broker, pki):
    b = broker("--tls-client-ca", str(pki / "ca.pem"))
    url = "wss://127.0.0.1:%d" % b.port
    assert "result" in hello(url, context(pki, cert="client"))
    # TLS 1.3 checks the client's certificate after the client thinks it is connected:
    # the refusal then shows as the connection closing before any answer.
    for cert in (None, "stranger"):
        with pytest.raises((ssl.SSLError, OSError, WebSocketException)):
            hello(url, context(pki, cert=cert))


def refused(tmp_path, *args):
    r = subprocess.run([os.environ["FXB_BROKER"], "--listen", "127.0.0.1:0", "--state-dir",
                        str(tmp_path / "state"), *args], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0, "the broker started with %s" % (args,)
    return r.stderr


def test_refuses_tls_settings_that_cannot_be_safe(tmp_path, pki):
    cert, ca = str(pki / "server.pem"), str(pki / "ca.pem")
    open_key = tmp_path / "open.key"
    open_key.write_bytes((pki / "server.key").read_bytes())
    os.chmod(open_key, 0o644)
    err = refused(tmp_path, "--tls-cert", cert, "--tls-key", str(open_key))
    assert "tls.key" in err and "open to others" in err and "chmod 600" in err, err
    assert "tls.key" in refused(tmp_path, "--tls-cert", cert)
    assert "tls.cert" in refused(tmp_path, "--tls-key", str(pki / "server.key"))
    assert "tls.client_ca" in refused(tmp_path, "--tls-client-ca", ca)
    assert "tls.cert" in refused(tmp_path, "--tls-cert", str(tmp_path / "missing.pem"),
                                 "--tls-key", str(pki / "server.key"))


# ---- on the wire, between namespaces ----

SNIFFER = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((sys.argv[1], 0))
s.settimeout(0.2)
print("up", flush=True)
got = bytearray()
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    try:
        got += s.recv(65536)
    except socket.timeout:
        pass
sys.stdout.buffer.write(bytes(got))
"""

WORKER = r"""
import json, os, ssl, sys
from websockets.sync.client import connect
url, token = os.environ["URL"], os.environ["TOKEN"]
ctx = None
if url.startswith("wss:"):
    ctx = ssl.create_default_context(cafile=os.environ["CA"])
with connect(url, ssl=ctx, subprotocols=["fixture-broker.v1"], open_timeout=10,
             additional_headers={"Authorization": "Bearer " + token}) as ws:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "session.hello",
                        "params": {"token": token}}))
    print(json.loads(ws.recv(timeout=10))["result"]["session"])
"""


def sniff_while_a_worker_says_hello(b, scheme, pki):
    bside = LINKS[NS_W1][0]
    sniffer = subprocess.Popen(["ip", "netns", "exec", NS_B, sys.executable, "-c", SNIFFER,
                                bside, "4"], stdout=subprocess.PIPE)
    assert sniffer.stdout.readline().strip() == b"up"
    r = subprocess.run(["ip", "netns", "exec", NS_W1, sys.executable, "-c", WORKER],
                       capture_output=True, text=True, timeout=30,
                       env={**os.environ, "URL": "%s://10.213.1.1:%d" % (scheme, b.port),
                            "TOKEN": TOKEN, "CA": str(pki / "ca.pem")})
    assert r.returncode == 0 and r.stdout.startswith("s-"), r.stderr
    return sniffer.communicate(timeout=30)[0]


TOKEN = "wire-secret-7f3a9c1e5b"


def test_no_token_crosses_the_network_in_clear_text(net, tmp_path, pki):
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKEN + "\n")
    # The control: over ws:// the sniffer does see the token, so it would see a leak.
    plain = subprocess.Popen(["ip", "netns", "exec", NS_B, os.environ["FXB_BROKER"],
                              "--listen", "0.0.0.0:0", "--drain-timeout-ms", "0", "--token-file", str(tokens),
                              "--port-lock-file", "none", "--ports", "27810-27819",
                              "--state-dir", str(tmp_path / "plain")],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(plain.stdout.readline().strip().rsplit(":", 1)[1])
        b = type("B", (), {"port": port})
        assert TOKEN.encode() in sniff_while_a_worker_says_hello(b, "ws", pki)
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.wait(timeout=15)
    b = Broker(tmp_path, pki, "--token-file", str(tokens), netns=NS_B, listen="0.0.0.0:0")
    try:
        wire = sniff_while_a_worker_says_hello(b, "wss", pki)
        assert len(wire) > 1000, "the sniffer saw almost nothing: %d bytes" % len(wire)
        assert TOKEN.encode() not in wire, "the token crossed the network in clear text"
    finally:
        b.stop()



# ---- the SDKs over wss:// ----

HERE = os.path.dirname(os.path.abspath(__file__))
SDKS = ["libfxb", "sdk-js", "sdk-py", "sdk-go"]

PY_WORKER = r"""
import json, sys
import fixture_broker
try:
    with fixture_broker.connect(client="py-tls-worker") as c:
        with c.acquire({"p": "port"}) as lease:
            port = lease.fixtures["p"]["port"]
        print(json.dumps({"session": c.session, "port": port}))
except fixture_broker.FixtureBrokerError as e:
    print(json.dumps({"name": e.name, "code": e.code, "error": str(e)}))
    sys.exit(1)
"""


def worker_argv(sdk, *settings):
    """The command of sdk's worker; settings (name, value, ...) go to libfxb's
    fxb_client_new_ex as arguments."""
    bins = os.environ["FXB_MULTIHOST_BIN"]
    if sdk == "libfxb":
        return [os.path.join(bins, "fxb_tls_worker"), *settings]
    assert not settings
    if sdk == "sdk-js":
        node = shutil.which("node")
        if not node:
            pytest.skip("needs node for the sdk-js worker")
        return [node, os.path.join(HERE, "js_tls_worker.mjs")]
    if sdk == "sdk-py":
        return [sys.executable, "-c", PY_WORKER]
    return [os.path.join(bins, "go_tls_worker")]


def run_worker(sdk, url, *settings, netns=None, **env):
    """Runs sdk's worker against url with env (CA, CERT, KEY, TOKEN: the FIXTURE_BROKER_
    variables, None: unset); returns (exit status, what it printed, as JSON)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FIXTURE_BROKER_")}
    e["FIXTURE_BROKER_URL"] = url
    for name, value in env.items():
        if value is not None:
            e["FIXTURE_BROKER_" + name] = str(value)
    argv = worker_argv(sdk, *settings)
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=e)
    lines = r.stdout.strip().splitlines()
    assert lines, "%s printed nothing (exit %d): %s" % (sdk, r.returncode, r.stderr)
    return r.returncode, json.loads(lines[-1])


def leased(sdk, rc, out):
    assert rc == 0, "%s: %s" % (sdk, out)
    assert out["session"].startswith("s-") and 27800 <= out["port"] <= 27809, out


@pytest.mark.parametrize("sdk", SDKS)
def test_each_sdk_leases_over_wss_verifying_the_test_ca(broker, pki, sdk):
    b = broker()
    leased(sdk, *run_worker(sdk, "wss://127.0.0.1:%d" % b.port, CA=pki / "ca.pem"))
    # By name too: the certificate's DNS name, and SNI.
    leased(sdk, *run_worker(sdk, "wss://localhost:%d" % b.port, CA=pki / "ca.pem"))


def test_libfxb_takes_its_tls_settings_as_arguments_too(broker, pki):
    b = broker()
    url = "wss://127.0.0.1:%d" % b.port
    leased("libfxb", *run_worker("libfxb", url, "tls.ca", str(pki / "ca.pem")))
    # A setting given wins over its environment variable.
    rc, out = run_worker("libfxb", url, "tls.ca", str(pki / "other-ca.pem"), CA=pki / "ca.pem")
    assert rc == 1 and "certificate was not accepted" in out["error"], out
    rc, out = run_worker("libfxb", url, "tls.ca", str(pki / "missing.pem"))
    assert out["code"] == -1 and "cannot read the CA file" in out["error"], out  # FXB_EINVAL
    rc, out = run_worker("libfxb", url, "tls.cert", str(pki / "client.pem"))
    assert out["code"] == -1 and "needs its key" in out["error"], out


@pytest.mark.parametrize("sdk", SDKS)
def test_each_sdk_refuses_a_broker_its_ca_did_not_sign(broker, pki, sdk):
    b = broker()
    url = "wss://127.0.0.1:%d" % b.port
    rc, out = run_worker(sdk, url, CA=pki / "other-ca.pem")
    assert rc == 1, "%s trusted a broker another CA signed: %s" % (sdk, out)
    assert "the broker's TLS certificate was not accepted" in out["error"], out
    # Without a CA: the system's trust store, which does not hold the test CA either.
    rc, out = run_worker(sdk, url)
    assert rc == 1 and "certificate was not accepted" in out["error"], out
    assert out["code"] == -3, out  # FXB_ECONNECT, CONNECT_FAILED


@pytest.mark.parametrize("sdk", SDKS)
def test_each_sdk_refuses_a_certificate_for_another_host(broker, pki, sdk):
    b = broker(cert="elsewhere")
    rc, out = run_worker(sdk, "wss://127.0.0.1:%d" % b.port, CA=pki / "ca.pem")
    assert rc == 1, "%s took a certificate for elsewhere.test from 127.0.0.1: %s" % (sdk, out)
    assert "certificate was not accepted" in out["error"], out


@pytest.mark.parametrize("sdk", SDKS)
def test_each_sdk_presents_its_client_certificate_for_mutual_tls(broker, pki, sdk):
    b = broker("--tls-client-ca", str(pki / "ca.pem"))
    url = "wss://127.0.0.1:%d" % b.port
    leased(sdk, *run_worker(sdk, url, CA=pki / "ca.pem", CERT=pki / "client.pem",
                            KEY=pki / "client.key"))
    # The control: without a certificate, or with one the broker's CA did not sign, no lease.
    for cert in (None, "stranger"):
        rc, out = run_worker(sdk, url, CA=pki / "ca.pem",
                             CERT=cert and pki / (cert + ".pem"),
                             KEY=cert and pki / (cert + ".key"))
        assert rc == 1 and out["code"] == -3, "%s got in with %s: %s" % (sdk, cert, out)


# As SNIFFER, but until told to stop (a line on stdin), however slow the worker is, and each
# packet with its length before it (4 bytes, big-endian).
SNIFF_UNTIL_TOLD = r"""
import select, socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((sys.argv[1], 0))
print("up", flush=True)
got = bytearray()
def take(p):
    got.extend(struct.pack(">I", len(p)) + p)
while True:
    ready = select.select([s, sys.stdin], [], [], 60)[0]
    if s in ready:
        take(s.recv(65536))
    elif ready:
        s.setblocking(False)
        try:
            while True:
                take(s.recv(65536))
        except BlockingIOError:
            pass
        break
    else:
        break
sys.stdout.buffer.write(bytes(got))
"""


def sniff_while(netns_run):
    """Captures the broker side of NS_W1's link while netns_run() runs a worker there;
    returns (its result, the packets seen)."""
    bside = LINKS[NS_W1][0]
    sniffer = subprocess.Popen(["ip", "netns", "exec", NS_B, sys.executable, "-c",
                                SNIFF_UNTIL_TOLD, bside], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE)
    assert sniffer.stdout.readline().strip() == b"up"
    try:
        got = netns_run()
    finally:
        raw = sniffer.communicate(b"stop\n", timeout=30)[0]
    packets, i = [], 0
    while i < len(raw):
        n = struct.unpack(">I", raw[i:i + 4])[0]
        packets.append(raw[i + 4:i + 4 + n])
        i += 4 + n
    return got, packets


def client_streams(packets, port):
    """What the clients sent to TCP port (IPv4 over Ethernet), per connection, in order."""
    segments = {}
    for p in packets:
        if len(p) < 34 or p[12:14] != b"\x08\x00" or p[23] != 6:
            continue
        ip = p[14:]
        tcp = ip[(ip[0] & 15) * 4:struct.unpack(">H", ip[2:4])[0]]
        src, dst, seq = struct.unpack(">HHI", tcp[:8])
        data = tcp[(tcp[12] >> 4) * 4:]
        if dst == port and data:
            segments.setdefault(src, {})[seq] = data
    return [b"".join(d for _, d in sorted(segs.items())) for segs in segments.values()]


def unmasked(stream):
    """A client's stream with its WebSocket frames after the upgrade request unmasked
    (RFC 6455 5.3), so that what they carry can be searched."""
    head, sep, rest = stream.partition(b"\r\n\r\n")
    out, i = bytearray(head + sep), 0
    while i + 2 <= len(rest):
        n, i = rest[i + 1] & 127, i + 2
        if n == 126:
            n, i = struct.unpack(">H", rest[i:i + 2])[0], i + 2
        elif n == 127:
            n, i = struct.unpack(">Q", rest[i:i + 8])[0], i + 8
        mask, i = rest[i:i + 4], i + 4
        out += bytes(b ^ mask[k % 4] for k, b in enumerate(rest[i:i + n]))
        i += n
    return bytes(out)


@pytest.mark.parametrize("sdk", SDKS)
def test_each_sdk_sends_its_token_once_and_never_in_clear_over_wss(net, tmp_path, pki, sdk):
    token = "sdk-wire-%s-4e1d8b" % sdk
    tokens = tmp_path / "tokens"
    tokens.write_text(token + "\n")
    # Over ws:// the sniffer sees the token: once per connection, not twice (the upgrade's
    # Authorization header, not session.hello's params too).
    plain = subprocess.Popen(["ip", "netns", "exec", NS_B, os.environ["FXB_BROKER"],
                              "--listen", "0.0.0.0:0", "--drain-timeout-ms", "0", "--token-file", str(tokens),
                              "--port-lock-file", "none", "--ports", "27800-27809",
                              "--state-dir", str(tmp_path / "plain")],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(plain.stdout.readline().strip().rsplit(":", 1)[1])
        (rc, out), packets = sniff_while(lambda: run_worker(
            sdk, "ws://10.213.1.1:%d" % port, netns=NS_W1, TOKEN=token))
        leased(sdk, rc, out)
        streams = client_streams(packets, port)
        assert len(streams) == 1, "%d connections seen" % len(streams)
        sent = unmasked(streams[0])
        assert b"session.hello" in sent, "the unmasking went wrong: %r" % sent[:400]
        assert sent.count(token.encode()) == 1, \
            "%s sent its token %d times in one connection" % (sdk, sent.count(token.encode()))
        # A wrong token is refused with a clear, stable error.
        rc, out = run_worker(sdk, "ws://10.213.1.1:%d" % port, netns=NS_W1, TOKEN="wrong")
        assert rc == 1 and "bearer token" in out["error"], out
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.wait(timeout=15)
    b = Broker(tmp_path, pki, "--token-file", str(tokens), netns=NS_B, listen="0.0.0.0:0")
    try:
        (rc, out), packets = sniff_while(lambda: run_worker(
            sdk, "wss://10.213.1.1:%d" % b.port, netns=NS_W1, TOKEN=token, CA=pki / "ca.pem"))
        leased(sdk, rc, out)
        wire = b"".join(packets)
        assert len(wire) > 1000, "the sniffer saw almost nothing: %d bytes" % len(wire)
        assert token.encode() not in wire, "%s's token crossed the network in clear" % sdk
    finally:
        b.stop()

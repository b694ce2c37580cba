"""TLS on the broker's port: wss:// and https://, refusing clear text, mutual TLS.

Certificates are made per run with the openssl command line: a CA, a server certificate
for 127.0.0.1 (and the broker namespace's addresses) signed by it, a second CA that signed
nothing the broker holds, and a client certificate for mutual TLS. Clients are third-party:
the websockets package (what the Python SDK is built on) and urllib.
"""
import json
import os
import signal
import socket
import ssl
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
    return d


class Broker:
    def __init__(self, tmp_path, pki, *args, netns=None, listen="127.0.0.1:0"):
        argv = [os.environ["FXB_BROKER"], "--listen", listen, "--ports", "27800-27809",
                "--port-lock-file", "none", "--state-dir", str(tmp_path / "state"),
                "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"),
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
                              "--listen", "0.0.0.0:0", "--token-file", str(tokens),
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


"""test_tls.py: connect() over wss:// to a real broker serving TLS with certificates made
here with the openssl command line (a CA, a server certificate for 127.0.0.1 signed by it,
and a second CA that signed nothing)."""

import os
import ssl
import subprocess
from pathlib import Path

import pytest

import fixture_broker
from fixture_broker import FixtureBrokerError


def openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl(d, "req", "-x509", *ec, "-days", "2", "-subj", "/CN=" + ca, "-keyout", ca + ".key",
                "-out", ca + ".pem")
    openssl(d, "req", *ec, "-subj", "/CN=broker", "-keyout", "server.key", "-out", "server.csr")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(d, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "server.ext", "-out", "server.pem")
    os.chmod(d / "server.key", 0o600)
    return d


@pytest.fixture
def wss(start, pki: Path) -> str:
    b = start("27750-27751", "--port-quarantine-ms", "0", "--tls-cert", str(pki / "server.pem"),
              "--tls-key", str(pki / "server.key"))
    assert b.url.startswith("wss://127.0.0.1:"), b.url
    return b.url


def lease_one(c: fixture_broker.Client) -> None:
    with c.acquire({"p": "port"}) as lease:
        assert 27750 <= lease.fixtures["p"]["port"] <= 27751


def test_ca_path_context_and_environment_each_verify_the_broker(wss: str, pki: Path, monkeypatch) -> None:
    with fixture_broker.connect(wss, ca=str(pki / "ca.pem")) as c:
        lease_one(c)
    with fixture_broker.connect(wss, ssl=ssl.create_default_context(cafile=str(pki / "ca.pem"))) as c:
        lease_one(c)
    monkeypatch.setenv("FIXTURE_BROKER_CA", str(pki / "ca.pem"))
    with fixture_broker.connect(wss) as c:
        lease_one(c)


def test_a_broker_another_ca_signed_is_refused_with_a_clear_error(wss: str, pki: Path, monkeypatch) -> None:
    monkeypatch.delenv("FIXTURE_BROKER_CA", raising=False)
    for kw in ({"ca": str(pki / "other-ca.pem")}, {}):
        with pytest.raises(FixtureBrokerError) as e:
            fixture_broker.connect(wss, **kw)
        assert e.value.name == "CONNECT_FAILED" and e.value.code == -3
        assert "the broker's TLS certificate was not accepted" in str(e.value), e.value


def test_bad_tls_arguments_are_invalid(wss: str, pki: Path, monkeypatch) -> None:
    monkeypatch.delenv("FIXTURE_BROKER_CA", raising=False)
    cases = [
        {"ca": str(pki / "missing.pem")},
        {"cert": str(pki / "server.pem")},  # no key
        {"ssl": ssl.create_default_context(), "ca": str(pki / "ca.pem")},
    ]
    for kw in cases:
        with pytest.raises(FixtureBrokerError) as e:
            fixture_broker.connect(wss, **kw)
        assert e.value.name == "INVALID_ARGUMENT", (kw, e.value)
    # So is a file the environment names that cannot be read.
    monkeypatch.setenv("FIXTURE_BROKER_CA", str(pki / "missing.pem"))
    with pytest.raises(FixtureBrokerError) as e:
        fixture_broker.connect(wss, timeout=2)
    assert e.value.name == "INVALID_ARGUMENT"

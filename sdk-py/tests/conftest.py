"""conftest.py: starts real fixture-broker processes for the tests and stops them after.

The binary is $FIXTURE_BROKER_BIN, else ../build/fixture-broker beside sdk-py. Each broker
listens on 127.0.0.1 port 0 with a port range of its own and a private state directory;
its first stdout line names its URL. At teardown it gets SIGTERM and must exit with 0.
"""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, List

import pytest

SDK = Path(__file__).resolve().parent.parent
BINARY = os.environ.get("FIXTURE_BROKER_BIN") or str(SDK.parent / "build" / "fixture-broker")
MAIN_PORTS = "27600-27699"
STOP_TIMEOUT = 15


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Returns check()'s first truthy value, polling; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"still false after {timeout} s: {check}")
        time.sleep(0.02)


class Broker:
    def __init__(self, proc: "subprocess.Popen[str]", url: str, ports: str, log: IO[str]) -> None:
        self.proc = proc
        self.log = log
        self.url = url
        first, last = ports.split("-")
        self.first, self.last = int(first), int(last)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()
            self.log.close()


def start_broker(state_dir: Path, ports: str, *args: str) -> Broker:
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "broker.log", "w")
    proc = subprocess.Popen(
        [BINARY, "--listen", "127.0.0.1:0", "--drain-timeout-ms", "0", "--ports", ports, "--state-dir", str(state_dir), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith(("listening ws://", "listening wss://")):
        proc.kill()
        proc.wait()
        proc.stdout.close()
        log.close()
        text = (state_dir / "broker.log").read_text()
        pytest.fail(f"{BINARY} did not start (stdout {line!r}):\n{text}", pytrace=False)
    return Broker(proc, line.split(" ", 1)[1], ports, log)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """The broker most tests share: ports 27600-27699."""
    b = start_broker(tmp_path_factory.mktemp("broker"), MAIN_PORTS)
    yield b
    assert b.stop() == 0, "the broker did not exit cleanly on SIGTERM"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Starts brokers of the test's own (``start("27710-27711", "--grace-ms", "0")``);
    each is stopped with SIGTERM when the test ends and must exit with 0."""
    started: List[Broker] = []

    def _start(ports: str, *args: str) -> Broker:
        b = start_broker(tmp_path / f"broker-{len(started)}", ports, *args)
        started.append(b)
        return b

    yield _start
    codes = [b.stop() for b in started]
    assert codes == [0] * len(codes), f"brokers exited with {codes} on SIGTERM"

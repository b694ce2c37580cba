"""broker_process.py: finds the fixture-broker binary, starts a private broker for a test run, stops it.

The same steps as sdk-js's lib/broker-process.cjs, which the Jest and Vitest global setups use:
the broker listens on 127.0.0.1 port 0 and prints ``listening ws://127.0.0.1:<port>`` on
stdout once it accepts connections (the readiness signal). Its log (stderr) goes to a file,
never to a pipe this process would have to keep draining. The broker runs under a small sh
watchdog that holds a pipe from this process: if this process dies without stopping it
(killed by a CI timeout, SIGKILL), the pipe closes and the watchdog sends the broker SIGTERM,
so no broker outlives the run that started it. ``stop()`` sends SIGTERM (the broker releases
every lease, stops its PostgreSQL and exits) and kills the process group if it has not
exited after a grace period.
"""

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Mapping, Optional, Sequence

DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_GRACE = 10.0

# $1 is the broker, the rest its flags. SIGTERM/SIGINT/SIGHUP to the watchdog, or the end of
# its stdin, stop the broker; the watchdog exits with the broker's status.
WATCHDOG = "\n".join(
    [
        'b="$1"; shift',
        "exec 3<&0",
        '"$b" "$@" </dev/null 3<&- &',
        "pid=$!",
        "trap 'kill -TERM \"$pid\" 2>/dev/null' TERM INT HUP",
        '( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) &',
        'wait "$pid"; status=$?',
        'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
        'exit "$status"',
    ]
)

_LISTENING = re.compile(r"^listening (wss?://\S+)\s*$", re.M)


class BrokerStartError(RuntimeError):
    """The broker binary is missing, or it did not start listening."""


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_broker_binary(bin: Optional[str] = None) -> str:
    """The broker binary to start: ``bin``, else $FIXTURE_BROKER_BIN, else ``fixture-broker``
    on PATH, else ``build/fixture-broker`` of the checkout this package was installed from
    or runs in. Raises BrokerStartError naming where it looked when none is there."""
    explicit = bin or os.environ.get("FIXTURE_BROKER_BIN")
    if explicit:
        path = Path(explicit).resolve()
        if _executable(path):
            return str(path)
        where = "the bin argument" if bin else "FIXTURE_BROKER_BIN"
        raise BrokerStartError(f"fixture-broker: {path} (from {where}) is not an executable file")
    found = shutil.which("fixture-broker")
    if found:
        return found
    tried = []
    # A checkout of the broker's repository: src/fixture_broker/ -> sdk-py/ -> the checkout
    # (an editable install), or the working directory's checkout (sdk-py/examples/x/ -> ../../..).
    here = Path(__file__).resolve().parent
    candidates = [here.parents[2] / "build" / "fixture-broker"]
    cwd = Path.cwd().resolve()
    candidates += [d / "build" / "fixture-broker" for d in (cwd, *cwd.parents)]
    for candidate in candidates:
        tried.append(str(candidate))
        if _executable(candidate):
            return str(candidate)
    raise BrokerStartError(
        "fixture-broker: no broker binary found; set FIXTURE_BROKER_URL to a running broker or "
        f"FIXTURE_BROKER_BIN to the binary (looked on PATH and at {', '.join(tried[:3])}"
        f"{' and the working directory’s parents' if len(tried) > 3 else ''})"
    )


def _read_tail(path: Optional[str], size: int = 4096) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            n = f.tell()
            f.seek(max(0, n - size))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _drain(stream: IO[bytes]) -> None:
    try:
        while os.read(stream.fileno(), 4096):
            pass
    except (OSError, ValueError):
        pass


class BrokerProcess:
    """A broker this process started: ``url``, ``pid`` (the watchdog's; the broker is its
    child), ``log_file``, ``args``. ``stop()`` returns the broker's exit status."""

    def __init__(self, proc: "subprocess.Popen[bytes]", url: str, log_file: Optional[str], own_log: bool,
                 args: Sequence[str]) -> None:
        self.proc = proc
        self.url = url
        self.pid = proc.pid
        self.log_file = log_file
        self.args = list(args)
        self._own_log = own_log
        self._status: Optional[int] = None
        self.drain: Optional[threading.Thread] = None

    def stop(self, grace: float = DEFAULT_STOP_GRACE) -> int:
        """SIGTERM, then SIGKILL to the process group after ``grace`` seconds. Removes the log
        file this process chose when the broker exited with 0. Idempotent."""
        if self._status is not None:
            return self._status
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        # The end of stdin lets the watchdog's reader exit; then stdout reaches its end.
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        if self.drain is not None:
            self.drain.join(grace)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._status = self.proc.returncode
        if self._own_log and self._status == 0 and self.log_file:
            try:
                os.unlink(self.log_file)
            except OSError:
                pass
        return self._status

    def describe(self) -> str:
        tail = _read_tail(self.log_file).strip()
        return f"{' '.join(self.args)}{f' (log: {self.log_file})' if self.log_file else ''}" + (
            f"\n{tail}" if tail else "")


def start_broker(
    args: Sequence[str] = (),
    bin: Optional[str] = None,
    log_file: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> BrokerProcess:
    """Starts a broker on 127.0.0.1:0 and returns once it listens. It stops at once on SIGTERM
    (``--drain-timeout-ms 0``: a run's own broker has no other broker to hand its workers to).
    ``args`` come after the
    flags in $FIXTURE_BROKER_ARGS; ``log_file`` defaults to $FIXTURE_BROKER_LOG, else a new
    file in the temporary directory (removed when the broker stops cleanly; ``"-"`` writes to
    this process's stderr). Raises BrokerStartError with the log's tail when it does not
    start."""
    binary = find_broker_binary(bin)
    argv = ["--listen", "127.0.0.1:0", "--drain-timeout-ms", "0",
            *shlex.split(os.environ.get("FIXTURE_BROKER_ARGS", "")), *args]
    setting = log_file or os.environ.get("FIXTURE_BROKER_LOG")
    own_log = False
    log_path: Optional[str] = None
    stderr: Optional[IO[bytes]] = None
    if setting != "-":
        if setting:
            log_path = str(Path(setting).resolve())
        else:
            fd, log_path = tempfile.mkstemp(prefix=f"fixture-broker-{os.getpid()}-", suffix=".log")
            os.close(fd)
            own_log = True
        stderr = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", WATCHDOG, "fixture-broker-watchdog", binary, *argv],
            stdin=subprocess.PIPE,  # held open and never written: its end stops the broker
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # its own process group, for the last resort
        )
    finally:
        if stderr is not None:
            stderr.close()
    broker = BrokerProcess(proc, "", log_path, own_log, [binary, *argv])
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + start_timeout
    buffered = ""
    while True:
        m = _LISTENING.search(buffered)
        if m:
            broker.url = m.group(1)
            # Whatever else the broker prints is read and dropped, so that it never blocks on
            # a full pipe.
            broker.drain = threading.Thread(target=_drain, args=(proc.stdout,), name="fixture-broker-stdout",
                                            daemon=True)
            broker.drain.start()
            return broker
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = broker.describe()
            broker.stop()
            raise BrokerStartError(f"fixture-broker did not start listening within {start_timeout:g} s: {text}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            status = proc.wait()
            how = f"was killed by signal {-status}" if status < 0 else f"exited with {status}"
            text = broker.describe()
            broker.stop()
            raise BrokerStartError(f"fixture-broker {how} before it listened: {text}")
        buffered += chunk.decode("utf-8", "replace")

"""errors.py: FixtureBrokerError, the one exception class of the fixture-broker client.

The broker's errors carry a numeric JSON-RPC code and a stable name in ``data.name``
(protocol/README.md); callers branch on those, never on the message. Failures on the
client's side (no connection, no reply in time, a client that is closing) use the same
class with small negative codes, the same numbers as the C and JS SDKs use, so a test can
tell "the broker said no" from "the broker never answered".
"""

from typing import Any, Dict, Optional

#: Client-side error names and their codes (the broker's own are in protocol/openrpc.json).
CLIENT_ERRORS: Dict[str, int] = {
    "INVALID_ARGUMENT": -1,
    "CONNECT_FAILED": -3,
    "CONNECTION_LOST": -3,
    "TIMEOUT": -4,
    "PROTOCOL_ERROR": -6,
    "CLIENT_CLOSED": -7,
    "SESSION_LOST": -9,
}


def format_log_tail(tail: Any) -> str:
    """Renders a server's log tail as the broker sent it (a string, a list of lines or an
    object of streams) as text; '' when there is none."""
    if tail is None:
        return ""
    if isinstance(tail, str):
        return tail.rstrip()
    if isinstance(tail, list):
        return "\n".join(str(line) for line in tail).rstrip()
    if isinstance(tail, dict):
        parts = []
        for stream, text in tail.items():
            body = format_log_tail(text)
            if body:
                parts.append(f"[{stream}]\n{body}")
        return "\n".join(parts)
    return str(tail)


class FixtureBrokerError(Exception):
    """An error from the broker (``from_broker``) or from the client.

    ``code`` is the numeric code, ``name`` the stable symbolic name (``"PORTS_EXHAUSTED"``,
    ``"CONNECTION_LOST"``), ``message`` the text (never branch on it), ``data`` the error's
    ``data`` as the broker sent it (None for client-side errors), ``method`` the method whose
    call failed. ``str(err)`` adds a failed server's log tail when the broker sent one.
    """

    def __init__(
        self,
        code: Optional[int],
        name: str,
        message: str,
        data: Any = None,
        method: Optional[str] = None,
    ) -> None:
        tail = format_log_tail(data.get("log_tail")) if isinstance(data, dict) else ""
        super().__init__(f"{message}\n--- log tail ---\n{tail}" if tail else message)
        self.code = code
        self.name = name
        self.message = message
        self.data = data
        self.method = method

    @property
    def from_broker(self) -> bool:
        """True when the broker sent this error, False when the client raised it."""
        return self.name not in CLIENT_ERRORS

    @classmethod
    def from_rpc(cls, error: Any, method: Optional[str]) -> "FixtureBrokerError":
        """Builds the error for a JSON-RPC error object the broker sent in reply to ``method``."""
        e = error if isinstance(error, dict) else {}
        data = e.get("data")
        name = data.get("name") if isinstance(data, dict) else None
        message = e.get("message")
        code = e.get("code")
        return cls(
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            name if isinstance(name, str) else "UNKNOWN_ERROR",
            message if isinstance(message, str) else f"{method}: broker error",
            data,
            method,
        )

    @classmethod
    def client(cls, name: str, message: str, method: Optional[str] = None) -> "FixtureBrokerError":
        """Builds a client-side error; ``name`` is one of CLIENT_ERRORS' keys."""
        return cls(CLIENT_ERRORS[name], name, message, None, method)

    def __repr__(self) -> str:
        return f"FixtureBrokerError(code={self.code!r}, name={self.name!r}, message={self.message!r})"

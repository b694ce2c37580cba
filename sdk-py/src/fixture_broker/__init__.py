"""fixture_broker: the Python client of Fixture Broker.

Lease isolated TCP ports, server processes and PostgreSQL databases from a running broker
over WebSocket (subprotocol ``fixture-broker.v1``, JSON-RPC 2.0)::

    import fixture_broker

    with fixture_broker.connect() as client:
        with client.acquire({"http": "port"}) as lease:
            port = lease.fixtures["http"]["port"]
"""

from .client import DEFAULT_URL, SUBPROTOCOL, Client, Lease, connect, normalize_fixtures
from .errors import CLIENT_ERRORS, FixtureBrokerError
from .templates import Template, hash_files

__all__ = [
    "CLIENT_ERRORS",
    "DEFAULT_URL",
    "SUBPROTOCOL",
    "Client",
    "FixtureBrokerError",
    "Lease",
    "Template",
    "connect",
    "hash_files",
    "normalize_fixtures",
]
__version__ = "0.1.0"

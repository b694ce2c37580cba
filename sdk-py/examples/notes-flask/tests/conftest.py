"""conftest.py: what the notes tests share: the "notes" template, the app on the test's database.

The fixture-broker plugin (installed with the fixture-broker package) gives every test that
asks for ``postgres`` the URL of its own database, cloned from the template named in
pytest.ini; the template is built once per broker from the SQL files in migrations/.
"""

from typing import Any, Dict, Iterator

import psycopg
import pytest
from flask.testing import FlaskClient
from psycopg.rows import dict_row

from fixture_broker import Template
from notes import create_app


@pytest.fixture(scope="session")
def fixture_broker_templates() -> Dict[str, Template]:
    return {"notes": Template(["migrations/*.sql"])}


@pytest.fixture
def client(postgres: str) -> FlaskClient:
    """A Flask test client of the app on the test's own database."""
    return create_app(postgres).test_client()


@pytest.fixture
def db(postgres: str) -> Iterator[psycopg.Connection]:
    """A connection to the test's own database, in autocommit mode."""
    with psycopg.connect(postgres, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def count(db: psycopg.Connection) -> Any:
    """count("notes"): how many rows the table has in the test's database."""
    return lambda table: db.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]

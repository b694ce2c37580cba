"""The template: every migration applied once, constraints in force; DDL in one test stays there."""

import psycopg
import pytest


def test_tables_from_migrations(db):
    tables = [r["table_name"] for r in db.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")]
    assert tables == ["note_tags", "notes", "tags"]


def test_tag_name_check(db):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO tags (name) VALUES ('Bad Name')")
    db.execute("INSERT INTO tags (name) VALUES ('ok-name')")
    assert db.execute("SELECT count(*) AS n FROM tags").fetchone()["n"] == 3


def test_drop_a_table(db):
    db.execute("DROP TABLE note_tags")
    db.execute("TRUNCATE notes, tags")
    assert db.execute("SELECT count(*) AS n FROM notes").fetchone()["n"] == 0


def test_a_fresh_database_after_ddl(db):
    assert db.execute("SELECT count(*) AS n FROM note_tags").fetchone()["n"] == 1

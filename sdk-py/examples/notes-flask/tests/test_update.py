"""Editing notes: the change is in the database, other notes are untouched."""


def seed_id(db, title):
    return db.execute("SELECT id FROM notes WHERE title = %s", (title,)).fetchone()["id"]


def test_rename_note(client, db):
    note = seed_id(db, "Welcome")
    r = client.patch(f"/notes/{note}", json={"title": "Hello"})
    assert r.status_code == 200 and r.get_json()["title"] == "Hello"
    titles = sorted(row["title"] for row in db.execute("SELECT title FROM notes"))
    assert titles == ["Groceries", "Hello"]


def test_edit_body_keeps_title(client, db):
    note = seed_id(db, "Groceries")
    r = client.patch(f"/notes/{note}", json={"body": "milk, eggs, bread, coffee"})
    assert r.get_json() == {"id": note, "title": "Groceries", "body": "milk, eggs, bread, coffee",
                            "archived": False, "tags": ["home"]}
    assert db.execute("SELECT count(*) AS n FROM notes WHERE updated_at > created_at").fetchone()["n"] == 1


def test_update_missing_or_invalid(client, db):
    assert client.patch("/notes/999999", json={"title": "x"}).status_code == 404
    assert client.patch(f"/notes/{seed_id(db, 'Welcome')}", json={"title": ""}).status_code == 400
    assert db.execute("SELECT count(*) AS n FROM notes WHERE updated_at > created_at").fetchone()["n"] == 0

"""Tagging: tags are made on first use and counted per note."""


def test_tag_counts(client, db):
    welcome = db.execute("SELECT id FROM notes WHERE title = 'Welcome'").fetchone()["id"]
    assert client.put(f"/notes/{welcome}/tags/work").get_json()["tags"] == ["work"]
    assert client.put(f"/notes/{welcome}/tags/urgent").get_json()["tags"] == ["urgent", "work"]
    assert client.get("/tags").get_json() == [
        {"name": "home", "notes": 1}, {"name": "urgent", "notes": 1}, {"name": "work", "notes": 1}]


def test_tagging_twice_is_one_link(client, db):
    groceries = db.execute("SELECT id FROM notes WHERE title = 'Groceries'").fetchone()["id"]
    client.put(f"/notes/{groceries}/tags/home")
    client.put(f"/notes/{groceries}/tags/home")
    assert db.execute("SELECT count(*) AS n FROM note_tags").fetchone()["n"] == 1


def test_untag_and_bad_names(client, db):
    groceries = db.execute("SELECT id FROM notes WHERE title = 'Groceries'").fetchone()["id"]
    assert client.delete(f"/notes/{groceries}/tags/home").get_json()["tags"] == []
    assert client.put(f"/notes/{groceries}/tags/Not%20Valid").status_code == 400
    assert client.get("/tags").get_json() == [{"name": "home", "notes": 0}, {"name": "work", "notes": 0}]

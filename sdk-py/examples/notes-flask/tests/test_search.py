"""Full-text search over title and body (the generated column of 004_search.sql)."""


def test_search_finds_new_note(client):
    client.post("/notes", json={"title": "Quarterly report", "body": "numbers for the board"})
    assert [n["title"] for n in client.get("/search?q=board").get_json()] == ["Quarterly report"]
    assert [n["title"] for n in client.get("/search?q=eggs").get_json()] == ["Groceries"]


def test_search_follows_edits_and_deletes(client, db):
    note = db.execute("SELECT id FROM notes WHERE title = 'Groceries'").fetchone()["id"]
    client.patch(f"/notes/{note}", json={"body": "apples"})
    assert client.get("/search?q=eggs").get_json() == []
    assert [n["id"] for n in client.get("/search?q=apples").get_json()] == [note]
    client.delete(f"/notes/{note}")
    assert client.get("/search?q=apples").get_json() == []


def test_search_needs_a_query(client):
    assert client.get("/search?q=").status_code == 400

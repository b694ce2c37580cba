"""Archiving: archived notes leave the default list and show in ?archived=true."""


def test_archive_moves_note(client, db):
    note = db.execute("SELECT id FROM notes WHERE title = 'Welcome'").fetchone()["id"]
    assert client.post(f"/notes/{note}/archive").get_json()["archived"] is True
    assert [n["title"] for n in client.get("/notes").get_json()] == ["Groceries"]
    assert [n["title"] for n in client.get("/notes?archived=true").get_json()] == ["Welcome"]


def test_archive_all(client, db):
    for n in client.get("/notes").get_json():
        client.post(f"/notes/{n['id']}/archive")
    assert client.get("/notes").get_json() == []
    assert db.execute("SELECT count(*) AS n FROM notes WHERE archived").fetchone()["n"] == 2


def test_nothing_archived_in_a_fresh_database(client):
    assert client.get("/notes?archived=true").get_json() == []

"""Deleting notes: gone from the list, their tags' links gone with them."""


def test_delete_seed_note(client, db, count):
    note = db.execute("SELECT id FROM notes WHERE title = 'Welcome'").fetchone()["id"]
    assert client.delete(f"/notes/{note}").status_code == 204
    assert [n["title"] for n in client.get("/notes").get_json()] == ["Groceries"]
    assert client.delete(f"/notes/{note}").status_code == 404
    assert count("notes") == 1


def test_delete_cascades_to_tag_links(client, db, count):
    note = db.execute("SELECT id FROM notes WHERE title = 'Groceries'").fetchone()["id"]
    assert count("note_tags") == 1
    assert client.delete(f"/notes/{note}").status_code == 204
    assert count("note_tags") == 0
    assert count("tags") == 2  # the tags themselves stay


def test_delete_everything(client, count):
    for n in client.get("/notes").get_json():
        assert client.delete(f"/notes/{n['id']}").status_code == 204
    assert client.get("/notes").get_json() == []
    assert count("notes") == 0

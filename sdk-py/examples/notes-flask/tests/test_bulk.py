"""Bulk writes straight to the database; each test still starts from the seed."""


def test_bulk_insert(db, client):
    with db.cursor() as cur:
        cur.executemany("INSERT INTO notes (title) VALUES (%s)", [(f"bulk {i}",) for i in range(500)])
    assert len(client.get("/notes").get_json()) == 502


def test_bulk_tag(db, client):
    db.execute("INSERT INTO note_tags (note_id, tag_id) SELECT n.id, t.id FROM notes n CROSS JOIN tags t "
               "ON CONFLICT DO NOTHING")
    assert client.get("/tags").get_json() == [{"name": "home", "notes": 2}, {"name": "work", "notes": 2}]


def test_seed_only(db):
    assert db.execute("SELECT count(*) AS n FROM notes").fetchone()["n"] == 2

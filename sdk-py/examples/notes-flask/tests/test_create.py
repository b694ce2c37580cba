"""Creating notes: the list holds the two seed notes and exactly the ones this test made."""


def test_create_note_appears_in_list(client, count):
    r = client.post("/notes", json={"title": "Call the plumber", "body": "before Friday"})
    assert r.status_code == 201
    created = r.get_json()
    assert created["title"] == "Call the plumber" and created["tags"] == [] and created["archived"] is False
    titles = [n["title"] for n in client.get("/notes").get_json()]
    assert titles == ["Welcome", "Groceries", "Call the plumber"]
    assert count("notes") == 3


def test_create_many_notes(client, count):
    for i in range(20):
        assert client.post("/notes", json={"title": f"note {i}"}).status_code == 201
    assert count("notes") == 22
    assert len(client.get("/notes").get_json()) == 22


def test_create_rejects_bad_title(client, count):
    assert client.post("/notes", json={"title": ""}).status_code == 400
    assert client.post("/notes", json={"title": "x" * 201}).status_code == 400
    assert client.post("/notes", data="not json").status_code == 400
    assert count("notes") == 2

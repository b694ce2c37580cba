"""One database for the whole module (reset="module"): each test builds on the one before.

pytest runs a module's tests in file order, and --dist loadfile (pytest.ini) keeps them in
one xdist worker, so they share the database; the next module starts on a fresh clone.
"""

import pytest

pytestmark = pytest.mark.postgres(reset="module")


def test_1_start_a_project(client):
    r = client.post("/notes", json={"title": "Project plan", "body": "milestones"})
    assert r.status_code == 201
    client.put(f"/notes/{r.get_json()['id']}/tags/project")


def test_2_the_plan_is_still_there(client):
    plans = client.get("/search?q=milestones").get_json()
    assert [(n["title"], n["tags"]) for n in plans] == [("Project plan", ["project"])]
    client.patch(f"/notes/{plans[0]['id']}", json={"body": "milestones, done"})


def test_3_finish_the_project(client, count):
    (plan,) = client.get("/search?q=done").get_json()
    assert client.post(f"/notes/{plan['id']}/archive").get_json()["archived"] is True
    assert count("notes") == 3
    assert [n["title"] for n in client.get("/notes").get_json()] == ["Welcome", "Groceries"]

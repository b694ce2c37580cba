"""notes: a small notes API on Flask and PostgreSQL (psycopg 3).

``create_app(database_url)`` builds the app; every request opens its own connection to
``database_url`` (the app keeps no state of its own, so a test's database is all there is).
Routes: GET /health; GET, POST /notes; GET, PATCH, DELETE /notes/<id>; POST /notes/<id>/archive;
PUT, DELETE /notes/<id>/tags/<name>; GET /tags; GET /search?q=...
"""

import os
from typing import Any, Dict, Optional

import psycopg
from flask import Flask, abort, g, jsonify, request
from psycopg.rows import dict_row

NOTE_COLUMNS = "n.id, n.title, n.body, n.archived"
NOTE_TAGS = ("COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM note_tags nt JOIN tags t ON t.id = nt.tag_id "
             "WHERE nt.note_id = n.id), '{}') AS tags")


def create_app(database_url: str) -> Flask:
    app = Flask(__name__)
    app.config["DATABASE_URL"] = database_url

    def db() -> psycopg.Connection:
        if "db" not in g:
            g.db = psycopg.connect(app.config["DATABASE_URL"], row_factory=dict_row)
        return g.db

    @app.teardown_appcontext
    def close_db(exc: Optional[BaseException]) -> None:
        conn = g.pop("db", None)
        if conn is not None:
            if exc is None:
                conn.commit()
            conn.close()

    def get_note(note_id: int) -> Dict[str, Any]:
        row = db().execute(f"SELECT {NOTE_COLUMNS}, {NOTE_TAGS} FROM notes n WHERE n.id = %s", (note_id,)).fetchone()
        if row is None:
            abort(404, description=f"no note {note_id}")
        return row

    def body_json() -> Dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(400, description="expected a JSON object")
        return data

    @app.errorhandler(400)
    @app.errorhandler(404)
    @app.errorhandler(409)
    def error(err: Any) -> Any:
        return jsonify(error=err.description), err.code

    @app.get("/health")
    def health() -> Any:
        db().execute("SELECT 1")
        return jsonify(ok=True, pid=os.getpid())

    @app.get("/notes")
    def list_notes() -> Any:
        archived = request.args.get("archived", "false") == "true"
        rows = db().execute(
            f"SELECT {NOTE_COLUMNS}, {NOTE_TAGS} FROM notes n WHERE n.archived = %s ORDER BY n.id", (archived,)
        ).fetchall()
        return jsonify(rows)

    @app.post("/notes")
    def create_note() -> Any:
        data = body_json()
        title = data.get("title")
        if not isinstance(title, str) or not 1 <= len(title) <= 200:
            abort(400, description="title must be 1 to 200 characters")
        row = db().execute("INSERT INTO notes (title, body) VALUES (%s, %s) RETURNING id",
                           (title, str(data.get("body", "")))).fetchone()
        return jsonify(get_note(row["id"])), 201

    @app.get("/notes/<int:note_id>")
    def read_note(note_id: int) -> Any:
        return jsonify(get_note(note_id))

    @app.patch("/notes/<int:note_id>")
    def update_note(note_id: int) -> Any:
        data = body_json()
        get_note(note_id)
        fields = {k: data[k] for k in ("title", "body") if k in data}
        if "title" in fields and (not isinstance(fields["title"], str) or not 1 <= len(fields["title"]) <= 200):
            abort(400, description="title must be 1 to 200 characters")
        for column, value in fields.items():  # column is one of two fixed names
            db().execute(f"UPDATE notes SET {column} = %s, updated_at = now() WHERE id = %s", (value, note_id))
        return jsonify(get_note(note_id))

    @app.delete("/notes/<int:note_id>")
    def delete_note(note_id: int) -> Any:
        if db().execute("DELETE FROM notes WHERE id = %s", (note_id,)).rowcount == 0:
            abort(404, description=f"no note {note_id}")
        return "", 204

    @app.post("/notes/<int:note_id>/archive")
    def archive_note(note_id: int) -> Any:
        get_note(note_id)
        db().execute("UPDATE notes SET archived = true, updated_at = now() WHERE id = %s", (note_id,))
        return jsonify(get_note(note_id))

    @app.put("/notes/<int:note_id>/tags/<name>")
    def tag_note(note_id: int, name: str) -> Any:
        get_note(note_id)
        try:
            with db().transaction():
                db().execute("INSERT INTO tags (name) VALUES (%s) ON CONFLICT (name) DO NOTHING", (name,))
        except psycopg.errors.CheckViolation:
            abort(400, description="a tag is 1 to 40 of a-z 0-9 -")
        db().execute("INSERT INTO note_tags (note_id, tag_id) SELECT %s, id FROM tags WHERE name = %s "
                     "ON CONFLICT DO NOTHING", (note_id, name))
        return jsonify(get_note(note_id))

    @app.delete("/notes/<int:note_id>/tags/<name>")
    def untag_note(note_id: int, name: str) -> Any:
        get_note(note_id)
        db().execute("DELETE FROM note_tags WHERE note_id = %s AND tag_id = (SELECT id FROM tags WHERE name = %s)",
                     (note_id, name))
        return jsonify(get_note(note_id))

    @app.get("/tags")
    def list_tags() -> Any:
        rows = db().execute(
            "SELECT t.name, count(nt.note_id)::int AS notes FROM tags t LEFT JOIN note_tags nt ON nt.tag_id = t.id "
            "GROUP BY t.name ORDER BY t.name").fetchall()
        return jsonify(rows)

    @app.get("/search")
    def search() -> Any:
        q = request.args.get("q", "").strip()
        if not q:
            abort(400, description="q is required")
        rows = db().execute(
            f"SELECT {NOTE_COLUMNS}, {NOTE_TAGS} FROM notes n WHERE n.search @@ plainto_tsquery('simple', %s) "
            "ORDER BY n.id", (q,)).fetchall()
        return jsonify(rows)

    return app

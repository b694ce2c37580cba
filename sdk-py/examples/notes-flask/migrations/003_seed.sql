-- 003_seed.sql: the notes and tags every fresh database starts with.
INSERT INTO tags (name) VALUES ('work'), ('home');

INSERT INTO notes (title, body) VALUES
    ('Welcome', 'This note comes with every database.'),
    ('Groceries', 'milk, eggs, bread');

INSERT INTO note_tags (note_id, tag_id)
SELECT n.id, t.id FROM notes n JOIN tags t ON t.name = 'home' WHERE n.title = 'Groceries';

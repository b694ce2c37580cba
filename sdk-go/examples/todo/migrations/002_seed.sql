-- Every installation starts with an inbox holding one item.
INSERT INTO lists (name) VALUES ('inbox');
INSERT INTO items (list_id, title) SELECT id, 'try the API' FROM lists WHERE name = 'inbox';

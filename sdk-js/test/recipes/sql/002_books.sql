CREATE TABLE books (id serial PRIMARY KEY, author_id int NOT NULL REFERENCES authors, title text NOT NULL);
INSERT INTO authors (name) VALUES ('Ursula K. Le Guin');
INSERT INTO books (author_id, title) VALUES (1, 'The Dispossessed');

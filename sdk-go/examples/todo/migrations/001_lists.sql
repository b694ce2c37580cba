-- Lists and their items.
CREATE TABLE lists (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE items (
    id      bigserial PRIMARY KEY,
    list_id bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    title   text NOT NULL CHECK (title <> ''),
    done    boolean NOT NULL DEFAULT false
);

CREATE INDEX items_list_id ON items (list_id);

// Package store is the service's data access: lists and their items in PostgreSQL.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound: no list or item with that id.
var ErrNotFound = errors.New("not found")

// ErrConflict: a list with that name exists.
var ErrConflict = errors.New("conflict")

// List is a named list of items.
type List struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Item is one thing to do.
type Item struct {
	ID     int64      `json:"id"`
	ListID int64      `json:"list_id"`
	Title  string     `json:"title"`
	Done   bool       `json:"done"`
	DoneAt *time.Time `json:"done_at,omitempty"`
}

// Store reads and writes lists and items.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// CreateList adds a list; ErrConflict if the name is taken.
func (s *Store) CreateList(ctx context.Context, name string) (List, error) {
	l := List{Name: name}
	err := s.pool.QueryRow(ctx, "INSERT INTO lists (name) VALUES ($1) RETURNING id", name).Scan(&l.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return List{}, ErrConflict
	}
	return l, err
}

// Lists returns every list, oldest first.
func (s *Store) Lists(ctx context.Context) ([]List, error) {
	rows, err := s.pool.Query(ctx, "SELECT id, name FROM lists ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[List])
}

// DeleteList removes a list and its items; ErrNotFound if there is none.
func (s *Store) DeleteList(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, "DELETE FROM lists WHERE id = $1", id)
	if err == nil && tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return err
}

// AddItem adds an item to a list; ErrNotFound if the list does not exist.
func (s *Store) AddItem(ctx context.Context, listID int64, title string) (Item, error) {
	it := Item{ListID: listID, Title: title}
	err := s.pool.QueryRow(ctx, "INSERT INTO items (list_id, title) VALUES ($1, $2) RETURNING id",
		listID, title).Scan(&it.ID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" {
		return Item{}, ErrNotFound
	}
	return it, err
}

// Items returns a list's items in the order they were added; ErrNotFound if the list
// does not exist.
func (s *Store) Items(ctx context.Context, listID int64) ([]Item, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM lists WHERE id = $1)", listID).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		return nil, ErrNotFound
	}
	rows, err := s.pool.Query(ctx,
		"SELECT id, list_id, title, done, done_at FROM items WHERE list_id = $1 ORDER BY id", listID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Item])
}

// Complete marks an item done (once: completing it again keeps the first time).
func (s *Store) Complete(ctx context.Context, id int64) (Item, error) {
	var it Item
	err := s.pool.QueryRow(ctx, `UPDATE items SET done = true, done_at = coalesce(done_at, now())
		WHERE id = $1 RETURNING id, list_id, title, done, done_at`, id).
		Scan(&it.ID, &it.ListID, &it.Title, &it.Done, &it.DoneAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Item{}, ErrNotFound
	}
	return it, err
}

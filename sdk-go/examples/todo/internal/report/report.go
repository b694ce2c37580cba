// Package report summarises the lists: how much is open and done in each.
package report

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Line is one list's counts.
type Line struct {
	List string `json:"list"`
	Open int    `json:"open"`
	Done int    `json:"done"`
}

// Summary returns a line per list, by name, with its open and done items.
func Summary(ctx context.Context, pool *pgxpool.Pool) ([]Line, error) {
	rows, err := pool.Query(ctx, `
		SELECT l.name,
		       count(i.id) FILTER (WHERE NOT i.done)::int,
		       count(i.id) FILTER (WHERE i.done)::int
		FROM lists l LEFT JOIN items i ON i.list_id = l.id
		GROUP BY l.name ORDER BY l.name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Line])
}

// PurgeDone deletes the items that are done and returns how many went.
func PurgeDone(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	tag, err := pool.Exec(ctx, "DELETE FROM items WHERE done")
	return tag.RowsAffected(), err
}

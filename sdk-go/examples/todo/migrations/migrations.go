// Package migrations holds the service's schema as numbered SQL files, and applies them.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5"
)

// FS holds the migration files, NNN_name.sql, applied in order of name.
//
//go:embed *.sql
var FS embed.FS

// Apply runs the migrations the database has not had yet, each in a transaction of its
// own, and records them in schema_migrations. It returns how many it ran.
func Apply(ctx context.Context, conn *pgx.Conn) (int, error) {
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, err
	}
	names, err := fs.Glob(FS, "*.sql")
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	ran := 0
	for _, name := range names {
		var done bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)", name).Scan(&done); err != nil {
			return ran, err
		}
		if done {
			continue
		}
		body, err := FS.ReadFile(name)
		if err != nil {
			return ran, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", name)
			return err
		})
		if err != nil {
			return ran, fmt.Errorf("migration %s: %w", name, err)
		}
		ran++
	}
	return ran, nil
}

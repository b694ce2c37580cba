// Package testdb is what the tests share: the database template and a pool on a leased
// database.
package testdb

import (
	"context"
	"testing"

	"fixturebroker.dev/examples/todo/migrations"
	fb "fixturebroker.dev/fixturebroker"
	"fixturebroker.dev/fixturebroker/fxb"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Template is the database the migrations make, built once for the whole `go test` run
// (across packages, when they share a broker) with the same migrations.Apply the service
// runs at start-up; its key is the hash of the migration files, so changing one builds a
// new template.
var Template = fxb.Func(migrationsKey(), func(ctx context.Context, db fb.TemplateBuild) error {
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = migrations.Apply(ctx, conn)
	return err
})

func migrationsKey() string {
	hash, err := fb.HashFS(migrations.FS, "*.sql")
	if err != nil {
		panic(err)
	}
	return "todo-migrations-" + hash
}

// Pool leases a database cloned from Template for the test and returns a pool on it,
// closed when the test ends (before the lease is released).
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	l := fxb.Acquire(t, fxb.Postgres("db", fxb.Template(Template)))
	return Connect(t, l.URL("db"))
}

// Connect opens a pool on url, closed when the test ends.
func Connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

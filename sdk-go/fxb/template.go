// template.go: PostgreSQL templates for fxb.Postgres, built from SQL files or a Go func.

package fxb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	fb "fixturebroker.dev/fixturebroker"
)

// TemplateDef is a PostgreSQL template: a hash that names it and a build that makes it.
// Declare it once, in a package variable, and name it in every test that needs it.
type TemplateDef struct {
	// Driver is the database/sql driver SQL templates run their files with; "" picks
	// "pgx" (github.com/jackc/pgx/v5/stdlib) or "postgres" (lib/pq), whichever the test
	// binary has registered.
	Driver string

	hash     func() (string, error)
	build    func(ctx context.Context, def *TemplateDef, db fb.TemplateBuild) error
	hashOnce sync.Once
	hashVal  string
	hashErr  error

	mu      sync.Mutex
	ensured map[*fb.Client]*ensureState
}

type ensureState struct {
	done chan struct{}
	err  error
}

// SQL is a template made by running the files of fsys that match patterns (fs.Glob
// syntax), in order of path, each as one multi-statement script, as the template's owner
// role. Its hash is HashFS over those files, so changing a migration makes a new template.
// An embed.FS is the usual fsys: it gives every test package the same files, and so the
// same hash.
//
//	//go:embed migrations/*.sql
//	var migrations embed.FS
//	var schema = fxb.SQL(migrations, "migrations/*.sql")
//
// The files run through database/sql: the test binary must register a PostgreSQL driver
// (import _ "github.com/jackc/pgx/v5/stdlib").
func SQL(fsys fs.FS, patterns ...string) *TemplateDef {
	return &TemplateDef{
		hash: func() (string, error) { return fb.HashFS(fsys, patterns...) },
		build: func(ctx context.Context, def *TemplateDef, db fb.TemplateBuild) error {
			files, err := fb.MatchFS(fsys, patterns...)
			if err != nil {
				return err
			}
			driver, err := def.driver()
			if err != nil {
				return err
			}
			pool, err := sql.Open(driver, db.URL)
			if err != nil {
				return err
			}
			defer pool.Close()
			conn, err := pool.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			for _, name := range files {
				body, err := fs.ReadFile(fsys, name)
				if err != nil {
					return err
				}
				if _, err := conn.ExecContext(ctx, string(body)); err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
			}
			return nil
		},
	}
}

// Func is a template made by build, run against the private build database (connect
// with db.URL) as the role that will own the template's objects. key names the template:
// change it whenever what build makes changes (a version, or fb.HashFS of the files
// build reads).
func Func(key string, build func(ctx context.Context, db fb.TemplateBuild) error) *TemplateDef {
	return &TemplateDef{
		hash: func() (string, error) {
			sum := sha256.Sum256([]byte("fxb.Func\x00" + key))
			return hex.EncodeToString(sum[:]), nil
		},
		build: func(ctx context.Context, _ *TemplateDef, db fb.TemplateBuild) error { return build(ctx, db) },
	}
}

// Hash is the name the broker knows the template by.
func (d *TemplateDef) Hash() (string, error) {
	d.hashOnce.Do(func() { d.hashVal, d.hashErr = d.hash() })
	return d.hashVal, d.hashErr
}

func (d *TemplateDef) driver() (string, error) {
	if d.Driver != "" {
		return d.Driver, nil
	}
	drivers := sql.Drivers()
	for _, name := range []string{"pgx", "postgres"} {
		if slices.Contains(drivers, name) {
			return name, nil
		}
	}
	return "", fmt.Errorf("fxb.SQL: no PostgreSQL driver is registered with database/sql; "+
		"import _ \"github.com/jackc/pgx/v5/stdlib\" in the test package (or set Driver); registered: %v", drivers)
}

// ensure makes sure the template exists on c's broker, once per client: the first caller
// ensures it (building it if the broker says so), the others wait for that. A failure is
// kept, so every test that needs the template fails with the same error.
func (d *TemplateDef) ensure(ctx context.Context, c *fb.Client) (string, error) {
	hash, err := d.Hash()
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	if d.ensured == nil {
		d.ensured = map[*fb.Client]*ensureState{}
	}
	st, found := d.ensured[c]
	if !found {
		st = &ensureState{done: make(chan struct{})}
		d.ensured[c] = st
	}
	d.mu.Unlock()
	if found {
		select {
		case <-st.done:
			return hash, st.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	_, st.err = c.EnsureTemplate(context.WithoutCancel(ctx), hash, 0,
		func(ctx context.Context, db fb.TemplateBuild) error { return d.build(ctx, d, db) })
	close(st.done)
	return hash, st.err
}

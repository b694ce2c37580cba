package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"fixturebroker.dev/examples/todo/internal/testdb"
	"fixturebroker.dev/fixturebroker/fxb"
)

// start runs the service as main does, on the leased port and database, until the test ends.
func start(t *testing.T, l *fxb.Lease) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, l.Addr("http"), l.URL("db"), ready) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("the service did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the service stopped with %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the service did not stop")
		}
	})
}

func lists(t *testing.T, l *fxb.Lease) []map[string]any {
	resp, err := http.Get("http://" + l.Addr("http") + "/lists")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTheServiceMigratesAnEmptyDatabaseAtStartUp(t *testing.T) {
	t.Parallel()
	l := fxb.Acquire(t, fxb.Port("http"), fxb.Postgres("db"))
	start(t, l)
	if got := lists(t, l); len(got) != 1 || got[0]["name"] != "inbox" {
		t.Fatalf("%v", got)
	}
}

func TestTheServiceStartsOnTheTemplateWithNothingToMigrate(t *testing.T) {
	t.Parallel()
	l := fxb.Acquire(t, fxb.Port("http"), fxb.Postgres("db", fxb.Template(testdb.Template)))
	pool := testdb.Connect(t, l.URL("db"))
	if _, err := pool.Exec(t.Context(), "INSERT INTO lists (name) VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	start(t, l)
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d migrations recorded (%v)", n, err)
	}
	if got := lists(t, l); len(got) != 2 || got[1]["name"] != "kept" {
		t.Fatalf("%v", got)
	}
}

func TestWithoutADatabaseURLTheServiceRefusesToStart(t *testing.T) {
	if err := run(context.Background(), "127.0.0.1:0", "", nil); err == nil {
		t.Fatal("it started")
	}
}

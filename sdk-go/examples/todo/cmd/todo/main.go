// Command todo serves the to-do API: it applies the migrations to $DATABASE_URL, then
// listens on $ADDR (default 127.0.0.1:8080) until SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"fixturebroker.dev/examples/todo/internal/api"
	"fixturebroker.dev/examples/todo/migrations"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	if err := run(ctx, addr, os.Getenv("DATABASE_URL"), nil); err != nil {
		log.Fatal(err)
	}
}

// run migrates the database, serves on addr until ctx ends, then shuts down. ready, if
// not nil, is closed once the server listens.
func run(ctx context.Context, addr, dbURL string, ready chan<- struct{}) error {
	if dbURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	n, err := migrations.Apply(ctx, conn)
	conn.Close(context.Background())
	if err != nil {
		return err
	}
	log.Printf("todo: %d migration(s) applied", n)
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api.Handler(pool), ReadHeaderTimeout: 5 * time.Second}
	if ready != nil {
		close(ready)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// Package fxb leases Fixture Broker fixtures from Go tests:
//
//	func TestSignup(t *testing.T) {
//		t.Parallel()
//		l := fxb.Acquire(t, fxb.Postgres("db", fxb.Template(schema)), fxb.Port("http"))
//		pool, _ := pgxpool.New(t.Context(), l.URL("db"))
//		srv := &http.Server{Addr: l.Addr("http"), ...}
//		...
//	}
//
// Acquire leases every fixture it names in one lease, or fails the test; the lease is
// released by t.Cleanup when the test (with its subtests) ends. Each call gets fresh
// fixtures: parallel tests never share a port or a database.
//
// One connection serves the whole test process (tests running in parallel share it),
// dialled on the first Acquire: to $FIXTURE_BROKER_URL when it is set. When it is not,
// the first Acquire starts a private broker for the process (the binary from
// $FIXTURE_BROKER_BIN, else fixture-broker on PATH, else build/fixture-broker of the
// checkout this package is in; extra flags from $FIXTURE_BROKER_ARGS), which stops when
// the process exits. `go test ./...` runs one process per package: to give them one
// broker (one PostgreSQL, each template built once for all of them), run it under
// `fixture-broker run -- go test ./...`, which sets FIXTURE_BROKER_URL.
//
// Templates (SQL and Func) are built once: the first Acquire that names one ensures it
// with pg.template.ensure, and the broker lets exactly one caller build it, across
// processes, while the others wait.
package fxb

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
)

// DefaultWait is how long an Acquire queues when a pool is short, before the test fails
// with the pool's state (PORTS_EXHAUSTED, PG_POOL_EXHAUSTED).
var DefaultWait = 2 * time.Minute

// releaseTimeout bounds the release in a test's cleanup.
const releaseTimeout = 10 * time.Second

// Fixture is one named fixture for Acquire: Port, Postgres or Server.
type Fixture struct {
	name     string
	spec     fb.Spec
	template *TemplateDef
}

// Port asks for a TCP port no one else on the host is handed while the lease is held.
func Port(name string) Fixture { return Fixture{name: name, spec: fb.Port()} }

// PostgresOption shapes a Postgres fixture.
type PostgresOption func(*Fixture)

// Postgres asks for a PostgreSQL database of the test's own, with a login role that opens
// it and nothing else: empty, or cloned from a template (Template, TemplateName).
func Postgres(name string, opts ...PostgresOption) Fixture {
	f := Fixture{name: name, spec: fb.Spec{Kind: "postgres"}}
	for _, o := range opts {
		o(&f)
	}
	return f
}

// Template clones the database from a template this process builds (SQL or Func) once.
func Template(def *TemplateDef) PostgresOption {
	return func(f *Fixture) { f.template = def }
}

// TemplateName clones the database from a template the broker knows by name (one in its
// configuration) or by a hash ensured elsewhere.
func TemplateName(name string) PostgresOption {
	return func(f *Fixture) { f.spec.Template = name }
}

// Schema gives the test a schema of its own in a database shared with other schema
// leases of the template, instead of a database of its own.
func Schema() PostgresOption {
	return func(f *Fixture) { f.spec.Isolation = "schema" }
}

// Connections sets the role's connection limit (the broker's default is 10).
func Connections(n int) PostgresOption {
	return func(f *Fixture) { f.spec.Connections = n }
}

// Server asks for an instance of a server template from the broker's configuration,
// started on leased ports and past its readiness probes.
func Server(name, template string, env map[string]string) Fixture {
	return Fixture{name: name, spec: fb.Server(template, env)}
}

// Lease is a test's lease: the fixtures by name, and the client's Lease methods (Reset,
// Logs, Renew, Release).
type Lease struct {
	*fb.Lease
}

// Addr is the named fixture's "host:port", ready for net.Listen or http.Server.Addr.
func (l *Lease) Addr(name string) string {
	f := l.Fixture(name)
	return fmt.Sprintf("%s:%d", f.Host, f.Port)
}

// URL is the named postgres fixture's connection URL (libpq syntax; pgx takes it as is).
func (l *Lease) URL(name string) string { return l.Fixture(name).URL }

// Acquire leases the fixtures in one lease, or fails the test (t.Fatal) saying why. The
// lease is released when the test ends (t.Cleanup). It is safe to call from parallel
// tests: the process's one client serves them all.
func Acquire(t testing.TB, fixtures ...Fixture) *Lease {
	t.Helper()
	ctx := t.Context()
	c, err := Client(ctx)
	if err != nil {
		t.Fatalf("fxb.Acquire: %v", err)
	}
	if len(fixtures) == 0 {
		t.Fatal("fxb.Acquire: no fixture named")
	}
	specs := make(map[string]fb.Spec, len(fixtures))
	for _, f := range fixtures {
		if _, dup := specs[f.name]; dup {
			t.Fatalf("fxb.Acquire: fixture %q is named twice", f.name)
		}
		spec := f.spec
		if f.template != nil {
			hash, err := f.template.ensure(ctx, c)
			if err != nil {
				t.Fatalf("fxb.Acquire: fixture %q: %v", f.name, err)
			}
			spec.Template = hash
		}
		specs[f.name] = spec
	}
	l, err := c.Acquire(ctx, specs, &fb.AcquireOptions{Wait: DefaultWait,
		Labels: map[string]string{"test": t.Name()}})
	if err != nil {
		t.Fatalf("fxb.Acquire: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already done here: the release gets a context of its own.
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if _, err := l.Release(ctx); err != nil && !fb.IsName(err, fb.ClientClosed) {
			t.Errorf("fxb: releasing lease %s: %v", l.ID, err)
		}
	})
	return &Lease{l}
}

var (
	mu        sync.Mutex
	client    *fb.Client
	broker    *fb.BrokerProcess
	clientErr error
)

// Client returns the process's client, connecting on first use (see the package
// comment). A failure is remembered: every later call returns it.
func Client(ctx context.Context) (*fb.Client, error) {
	mu.Lock()
	defer mu.Unlock()
	if client != nil || clientErr != nil {
		return client, clientErr
	}
	// The first caller's test may end first: the start-up must not end with it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	url := os.Getenv("FIXTURE_BROKER_URL")
	if url == "" {
		b, err := fb.StartBroker(ctx, nil)
		if err != nil {
			clientErr = fmt.Errorf("FIXTURE_BROKER_URL is not set and no broker could be started for this "+
				"process: %w", err)
			return nil, clientErr
		}
		broker, url = b, b.URL
	}
	c, err := fb.Dial(ctx, url, &fb.Options{Client: "fxb:" + os.Args[0]})
	if err != nil {
		clientErr = fmt.Errorf("cannot connect to the broker at %s: %w", url, err)
		return nil, clientErr
	}
	client = c
	return client, nil
}

// Main runs the tests and then Shutdown, and exits with the tests' status:
//
//	func TestMain(m *testing.M) { fxb.Main(m) }
//
// It is optional: without it the process's session ends when the process exits, and a
// broker it started stops then too.
func Main(m *testing.M) {
	code := m.Run()
	if err := Shutdown(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "fxb:", err)
		code = 1
	}
	os.Exit(code)
}

// Shutdown closes the process's client (releasing what it still holds) and stops the
// broker it started, if any. Acquire connects again afterwards.
func Shutdown() error {
	mu.Lock()
	c, b := client, broker
	client, broker, clientErr = nil, nil, nil
	mu.Unlock()
	if c != nil {
		ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		c.Close(ctx)
	}
	if b != nil {
		return b.Stop(30 * time.Second)
	}
	return nil
}

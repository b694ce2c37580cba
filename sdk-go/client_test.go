// client_test.go: the client against a real broker: leases, typed errors, resume, concurrency.

package fixturebroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
	"github.com/jackc/pgx/v5"
)

func TestAcquireLeasesDistinctPortsAndReleaseGivesThemBack(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, &fb.Options{Client: "test"})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port(), "grpc": fb.Port(), "admin": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, name := range []string{"http", "grpc", "admin"} {
		f := l.Fixture(name)
		if f.Kind != "port" || f.Host != "127.0.0.1" || f.Port < 31000 || f.Port > 31099 {
			t.Fatalf("%s: %+v", name, f)
		}
		seen[f.Port] = true
	}
	if len(seen) != 3 || !strings.HasPrefix(l.ID, "l-") {
		t.Fatalf("ports %v, lease %q", seen, l.ID)
	}
	held, err := c.List(ctx)
	if err != nil || len(held) != 1 || held[0].Lease != l.ID || held[0].Fixtures["http"].Port != l.Port("http") {
		t.Fatalf("list: %+v %v", held, err)
	}
	if ok, err := l.Release(ctx); !ok || err != nil || !l.Released() {
		t.Fatalf("release: %v %v", ok, err)
	}
	if ok, err := l.Release(ctx); ok || err != nil {
		t.Fatalf("second release: %v %v", ok, err)
	}
	if ok, err := c.Release(ctx, l.ID); ok || err != nil {
		t.Fatalf("release by id: %v %v", ok, err)
	}
	if held, _ := c.List(ctx); len(held) != 0 {
		t.Fatalf("still held: %+v", held)
	}
}

func TestBadRequestsGetTypedErrorsWithCodeAndName(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)

	_, err := c.Acquire(ctx, map[string]fb.Spec{"x": {Kind: "teapot"}}, nil)
	var fe *fb.Error
	if !errors.As(err, &fe) {
		t.Fatalf("not an *fb.Error: %#v", err)
	}
	if fe.Code != 1005 || fe.Name != "UNKNOWN_FIXTURE_KIND" || fe.Method != "lease.acquire" ||
		!fe.FromBroker() || fe.Message == "" || fe.Data["name"] != "UNKNOWN_FIXTURE_KIND" {
		t.Fatalf("%+v", fe)
	}
	if !errors.Is(err, &fb.Error{Name: "UNKNOWN_FIXTURE_KIND"}) || errors.Is(err, &fb.Error{Name: "PORTS_EXHAUSTED"}) {
		t.Fatal("errors.Is does not match by name")
	}

	_, err = c.Acquire(ctx, map[string]fb.Spec{"bad name!": fb.Port()}, nil)
	if !errors.As(err, &fe) || fe.Code != -32602 || fe.Name != "INVALID_PARAMS" || fe.Data["detail"] == nil {
		t.Fatalf("%#v", err)
	}
	err = c.Call(ctx, "no.such.method", nil, nil)
	if !errors.As(err, &fe) || fe.Code != -32601 || fe.Name != "METHOD_NOT_FOUND" {
		t.Fatalf("%#v", err)
	}
	_, err = c.Renew(ctx, "l-nonsense", 0)
	if !fb.IsName(err, "LEASE_NOT_FOUND") {
		t.Fatalf("%#v", err)
	}
	_, err = c.Reset(ctx, "l-nonsense", "db")
	if !fb.IsName(err, "LEASE_NOT_FOUND") {
		t.Fatalf("%#v", err)
	}
	// None of that cost the session anything.
	if _, err := c.Status(ctx); err != nil || !c.Connected() {
		t.Fatal(err)
	}
}

func TestPortsExhaustedCarriesThePoolsStateAndTakesNothing(t *testing.T) {
	b := start(t, "31110-31112")
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	if _, err := c.Acquire(ctx, map[string]fb.Spec{"one": fb.Port()}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.Acquire(ctx, map[string]fb.Spec{"a": fb.Port(), "b": fb.Port(), "c": fb.Port()}, nil)
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Code != 1101 || fe.Name != "PORTS_EXHAUSTED" {
		t.Fatalf("%#v", err)
	}
	if fe.Data["requested"] != float64(3) || fe.Data["held_by_session"] != float64(1) || fe.Data["size"] != float64(3) {
		t.Fatalf("data %v", fe.Data)
	}
	if !strings.Contains(err.Error(), "PORTS_EXHAUSTED") {
		t.Fatalf("Error() says %q", err.Error())
	}
	if held, _ := c.List(ctx); len(held) != 1 {
		t.Fatalf("held %+v", held)
	}
}

func TestClientSideFailuresUseTheSameTypeWithNegativeCodes(t *testing.T) {
	b := start(t, "31113-31113")
	ctx := ctxT(t)
	holder := dial(t, b.URL, nil)
	c := dial(t, b.URL, nil)
	if _, err := holder.Acquire(ctx, map[string]fb.Spec{"only": fb.Port()}, nil); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := c.Acquire(short, map[string]fb.Spec{"late": fb.Port()}, &fb.AcquireOptions{Wait: 10 * time.Second})
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Code != -4 || fe.Name != "TIMEOUT" || fe.FromBroker() ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%#v", err)
	}
	gone, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if err := c.Call(gone, "broker.status", nil, nil); !fb.IsName(err, "CANCELLED") || !errors.Is(err, context.Canceled) {
		t.Fatalf("%#v", err)
	}

	_, err = fb.Dial(ctx, "ws://127.0.0.1:1", &fb.Options{ConnectTimeout: 2 * time.Second})
	if !errors.As(err, &fe) || fe.Code != -3 || fe.Name != "CONNECT_FAILED" {
		t.Fatalf("%#v", err)
	}

	c.Close(ctx)
	if _, err := c.Status(ctx); !fb.IsName(err, "CLIENT_CLOSED") {
		t.Fatalf("%#v", err)
	}
}

func TestAGrantThatComesAfterItsCallerGaveUpIsGivenBack(t *testing.T) {
	b := start(t, "31114-31114", "--port-quarantine-ms", "0")
	ctx := ctxT(t)
	holder := dial(t, b.URL, nil)
	c := dial(t, b.URL, nil)
	held, err := holder.Acquire(ctx, map[string]fb.Spec{"only": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Acquire(short, map[string]fb.Spec{"late": fb.Port()}, &fb.AcquireOptions{Wait: 5 * time.Second}); !fb.IsName(err, "TIMEOUT") {
		t.Fatalf("%#v", err)
	}
	if s, _ := holder.Status(ctx); s.Waiting != 1 {
		t.Fatalf("waiting %d", s.Waiting)
	}
	held.Release(ctx)
	// The broker grants the waiting acquire; the client gives back what nobody asked for.
	until(t, 5*time.Second, "the late grant is released", func() bool {
		s, _ := holder.Status(ctx)
		return s.Leases == 0
	})
	if l, _ := c.List(ctx); len(l) != 0 {
		t.Fatalf("%+v", l)
	}
}

func TestADroppedConnectionResumesTheSessionWithItsLeases(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	k := &cutter{}
	c := dial(t, b.URL, &fb.Options{HTTPClient: k.client()})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	session := c.Session()
	k.cut(t)
	until(t, 10*time.Second, "reconnected", func() bool { r, _ := c.Reconnects(); return r == 1 })
	if c.Session() != session || !c.Hello().Resumed || !c.Connected() {
		t.Fatalf("session %q (was %q), hello %+v", c.Session(), session, c.Hello())
	}
	held, err := c.List(ctx)
	if err != nil || len(held) != 1 || held[0].Lease != l.ID || l.Released() {
		t.Fatalf("%+v %v", held, err)
	}
	if _, lost := c.Reconnects(); lost != 0 {
		t.Fatal("session lost")
	}
	if ok, err := l.Release(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

func TestACallMadeWhileReconnectingWaitsForTheSession(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	k := &cutter{}
	c := dial(t, b.URL, &fb.Options{HTTPClient: k.client()})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k.cut(t)
	until(t, 5*time.Second, "noticed the drop", func() bool { return !c.Connected() })
	held, err := c.List(ctx)
	if err != nil || len(held) != 1 || held[0].Lease != l.ID {
		t.Fatalf("%+v %v", held, err)
	}
	if r, _ := c.Reconnects(); r != 1 {
		t.Fatalf("reconnects %d", r)
	}
}

func TestACallInFlightWhenTheConnectionDropsFailsWithConnectionLost(t *testing.T) {
	b := start(t, "31115-31116")
	ctx := ctxT(t)
	observer := dial(t, b.URL, nil)
	k := &cutter{}
	c := dial(t, b.URL, &fb.Options{HTTPClient: k.client()})
	held, err := c.Acquire(ctx, map[string]fb.Spec{"a": fb.Port(), "b": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Acquire(ctx, map[string]fb.Spec{"c": fb.Port()}, &fb.AcquireOptions{Wait: 30 * time.Second})
		done <- err
	}()
	until(t, 5*time.Second, "the acquire waits", func() bool { s, _ := observer.Status(ctx); return s.Waiting == 1 })
	k.cut(t)
	select {
	case err := <-done:
		var fe *fb.Error
		if !errors.As(err, &fe) || fe.Code != -3 || fe.Name != "CONNECTION_LOST" || fe.Method != "lease.acquire" {
			t.Fatalf("%#v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call waited instead of failing")
	}
	// The client resumes, and the lease it held is still its own.
	if l, err := c.List(ctx); err != nil || len(l) != 1 || l[0].Lease != held.ID {
		t.Fatalf("%+v %v", l, err)
	}
	until(t, 5*time.Second, "the cancelled acquire is gone", func() bool { s, _ := observer.Status(ctx); return s.Waiting == 0 })
}

func TestASessionPastItsGracePeriodIsReplacedAndItsLeasesAreGone(t *testing.T) {
	b := start(t, "31117-31118", "--grace-ms", "0")
	ctx := ctxT(t)
	k := &cutter{}
	lostCh := make(chan []*fb.Lease, 1)
	c := dial(t, b.URL, &fb.Options{HTTPClient: k.client(), OnSessionLost: func(l []*fb.Lease) { lostCh <- l }})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	session := c.Session()
	k.cut(t)
	select {
	case lost := <-lostCh:
		if len(lost) != 1 || lost[0] != l {
			t.Fatalf("lost %v", lost)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnSessionLost was not called")
	}
	if r, lost := c.Reconnects(); r != 1 || lost != 1 || c.Session() == session || !l.Released() {
		t.Fatalf("reconnects %d, lost %d, session %q", r, lost, c.Session())
	}
	if s, err := c.Status(ctx); err != nil || s.Ports.Leased != 0 {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestASessionTakenOverWithItsResumeTokenIsNotTakenBack(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	first := dial(t, b.URL, nil)
	l, err := first.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := dial(t, b.URL, &fb.Options{Resume: first.Hello().Resume})
	if second.Session() != first.Session() {
		t.Fatal("not resumed")
	}
	until(t, 10*time.Second, "the first client is back", func() bool { r, _ := first.Reconnects(); return r == 1 })
	if first.Session() == second.Session() || !l.Released() {
		t.Fatalf("first %q second %q", first.Session(), second.Session())
	}
	if held, _ := second.List(ctx); len(held) != 1 || held[0].Lease != l.ID {
		t.Fatalf("%+v", held)
	}
	if held, _ := first.List(ctx); len(held) != 0 {
		t.Fatalf("%+v", held)
	}
}

func TestManyGoroutinesShareOneClient(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	var mu sync.Mutex
	inUse := map[int]bool{}
	var grants atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				l, err := c.Acquire(ctx, map[string]fb.Spec{"a": fb.Port(), "b": fb.Port()},
					&fb.AcquireOptions{Wait: 10 * time.Second})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, f := range l.Fixtures() {
					if inUse[f.Port] {
						mu.Unlock()
						errs <- fmt.Errorf("port %d handed out twice", f.Port)
						return
					}
					inUse[f.Port] = true
				}
				mu.Unlock()
				grants.Add(1)
				if _, err := c.Status(ctx); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, f := range l.Fixtures() {
					delete(inUse, f.Port)
				}
				mu.Unlock()
				if _, err := l.Release(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if grants.Load() != 80 {
		t.Fatalf("%d grants", grants.Load())
	}
	if held, _ := c.List(ctx); len(held) != 0 {
		t.Fatalf("%+v", held)
	}
}

func TestARequestOverTheMessageCapIsRefusedBeforeItIsSent(t *testing.T) {
	b := start(t, "31119-31119", "--max-message-bytes", "4096")
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	_, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()},
		&fb.AcquireOptions{Labels: map[string]string{"big": strings.Repeat("x", 5000)}})
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Code != -1 || fe.Name != "INVALID_ARGUMENT" {
		t.Fatalf("%#v", err)
	}
	if held, err := c.List(ctx); err != nil || len(held) != 0 || !c.Connected() {
		t.Fatalf("%+v %v", held, err)
	}
}

func TestRenewSetsTheTTLTheBrokerReports(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	l, err := c.Acquire(ctx, map[string]fb.Spec{"p": fb.Port()}, &fb.AcquireOptions{TTL: time.Minute})
	if err != nil || l.TTL() != time.Minute {
		t.Fatal(l, err)
	}
	r, err := l.Renew(ctx, 2*time.Minute)
	if err != nil || r.TTLMs == nil || *r.TTLMs != 120000 || r.ExpiresInMs == nil || *r.ExpiresInMs > 120000 ||
		*r.ExpiresInMs < 100000 || l.TTL() != 2*time.Minute {
		t.Fatalf("%+v %v", r, err)
	}
	held, _ := c.List(ctx)
	if len(held) != 1 || held[0].TTLMs == nil || *held[0].TTLMs != 120000 {
		t.Fatalf("%+v", held)
	}
}

func TestCloseReleasesTheSessionsLeases(t *testing.T) {
	b := start(t, "31120-31121")
	ctx := ctxT(t)
	observer := dial(t, b.URL, nil)
	c := dial(t, b.URL, nil)
	l, err := c.Acquire(ctx, map[string]fb.Spec{"a": fb.Port(), "b": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := observer.Status(ctx); s.Leases != 1 {
		t.Fatalf("%+v", s)
	}
	if err := c.Close(ctx); err != nil || !l.Released() {
		t.Fatal(err)
	}
	// Released at once, not after the grace period.
	if s, _ := observer.Status(ctx); s.Leases != 0 || s.Ports.Leased != 0 {
		t.Fatalf("%+v", s)
	}
}

func TestPostgresLeasesAreIsolatedAndResetGivesAFreshClone(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	hash := fmt.Sprintf("go-client-test-%d", time.Now().UnixNano())
	var builds atomic.Int32
	build := func(ctx context.Context, db fb.TemplateBuild) error {
		builds.Add(1)
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL); INSERT INTO notes (body) VALUES ('seed')")
		return err
	}
	// Four clients ensure the same template at once: exactly one builds it.
	var wg sync.WaitGroup
	var built atomic.Int32
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other := dial(t, b.URL, nil)
			ok, err := other.EnsureTemplate(ctx, hash, 0, build)
			if err != nil {
				t.Error(err)
			}
			if ok {
				built.Add(1)
			}
		}()
	}
	wg.Wait()
	if builds.Load() != 1 || built.Load() != 1 {
		t.Fatalf("built %d times, %d said so", builds.Load(), built.Load())
	}

	l, err := c.Acquire(ctx, map[string]fb.Spec{"db": fb.Postgres(hash), "db2": fb.Postgres(hash)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	db, db2 := l.Fixture("db"), l.Fixture("db2")
	if db.Kind != "postgres" || db.URL == "" || db.Database == db2.Database || db.User == "" ||
		db.Template != hash || db.Isolation != "database" {
		t.Fatalf("%+v / %+v", db, db2)
	}
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO notes (body) VALUES ('mine')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	count := func(url string) int {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM notes").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count(db.URL) != 2 || count(db2.URL) != 1 {
		t.Fatal("the two databases are not separate")
	}
	fresh, err := l.Reset(ctx, "db")
	if err != nil || fresh.Database == db.Database || l.Fixture("db").URL != fresh.URL {
		t.Fatalf("%+v %v", fresh, err)
	}
	if count(fresh.URL) != 1 {
		t.Fatal("the reset database is not a fresh clone")
	}
	// One lease's role cannot open the other's database.
	other := strings.Replace(db2.URL, "/"+db2.Database+"?", "/"+fresh.Database+"?", 1)
	if conn, err := pgx.Connect(ctx, other); err == nil {
		conn.Close(ctx)
		t.Fatal("a lease's role opened another lease's database")
	}
	if _, err := c.Acquire(ctx, map[string]fb.Spec{"db": fb.Postgres("no-such-template")}, nil); !fb.IsName(err, "PG_TEMPLATE_NOT_FOUND") {
		t.Fatalf("%#v", err)
	}
}

func TestAFailingBuildIsDiscardedAndTheNextCallerBuilds(t *testing.T) {
	b := shared(t)
	ctx := ctxT(t)
	c := dial(t, b.URL, nil)
	hash := fmt.Sprintf("go-failing-build-%d", time.Now().UnixNano())
	boom := errors.New("migration 3 failed")
	built, err := c.EnsureTemplate(ctx, hash, 0, func(context.Context, fb.TemplateBuild) error { return boom })
	if built || !errors.Is(err, boom) {
		t.Fatalf("%v %v", built, err)
	}
	built, err = c.EnsureTemplate(ctx, hash, 0, func(context.Context, fb.TemplateBuild) error { return nil })
	if !built || err != nil {
		t.Fatalf("%v %v", built, err)
	}
	built, err = c.EnsureTemplate(ctx, hash, 0, func(context.Context, fb.TemplateBuild) error { return boom })
	if built || err != nil {
		t.Fatalf("a ready template was built again: %v %v", built, err)
	}
}

func TestServerFixturesLogsAndTheExitedNotification(t *testing.T) {
	dir := t.TempDir()
	config := map[string]any{"servers": map[string]any{
		"blinks": map[string]any{
			"command": []string{"sh", "-c", "echo hello from $FXB_NAME; sleep 0.3; echo bye >&2; exit 3"},
			"ports":   []string{},
			"ready":   []any{map[string]any{"type": "log", "regex": "hello"}},
			"env":     map[string]string{"FXB_NAME": "default"}, "client_env": []string{"FXB_NAME"},
		},
	}}
	text, _ := json.Marshal(config)
	file := filepath.Join(dir, "broker.json")
	if err := os.WriteFile(file, text, 0o644); err != nil {
		t.Fatal(err)
	}
	b := start(t, "31122-31123", "--config", file)
	ctx := ctxT(t)
	notes := make(chan fb.Notification, 4)
	c := dial(t, b.URL, &fb.Options{OnNotification: func(n fb.Notification) { notes <- n }})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"srv": fb.Server("blinks", map[string]string{"FXB_NAME": "go"})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := l.Fixture("srv"); f.Kind != "server" || f.PID <= 0 {
		t.Fatalf("%+v", f)
	}
	logs, err := l.Logs(ctx, "srv", 0)
	if err != nil || !strings.Contains(logs.Stdout, "hello from go") {
		t.Fatalf("%+v %v", logs, err)
	}
	select {
	case n := <-notes:
		var p struct {
			Lease   string `json:"lease"`
			Fixture string `json:"fixture"`
			Status  *int   `json:"status"`
		}
		if n.Method != "server.exited" || json.Unmarshal(n.Params, &p) != nil || p.Lease != l.ID ||
			p.Fixture != "srv" || p.Status == nil || *p.Status != 3 {
			t.Fatalf("%s %s", n.Method, n.Params)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no server.exited notification")
	}
	_, err = c.Acquire(ctx, map[string]fb.Spec{"srv": fb.Server("blinks", map[string]string{"PATH": "/"})}, nil)
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Name != "SERVER_ENV_NOT_ALLOWED" || fe.Data["variable"] != "PATH" {
		t.Fatalf("%#v", err)
	}
	if _, err := c.Acquire(ctx, map[string]fb.Spec{"srv": fb.Server("nope", nil)}, nil); !fb.IsName(err, "SERVER_TEMPLATE_UNKNOWN") {
		t.Fatalf("%#v", err)
	}
}

func TestTheClientAnswersTheBrokersPingsWhileIdle(t *testing.T) {
	b := start(t, "31124-31124", "--heartbeat-ms", "300", "--dead-after-ms", "2000")
	ctx := ctxT(t)
	k := &cutter{}
	c := dial(t, b.URL, &fb.Options{HTTPClient: k.client()})
	time.Sleep(2500 * time.Millisecond) // idle: the broker pings every 300 ms
	if n := k.pongs.Load(); n < 1 {
		t.Fatalf("%d pongs written", n)
	}
	if _, err := c.Status(ctx); err != nil || !c.Connected() {
		t.Fatal(err)
	}
	if r, _ := c.Reconnects(); r != 0 {
		t.Fatalf("reconnected %d times", r)
	}
}

func TestABrokerRestartedUnderTheClientGivesItAFreshSession(t *testing.T) {
	const listen = "127.0.0.1:31129"
	args := []string{"--ports", "31126-31128", "--state-dir", stateDir(t), "--grace-ms", "300"}
	first, err := fb.StartBroker(context.Background(), &fb.BrokerOptions{Args: append([]string{"--listen", listen}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Stop(30 * time.Second) }) // stopped below; this is for a failure before
	ctx := ctxT(t)
	lostCh := make(chan []*fb.Lease, 1)
	c := dial(t, first.URL, &fb.Options{OnSessionLost: func(l []*fb.Lease) { lostCh <- l }})
	l, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	until(t, 5*time.Second, "the client noticed", func() bool { return !c.Connected() })
	second := start(t, "31126-31128", "--listen", listen, "--grace-ms", "300")
	if second.URL != first.URL {
		t.Fatalf("%s, not %s", second.URL, first.URL)
	}
	select {
	case lost := <-lostCh:
		if len(lost) != 1 || lost[0] != l || !l.Released() {
			t.Fatalf("lost %v", lost)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no fresh session on the new broker")
	}
	// The new broker serves the same client.
	l2, err := c.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if held, _ := c.List(ctx); len(held) != 1 || held[0].Lease != l2.ID {
		t.Fatalf("%+v", held)
	}
}

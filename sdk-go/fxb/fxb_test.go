// fxb_test.go: the testing helper against the real broker.
//
// Without $FIXTURE_BROKER_URL (as `make go-test` runs it) the first Acquire starts a
// broker for this process, from $FIXTURE_BROKER_BIN with $FIXTURE_BROKER_ARGS: that path
// is under test too. Some tests run copies of this test binary as child processes, each
// with its own connection, as `go test -p N` runs packages.

package fxb_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	fb "fixturebroker.dev/fixturebroker"
	"fixturebroker.dev/fixturebroker/fxb"
	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
)

var migrations = fstest.MapFS{
	"migrations/001_schema.sql": {Data: []byte(`
CREATE TABLE accounts (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE entries (id serial PRIMARY KEY, account int NOT NULL REFERENCES accounts, amount int NOT NULL);`)},
	"migrations/002_seed.sql": {Data: []byte(`
INSERT INTO accounts (name) VALUES ('alice'), ('bob');
INSERT INTO entries (account, amount) SELECT id, 100 FROM accounts;`)},
	"migrations/README": {Data: []byte("not a migration")},
}

var schema = fxb.SQL(migrations, "migrations/*.sql")

func TestMain(m *testing.M) {
	if os.Getenv("FXB_HELPER") == "own-broker" {
		// Exits without fxb.Shutdown: the broker must stop by itself.
		os.Exit(m.Run())
	}
	code := m.Run()
	// Every test's lease went back in its cleanup: the session holds nothing now.
	if c, err := fxb.Client(context.Background()); err != nil {
		fmt.Println("fxb:", err)
		code = 1
	} else if held, err := c.List(context.Background()); err != nil || len(held) != 0 {
		fmt.Printf("fxb: the process's session still holds %d lease(s) after the tests (%v)\n", len(held), err)
		code = 1
	}
	if err := fxb.Shutdown(); err != nil {
		fmt.Println("fxb: the broker did not stop cleanly:", err)
		code = 1
	}
	os.Exit(code)
}

func client(t *testing.T) *fb.Client {
	c, err := fxb.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func count(t *testing.T, url, query string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func exec1(t *testing.T, url, statement string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), statement); err != nil {
		t.Fatal(err)
	}
}

func TestParallelTestsGetDistinctPortsAndDatabases(t *testing.T) {
	var mu sync.Mutex
	ports := map[int]string{}
	databases := map[string]string{}
	t.Run("group", func(t *testing.T) {
		for i := 0; i < 8; i++ {
			t.Run(fmt.Sprintf("test%d", i), func(t *testing.T) {
				t.Parallel()
				l := fxb.Acquire(t, fxb.Postgres("db", fxb.Template(schema)), fxb.Port("http"))
				mu.Lock()
				if other, taken := ports[l.Port("http")]; taken {
					t.Errorf("port %d also went to %s", l.Port("http"), other)
				}
				if other, taken := databases[l.Fixture("db").Database]; taken {
					t.Errorf("database %s also went to %s", l.Fixture("db").Database, other)
				}
				ports[l.Port("http")] = t.Name()
				databases[l.Fixture("db").Database] = t.Name()
				mu.Unlock()
				// Each test mutates its own copy of the template's rows.
				if n := count(t, l.URL("db"), "SELECT sum(amount) FROM entries"); n != 200 {
					t.Fatalf("the template's rows are not there: %d", n)
				}
				exec1(t, l.URL("db"), "UPDATE entries SET amount = amount - 50; DELETE FROM accounts WHERE name = 'nobody'")
				if n := count(t, l.URL("db"), "SELECT sum(amount) FROM entries"); n != 100 {
					t.Fatalf("another test's writes are here: %d", n)
				}
			})
		}
	})
	if len(ports) != 8 || len(databases) != 8 {
		t.Fatalf("%d ports, %d databases", len(ports), len(databases))
	}
	// Every lease went back in its test's cleanup.
	held, err := client(t).List(t.Context())
	if err != nil || len(held) != 0 {
		t.Fatalf("still held after the tests: %+v %v", held, err)
	}
}

func TestTheCleanupReleasesTheLease(t *testing.T) {
	var id string
	var port int
	t.Run("holder", func(t *testing.T) {
		l := fxb.Acquire(t, fxb.Port("a"), fxb.Port("b"))
		id, port = l.ID, l.Port("a")
		held, err := client(t).List(t.Context())
		if err != nil || len(held) != 1 || held[0].Lease != id || held[0].Labels["test"] != t.Name() {
			t.Fatalf("%+v %v", held, err)
		}
	})
	if id == "" || port == 0 {
		t.Fatal("the subtest leased nothing")
	}
	c := client(t)
	held, err := c.List(t.Context())
	if err != nil || len(held) != 0 {
		t.Fatalf("%+v %v", held, err)
	}
	if released, err := c.Release(t.Context(), id); released || err != nil {
		t.Fatalf("the lease was still there: %v %v", released, err)
	}
}

func TestSQLTemplatesRunTheirFilesInOrderAndHashByContent(t *testing.T) {
	l := fxb.Acquire(t, fxb.Postgres("db", fxb.Template(schema)))
	if n := count(t, l.URL("db"), "SELECT count(*) FROM accounts"); n != 2 {
		t.Fatalf("%d accounts", n)
	}
	h1, err := schema.Hash()
	if err != nil {
		t.Fatal(err)
	}
	changed := fstest.MapFS{}
	for k, v := range migrations {
		changed[k] = v
	}
	changed["migrations/003_more.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE accounts ADD COLUMN email text;")}
	h2, err := fxb.SQL(changed, "migrations/*.sql").Hash()
	if err != nil || h2 == h1 {
		t.Fatalf("a new migration did not change the hash: %s %v", h2, err)
	}
	h3, _ := fb.HashFS(migrations, "migrations/*.sql")
	if h3 != h1 || len(h1) != 64 {
		t.Fatalf("%s %s", h1, h3)
	}
}

func TestAFailingSQLTemplateFailsTheTestWithTheFileAndTheError(t *testing.T) {
	bad := fxb.SQL(fstest.MapFS{
		"m/001.sql": {Data: []byte("CREATE TABLE t (x int);")},
		"m/002.sql": {Data: []byte(fmt.Sprintf("CREATE TABLE t_%d (x nosuchtype);", time.Now().UnixNano()))},
	}, "m/*.sql")
	msg := fatalOf(t, func(tb testing.TB) { fxb.Acquire(tb, fxb.Postgres("db", fxb.Template(bad))) })
	if !strings.Contains(msg, "m/002.sql") || !strings.Contains(msg, "nosuchtype") {
		t.Fatalf("the failure says %q", msg)
	}
}

func TestBadFixturesFailTheTestWithTheBrokersError(t *testing.T) {
	msg := fatalOf(t, func(tb testing.TB) { fxb.Acquire(tb, fxb.Postgres("db", fxb.TemplateName("no-such-template"))) })
	if !strings.Contains(msg, "PG_TEMPLATE_NOT_FOUND") {
		t.Fatalf("the failure says %q", msg)
	}
	msg = fatalOf(t, func(tb testing.TB) { fxb.Acquire(tb, fxb.Port("a"), fxb.Port("a")) })
	if !strings.Contains(msg, `"a" is named twice`) {
		t.Fatalf("the failure says %q", msg)
	}
	msg = fatalOf(t, func(tb testing.TB) { fxb.Acquire(tb, fxb.Port("no spaces")) })
	if !strings.Contains(msg, "INVALID_PARAMS") {
		t.Fatalf("the failure says %q", msg)
	}
}

// recorder is a testing.TB whose Fatal stops the calling goroutine and keeps the message.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

// fatalOf runs f with a recorder and returns its Fatal message; the test fails if f did
// not call Fatal.
func fatalOf(t *testing.T, f func(testing.TB)) string {
	t.Helper()
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	if r.msg == "" {
		t.Fatal("fxb.Acquire did not fail the test")
	}
	return r.msg
}

func TestAFuncTemplateIsBuiltOnceAcrossProcesses(t *testing.T) {
	c := client(t)
	log := filepath.Join(t.TempDir(), "builds")
	key := fmt.Sprintf("across-processes-%d", time.Now().UnixNano())
	outs := make([]string, 3)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = helper(t, "ensure", "FIXTURE_BROKER_URL="+c.URL(), "FXB_BUILD_LOG="+log, "FXB_KEY="+key)
		}()
	}
	wg.Wait()
	for _, out := range outs {
		if !strings.Contains(out, "rows=1") {
			t.Fatalf("a helper did not see the template's rows:\n%s", out)
		}
	}
	text, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), "built\n"); n != 1 {
		t.Fatalf("built %d times by 3 processes", n)
	}
}

func TestABrokerStartedForTheProcessStopsWhenTheProcessExits(t *testing.T) {
	if os.Getenv("FIXTURE_BROKER_BIN") == "" {
		if _, err := fb.FindBroker(""); err != nil {
			t.Skip("no broker binary to start:", err)
		}
	}
	tmp := t.TempDir() // where the broker's log goes
	out := helper(t, "own-broker", "FIXTURE_BROKER_URL=", "FIXTURE_BROKER_LOG=", "TMPDIR="+tmp)
	var url string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "url="); ok {
			url = u
		}
	}
	if url == "" {
		t.Fatalf("the helper printed no URL:\n%s", out)
	}
	// The helper has exited without stopping anything: its broker must go by itself.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		conn, _, err := websocket.Dial(ctx, url, nil)
		cancel()
		if err != nil {
			break
		}
		conn.CloseNow()
		if time.Now().After(deadline) {
			t.Fatalf("the broker at %s outlived the process that started it", url)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It exited cleanly: its log went with it.
	until := time.Now().Add(5 * time.Second)
	for {
		left, _ := filepath.Glob(filepath.Join(tmp, "fixture-broker-*.log"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("the broker's log was left behind: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// helper runs this test binary as a child process, running TestHelperProcess with the
// job in $FXB_HELPER; returns its output.
func helper(t *testing.T, job string, env ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(append(os.Environ(), "FXB_HELPER="+job), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper %s: %v\n%s", job, err, out)
	}
	return string(out)
}

// TestHelperProcess is a child process's test: it uses fxb as a test package of its own
// would. It does nothing unless helper started it.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("FXB_HELPER") {
	case "":
		t.Skip("run by other tests as a child process")
	case "ensure":
		def := fxb.Func(os.Getenv("FXB_KEY"), func(ctx context.Context, db fb.TemplateBuild) error {
			time.Sleep(300 * time.Millisecond) // the other processes are waiting meanwhile
			conn, err := pgx.Connect(ctx, db.URL)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "CREATE TABLE marks (x int); INSERT INTO marks VALUES (1)"); err != nil {
				return err
			}
			f, err := os.OpenFile(os.Getenv("FXB_BUILD_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.WriteString("built\n")
			return err
		})
		l := fxb.Acquire(t, fxb.Postgres("db", fxb.Template(def)))
		fmt.Printf("rows=%d\n", count(t, l.URL("db"), "SELECT count(*) FROM marks"))
	case "own-broker":
		fmt.Printf("url=%s\n", client(t).URL())
	}
}

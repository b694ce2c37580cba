// The broker's IntegreSQL-compatible API driven by the real integresql-client-go v1.0.0,
// against the real broker binary ($FXB_BROKER) and its embedded PostgreSQL.
package integresql_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	integresql "github.com/allaboutapps/integresql-client-go"
	"github.com/allaboutapps/integresql-client-go/pkg/models"
	_ "github.com/lib/pq"
)

type broker struct {
	base string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	log  *strings.Builder
	mu   *sync.Mutex
}

// startBroker runs the broker with the IntegreSQL API and the given "integresql" settings
// (and a token file when token is not empty); it is stopped, and must exit 0, at cleanup.
func startBroker(t *testing.T, settings map[string]any, token string) *broker {
	t.Helper()
	bin, state := os.Getenv("FXB_BROKER"), os.Getenv("FXB_ISQL_STATE")
	if bin == "" || state == "" {
		t.Fatal("FXB_BROKER and FXB_ISQL_STATE must be set (make integresql-test)")
	}
	ports := os.Getenv("FXB_ISQL_PORTS")
	if ports == "" {
		ports = "28900-28999"
	}
	dir := t.TempDir()
	if settings == nil {
		settings = map[string]any{}
	}
	settings["enabled"] = true
	conf, _ := json.Marshal(map[string]any{"integresql": settings})
	if err := os.WriteFile(filepath.Join(dir, "broker.json"), conf, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", filepath.Join(dir, "broker.json"), "--listen", "127.0.0.1:0",
		"--drain-timeout-ms", "0", "--state-dir", state, "--ports", ports}
	if token != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--token-file", filepath.Join(dir, "tokens"))
	}
	cmd := exec.Command(bin, args...)
	b := &broker{cmd: cmd, log: &strings.Builder{}, mu: &sync.Mutex{}}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			b.mu.Lock()
			b.log.WriteString(s.Text() + "\n")
			b.mu.Unlock()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	m := regexp.MustCompile(`listening ws://(127\.0\.0\.1:\d+)`).FindStringSubmatch(line)
	if err != nil || m == nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the broker did not start: %q %v", line, err)
	}
	b.base = "http://" + m[1]
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("the broker did not exit cleanly: %v\n%s", err, b.logText())
		}
		// Its embedded PostgreSQL stopped with it.
		pids, _ := filepath.Glob(filepath.Join(state, "pg", "*", "data", "postmaster.pid"))
		if len(pids) > 0 {
			t.Errorf("the broker exited leaving PostgreSQL running: %v", pids)
		}
	})
	return b
}

func (b *broker) logText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.log.String()
}

func (b *broker) client(t *testing.T) *integresql.Client {
	c, err := integresql.NewClient(integresql.ClientConfig{BaseURL: b.base + "/api", APIVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leases is the number of leases the broker holds (GET /status).
func (b *broker) leases(t *testing.T) int {
	resp, err := http.Get(b.base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Leases int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Leases
}

func migrate(db *sql.DB) error {
	_, err := db.Exec(`CREATE TABLE pilots (id serial PRIMARY KEY, name text NOT NULL);
		INSERT INTO pilots (name) VALUES ('Amelia'), ('Bessie')`)
	return err
}

func count(t *testing.T, cfg models.DatabaseConfig) int {
	t.Helper()
	db, err := sql.Open("postgres", cfg.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM pilots").Scan(&n); err != nil {
		t.Fatalf("querying %s: %v", cfg.Database, err)
	}
	return n
}

// gone reports whether nobody can log in to cfg's database any more.
func gone(cfg models.DatabaseConfig) bool {
	db, err := sql.Open("postgres", cfg.ConnectionString())
	if err != nil {
		return true
	}
	defer db.Close()
	return db.Ping() != nil
}

func eventually(t *testing.T, what string, within time.Duration, f func() bool) {
	t.Helper()
	for end := time.Now().Add(within); !f(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not true after %v", what, within)
		}
	}
}

func do(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Message
}

func hash(tag string) string {
	return fmt.Sprintf("go-%s-%d-%d", tag, os.Getpid(), time.Now().UnixNano())
}

func TestMigratedTemplateTwoDistinctUsableDatabases(t *testing.T) {
	b := startBroker(t, nil, "")
	c := b.client(t)
	ctx := context.Background()
	h := hash("main")
	runs := 0
	if err := c.SetupTemplateWithDBClient(ctx, h, func(db *sql.DB) error { runs++; return migrate(db) }); err != nil {
		t.Fatal(err)
	}
	if err := c.SetupTemplateWithDBClient(ctx, h, func(db *sql.DB) error { runs++; return nil }); err != nil {
		t.Fatal(err)
	}
	if runs != 1 {
		t.Fatalf("the migration ran %d times, want 1", runs)
	}
	a, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == d.ID || a.Database.Config.Database == d.Database.Config.Database {
		t.Fatalf("two gets gave the same database: %+v %+v", a, d)
	}
	if a.Database.TemplateHash != h {
		t.Fatalf("templateHash %q, want %q", a.Database.TemplateHash, h)
	}
	if n := count(t, a.Database.Config); n != 2 {
		t.Fatalf("the first database has %d rows, want the template's 2", n)
	}
	adb, _ := sql.Open("postgres", a.Database.Config.ConnectionString())
	if _, err := adb.Exec("INSERT INTO pilots (name) VALUES ('Charles')"); err != nil {
		t.Fatal(err)
	}
	adb.Close()
	if n := count(t, d.Database.Config); n != 2 {
		t.Fatalf("the second database sees %d rows, want 2", n)
	}

	// Returned with the client's ReturnTestDatabase (DELETE .../tests/:id, an unlock): the
	// next get has the same database again, as IntegreSQL does.
	if err := c.ReturnTestDatabase(ctx, h, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.ReturnTestDatabase(ctx, h, a.ID); err == nil {
		t.Fatal("returning a database twice succeeded")
	}
	again, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != a.ID || again.Database.Config.Database != a.Database.Config.Database {
		t.Fatalf("after an unlock, got %d %s, want %d %s", again.ID, again.Database.Config.Database, a.ID, a.Database.Config.Database)
	}
	// Recreate, which v1.0.0 of the client does not wrap: dropped, and the next is fresh.
	for _, id := range []int{d.ID, again.ID} {
		if code, msg := do(t, "POST", fmt.Sprintf("%s/api/v1/templates/%s/tests/%d/recreate", b.base, h, id)); code != 204 {
			t.Fatalf("recreate: %d %s", code, msg)
		}
	}
	eventually(t, "the recreated database is dropped", 10*time.Second, func() bool { return gone(a.Database.Config) })
	eventually(t, "the recreated database is dropped", 10*time.Second, func() bool { return gone(d.Database.Config) })
	e, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, e.Database.Config); n != 2 {
		t.Fatalf("a later database has %d rows, want a fresh 2", n)
	}
	if code, msg := do(t, "POST", fmt.Sprintf("%s/api/v1/templates/%s/tests/%d/unlock", b.base, h, e.ID)); code != 204 {
		t.Fatalf("unlock: %d %s", code, msg)
	}
	if code, msg := do(t, "POST", fmt.Sprintf("%s/api/v1/templates/%s/tests/%d/unlock", b.base, h, e.ID)); code != 404 || msg != "test database not found" {
		t.Fatalf("unlocking twice: %d %q", code, msg)
	}
	if n := b.leases(t); n != 1 {
		t.Fatalf("%d leases held, want the unlocked database's 1", n)
	}
	if err := c.ResetAllTracking(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no lease held", 5*time.Second, func() bool { return b.leases(t) == 0 })
	eventually(t, "the unlocked database is dropped", 10*time.Second, func() bool { return gone(e.Database.Config) })
	if _, err := c.GetTestDatabase(ctx, h); !errors.Is(err, integresql.ErrTemplateNotFound) {
		t.Fatalf("after the reset: %v, want ErrTemplateNotFound", err)
	}
}

func TestConcurrentInitializersGet423(t *testing.T) {
	b := startBroker(t, nil, "")
	c := b.client(t)
	ctx := context.Background()
	h := hash("race")
	var wg sync.WaitGroup
	results := make([]error, 8)
	templates := make([]models.TemplateDatabase, 8)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			templates[i], results[i] = c.InitializeTemplate(ctx, h)
		}(i)
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner == -1:
			winner = i
		case errors.Is(err, integresql.ErrTemplateAlreadyInitialized):
		default:
			t.Fatalf("initializer %d: %v (winner %d)", i, err, winner)
		}
	}
	if winner == -1 {
		t.Fatal("no initializer won")
	}
	db, err := sql.Open("postgres", templates[winner].Config.ConnectionString())
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(db); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// While it is being built: still 423, and a get waits for the finalize.
	if _, err := c.InitializeTemplate(ctx, h); !errors.Is(err, integresql.ErrTemplateAlreadyInitialized) {
		t.Fatalf("during the build: %v", err)
	}
	got := make(chan models.TestDatabase, 1)
	go func() {
		td, err := c.GetTestDatabase(ctx, h)
		if err != nil {
			t.Error(err)
		}
		got <- td
	}()
	select {
	case <-got:
		t.Fatal("a get returned before the template was finalized")
	case <-time.After(500 * time.Millisecond):
	}
	if err := c.FinalizeTemplate(ctx, h); err != nil {
		t.Fatal(err)
	}
	td := <-got
	if n := count(t, td.Database.Config); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	if err := c.ReturnTestDatabase(ctx, h, td.ID); err != nil {
		t.Fatal(err)
	}
	// A discarded build is unknown afterwards.
	other := hash("discard")
	if _, err := c.InitializeTemplate(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := c.DiscardTemplate(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetTestDatabase(ctx, other); !errors.Is(err, integresql.ErrTemplateNotFound) {
		t.Fatalf("after the discard: %v", err)
	}
	if err := c.ResetAllTracking(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no lease held", 5*time.Second, func() bool { return b.leases(t) == 0 })
}

func TestUnreturnedDatabaseIsReclaimedAfterTTL(t *testing.T) {
	b := startBroker(t, map[string]any{"lease_ttl_ms": 1500}, "")
	c := b.client(t)
	ctx := context.Background()
	h := hash("ttl")
	if err := c.SetupTemplateWithDBClient(ctx, h, migrate); err != nil {
		t.Fatal(err)
	}
	td, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, td.Database.Config); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	eventually(t, "the lease is reclaimed", 15*time.Second, func() bool { return b.leases(t) == 0 })
	eventually(t, "the database is dropped", 10*time.Second, func() bool { return gone(td.Database.Config) })
	if err := c.ReturnTestDatabase(ctx, h, td.ID); err == nil {
		t.Fatal("returning a reclaimed database succeeded")
	}
}

// bearer adds the token to every request of the process's default transport, which the
// client's http.Client uses.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func TestTokensApplyThroughAuthorizationBearer(t *testing.T) {
	token := fmt.Sprintf("isql-go-%d", os.Getpid())
	b := startBroker(t, nil, token)
	c := b.client(t)
	ctx := context.Background()
	h := hash("auth")
	if _, err := c.InitializeTemplate(ctx, h); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without a token: %v, want status 401", err)
	}
	if code, msg := do(t, "GET", b.base+"/api/v1/templates/"+h+"/tests"); code != 401 || !strings.Contains(msg, "Bearer") {
		t.Fatalf("without a token: %d %q", code, msg)
	}
	saved := http.DefaultTransport
	http.DefaultTransport = bearer{token, saved}
	defer func() { http.DefaultTransport = saved }()
	if err := c.SetupTemplateWithDBClient(ctx, h, migrate); err != nil {
		t.Fatal(err)
	}
	td, err := c.GetTestDatabase(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, td.Database.Config); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
	if err := c.ReturnTestDatabase(ctx, h, td.ID); err != nil {
		t.Fatal(err)
	}
	http.DefaultTransport = bearer{"wrong", saved}
	if _, err := c.GetTestDatabase(ctx, h); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("with a wrong token: %v", err)
	}
}

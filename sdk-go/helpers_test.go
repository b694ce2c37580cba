// helpers_test.go: real fixture-broker processes for the tests, and a dialer whose
// connections a test can cut.
//
// The binary is found as FindBroker finds it ($FIXTURE_BROKER_BIN, PATH, ../build). Every
// broker listens on 127.0.0.1 port 0 with a port range of its own (31000-31199 in all,
// clear of the other suites'), in the state directory $FXB_GO_STATE or ../build/go-state
// (kept across runs, so that the embedded PostgreSQL cluster is made once). At the end a
// broker gets SIGTERM and must exit with status 0.

package fixturebroker_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
)

const mainPorts = "31000-31099"

var (
	mainOnce   sync.Once
	mainBroker *fb.BrokerProcess
	mainErr    error
)

func stateDir(t testing.TB) string {
	dir := os.Getenv("FXB_GO_STATE")
	if dir == "" {
		dir = filepath.Join("..", "build", "go-state")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestMain(m *testing.M) {
	code := m.Run()
	if mainBroker != nil {
		if err := mainBroker.Stop(30 * time.Second); err != nil {
			println("the shared broker did not exit cleanly on SIGTERM:", err.Error())
			code = 1
		}
	}
	os.Exit(code)
}

// shared returns the broker most tests share (ports 31000-31099), started on first use.
func shared(t testing.TB) *fb.BrokerProcess {
	mainOnce.Do(func() {
		mainBroker, mainErr = fb.StartBroker(context.Background(), &fb.BrokerOptions{
			Args: []string{"--ports", mainPorts, "--state-dir", stateDir(t)}})
	})
	if mainErr != nil {
		t.Fatal(mainErr)
	}
	return mainBroker
}

// start starts a broker of the test's own, stopped when the test ends (it must exit 0).
func start(t testing.TB, ports string, args ...string) *fb.BrokerProcess {
	t.Helper()
	b, err := fb.StartBroker(context.Background(), &fb.BrokerOptions{
		Args: append([]string{"--ports", ports, "--state-dir", stateDir(t)}, args...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(30 * time.Second); err != nil {
			t.Errorf("the broker did not exit cleanly on SIGTERM: %v", err)
		}
	})
	return b
}

// dial connects a client closed when the test ends.
func dial(t testing.TB, url string, opts *fb.Options) *fb.Client {
	t.Helper()
	c, err := fb.Dial(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// cutter is an HTTP client whose TCP connections a test can cut under the WebSocket, as a
// network failure would. It also counts the pong frames the client writes.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
	pongs atomic.Int32
}

// counting is a client-side connection that counts the pong frames written on it (a
// client's frames are written whole, each starting with FIN|opcode: 0x8A for a pong).
type counting struct {
	net.Conn
	k *cutter
}

func (c *counting) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == 0x8A {
		c.k.pongs.Add(1)
	}
	return c.Conn.Write(p)
}

func (k *cutter) client() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			k.mu.Lock()
			k.conns = append(k.conns, c)
			k.mu.Unlock()
			return &counting{c, k}, nil
		},
	}}
}

// cut closes the latest connection.
func (k *cutter) cut(t testing.TB) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.conns) == 0 {
		t.Fatal("no connection to cut")
	}
	k.conns[len(k.conns)-1].Close()
}

// until polls check until it returns true; fails the test after timeout.
func until(t testing.TB, timeout time.Duration, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

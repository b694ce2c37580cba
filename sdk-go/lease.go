// lease.go: what a client asks for (Spec), what it is granted (Lease, Fixture), and the
// calls on leases: acquire, release, renew, reset, list, logs, and broker.status.

package fixturebroker

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// Spec is one fixture of an acquire: {"kind": "port"}, {"kind": "postgres", "template":
// ...}, {"kind": "server", "template": ..., "env": ...}. Empty members are not sent.
type Spec struct {
	Kind        string            `json:"kind"`
	Template    string            `json:"template,omitempty"`
	Isolation   string            `json:"isolation,omitempty"`   // postgres: "database" or "schema"
	Connections int               `json:"connections,omitempty"` // postgres: the role's connection limit
	Env         map[string]string `json:"env,omitempty"`         // server: variables its template allows
}

// Port asks for a TCP port.
func Port() Spec { return Spec{Kind: "port"} }

// Postgres asks for a database cloned from template (a configured template's name or a
// hash ensured with EnsureTemplate; "" for an empty database).
func Postgres(template string) Spec { return Spec{Kind: "postgres", Template: template} }

// Server asks for an instance of a server template from the broker's configuration.
func Server(template string, env map[string]string) Spec {
	return Spec{Kind: "server", Template: template, Env: env}
}

// Fixture is a granted fixture's fields. Which are set depends on Kind: every kind has
// Host and Port; postgres has URL, Database, User, Password, Template, Isolation (and
// Schema with schema isolation); server has Ports, PID, its needs' Fixtures and LogFile.
// Raw holds the fields exactly as the broker sent them.
type Fixture struct {
	Kind string `json:"kind"`
	Host string `json:"host"`
	Port int    `json:"port"`

	URL       string `json:"url"`
	Database  string `json:"database"`
	Schema    string `json:"schema"`
	User      string `json:"user"`
	Password  string `json:"password"`
	Template  string `json:"template"`
	Isolation string `json:"isolation"`

	Ports    map[string]int     `json:"ports"`
	PID      int                `json:"pid"`
	Fixtures map[string]Fixture `json:"fixtures"`
	LogFile  string             `json:"log_file"`

	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the known fields and keeps the whole object in Raw.
func (f *Fixture) UnmarshalJSON(b []byte) error {
	type plain Fixture
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = Fixture(p)
	f.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// String is the fixture's fields as the broker sent them, in JSON.
func (f Fixture) String() string {
	if f.Raw != nil {
		return string(f.Raw)
	}
	type plain Fixture
	b, _ := json.Marshal(plain(f))
	return string(b)
}

// AcquireOptions are an acquire's optional members.
type AcquireOptions struct {
	// Wait queues the acquire this long when a pool is short (wait_ms; 0: fail at once).
	// The call's default bound grows by as much.
	Wait time.Duration
	// TTL releases the lease that long after the acquire unless renewed (ttl_ms).
	TTL time.Duration
	// Labels are the lease's labels.
	Labels map[string]string
}

// Lease is the fixtures one acquire granted, under the caller's names. Its methods are
// safe for concurrent use.
type Lease struct {
	ID     string
	client *Client

	mu       sync.Mutex
	fixtures map[string]Fixture
	ttlMs    *int64
	released bool
}

// Fixture returns the named fixture's fields (the zero Fixture when there is none).
func (l *Lease) Fixture(name string) Fixture {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fixtures[name]
}

// Fixtures returns a copy of every fixture's fields, by name.
func (l *Lease) Fixtures() map[string]Fixture {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Fixture, len(l.fixtures))
	for k, v := range l.fixtures {
		out[k] = v
	}
	return out
}

// Port returns the named fixture's port (0 when there is none).
func (l *Lease) Port(name string) int { return l.Fixture(name).Port }

// TTL is the lease's time to live as the broker last reported it (0: none).
func (l *Lease) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ttlMs == nil {
		return 0
	}
	return time.Duration(*l.ttlMs) * time.Millisecond
}

// Released reports whether the lease was released (by Release, by Close, or because its
// session could not be resumed).
func (l *Lease) Released() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.released
}

func (l *Lease) markReleased() {
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
}

// Release releases the lease; true if this call released it, false if it was gone.
func (l *Lease) Release(ctx context.Context) (bool, error) {
	if l.Released() {
		return false, nil
	}
	return l.client.Release(ctx, l.ID)
}

// Renew pushes the expiry to now + ttl (or the lease's own TTL when ttl is 0).
func (l *Lease) Renew(ctx context.Context, ttl time.Duration) (Renewal, error) {
	r, err := l.client.Renew(ctx, l.ID, ttl)
	if err == nil {
		l.mu.Lock()
		l.ttlMs = r.TTLMs
		l.mu.Unlock()
	}
	return r, err
}

// Reset swaps the named fixture for a fresh one (for postgres: a new clone of its
// template) and returns its new fields, which also replace the lease's.
func (l *Lease) Reset(ctx context.Context, name string) (Fixture, error) {
	f, err := l.client.Reset(ctx, l.ID, name)
	if err == nil {
		l.mu.Lock()
		l.fixtures[name] = f
		l.mu.Unlock()
	}
	return f, err
}

// Logs returns a server fixture's captured output (its last tail lines; 0: all).
func (l *Lease) Logs(ctx context.Context, name string, tail int) (Logs, error) {
	return l.client.Logs(ctx, l.ID, name, tail)
}

// Acquire leases fixtures, all or none; fixtures maps the caller's names to specs.
func (c *Client) Acquire(ctx context.Context, fixtures map[string]Spec, opts *AcquireOptions) (*Lease, error) {
	const method = "lease.acquire"
	params := map[string]any{"fixtures": fixtures}
	var extra time.Duration
	if opts != nil {
		if opts.Wait > 0 {
			params["wait_ms"] = opts.Wait.Milliseconds()
			extra = opts.Wait
		}
		if opts.TTL > 0 {
			params["ttl_ms"] = opts.TTL.Milliseconds()
		}
		if opts.Labels != nil {
			params["labels"] = opts.Labels
		}
	}
	raw, err := c.call(ctx, method, params, extra)
	if err != nil {
		return nil, err
	}
	var r struct {
		Lease    string             `json:"lease"`
		Fixtures map[string]Fixture `json:"fixtures"`
		TTLMs    *int64             `json:"ttl_ms"`
	}
	if json.Unmarshal(raw, &r) != nil || r.Lease == "" || r.Fixtures == nil {
		return nil, clientError(ProtocolError, method, nil, "%s: the reply has no lease or fixtures", method)
	}
	l := &Lease{ID: r.Lease, client: c, fixtures: r.Fixtures, ttlMs: r.TTLMs}
	c.mu.Lock()
	c.leases[l.ID] = l
	c.mu.Unlock()
	return l, nil
}

// Release releases a lease by id; returns the broker's "released".
func (c *Client) Release(ctx context.Context, lease string) (bool, error) {
	var r struct {
		Released bool `json:"released"`
	}
	if err := c.Call(ctx, "lease.release", map[string]any{"lease": lease}, &r); err != nil {
		return false, err
	}
	c.mu.Lock()
	held := c.leases[lease]
	delete(c.leases, lease)
	c.mu.Unlock()
	if held != nil {
		held.markReleased()
	}
	return r.Released, nil
}

// Renewal is lease.renew's answer.
type Renewal struct {
	TTLMs       *int64 `json:"ttl_ms"`
	ExpiresInMs *int64 `json:"expires_in_ms"`
}

// Renew pushes a lease's expiry to now + ttl (or its own TTL when ttl is 0).
func (c *Client) Renew(ctx context.Context, lease string, ttl time.Duration) (Renewal, error) {
	params := map[string]any{"lease": lease}
	if ttl > 0 {
		params["ttl_ms"] = ttl.Milliseconds()
	}
	var r Renewal
	err := c.Call(ctx, "lease.renew", params, &r)
	return r, err
}

// Reset swaps one fixture of a lease for a fresh one and returns its new fields.
func (c *Client) Reset(ctx context.Context, lease, fixture string) (Fixture, error) {
	const method = "lease.reset"
	var r struct {
		Fixtures map[string]Fixture `json:"fixtures"`
	}
	if err := c.Call(ctx, method, map[string]any{"lease": lease, "fixture": fixture}, &r); err != nil {
		return Fixture{}, err
	}
	f, ok := r.Fixtures[fixture]
	if !ok {
		return Fixture{}, clientError(ProtocolError, method, nil,
			"%s: the reply has no fields for fixture %q", method, fixture)
	}
	return f, nil
}

// LeaseInfo is one lease as lease.list shows it.
type LeaseInfo struct {
	Lease       string             `json:"lease"`
	Fixtures    map[string]Fixture `json:"fixtures"`
	Labels      map[string]string  `json:"labels"`
	TTLMs       *int64             `json:"ttl_ms"`
	ExpiresInMs *int64             `json:"expires_in_ms"`
	AgeMs       int64              `json:"age_ms"`
}

// List returns this session's leases (lease.list).
func (c *Client) List(ctx context.Context) ([]LeaseInfo, error) {
	var r struct {
		Leases []LeaseInfo `json:"leases"`
	}
	err := c.Call(ctx, "lease.list", map[string]any{}, &r)
	return r.Leases, err
}

// Status is broker.status's answer.
type Status struct {
	Version      string `json:"version"`
	Instance     string `json:"instance"`
	UptimeMs     int64  `json:"uptime_ms"`
	ShuttingDown bool   `json:"shutting_down"`
	// Draining is true from the first moment of a drain (SIGTERM, admin.drain); then
	// DrainRemainingMs is the time left before the leases still held are released.
	Draining         bool   `json:"draining"`
	DrainRemainingMs *int64 `json:"drain_remaining_ms"`
	Sessions         int    `json:"sessions"`
	SessionsInGrace  int    `json:"sessions_in_grace"`
	Leases           int    `json:"leases"`
	Waiting          int    `json:"waiting"`
	Ports            struct {
		First       int `json:"first"`
		Last        int `json:"last"`
		Size        int `json:"size"`
		Free        int `json:"free"`
		Leased      int `json:"leased"`
		Quarantined int `json:"quarantined"`
	} `json:"ports"`
}

// Status returns the broker's counts (broker.status).
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.Call(ctx, "broker.status", map[string]any{}, &s)
	return s, err
}

// Logs is a server fixture's captured output.
type Logs struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// Logs returns a server fixture's captured output (server.logs; tail 0: all of it).
func (c *Client) Logs(ctx context.Context, lease, fixture string, tail int) (Logs, error) {
	params := map[string]any{"lease": lease, "fixture": fixture}
	if tail > 0 {
		params["tail"] = tail
	}
	var l Logs
	err := c.Call(ctx, "server.logs", params, &l)
	return l, err
}

// PGStatus returns pg.status's answer as decoded JSON (it starts PostgreSQL if needed).
func (c *Client) PGStatus(ctx context.Context) (map[string]any, error) {
	var r map[string]any
	err := c.Call(ctx, "pg.status", map[string]any{}, &r)
	return r, err
}

// client.go: Client, one WebSocket connection (one broker session) and the calls in flight on it.
//
// A Client is safe for use from many goroutines. Each call registers under a fresh id and
// waits for its reply; one reader goroutine per connection reads the replies and hands each
// to its caller, matched by id, never by order (a waiting acquire is answered when it is
// done). While that goroutine reads, github.com/coder/websocket answers the broker's pings,
// which is all the heartbeat the other SDKs have too: the broker pings every client
// (--heartbeat-ms) and drops one that has been silent for --dead-after-ms.
//
// When the connection drops, the calls in flight fail at once with CONNECTION_LOST (the
// broker may or may not have acted on them), calls made afterwards wait, and the reader
// goroutine reconnects with backoff and resumes the session with session.hello {resume}:
// within the broker's grace period the session and its leases survive. If the session
// cannot be resumed (the grace period ran out, or another connection took it over with
// close code 4001), the client opens a fresh session and its old leases are marked released.

package fixturebroker

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

const (
	// SubProtocol is the WebSocket subprotocol the broker speaks.
	SubProtocol = "fixture-broker.v1"
	// DefaultURL is where Dial connects without a URL and without $FIXTURE_BROKER_URL.
	DefaultURL = "ws://127.0.0.1:7357"

	defaultConnectTimeout = 10 * time.Second
	defaultCallTimeout    = 60 * time.Second
	releaseOnClose        = 5 * time.Second
	// The broker's close code for a connection whose session another connection resumed.
	closeTakenOver = 4001
)

// The broker keeps a dropped session for 5 s by default: the first attempts come fast.
var backoff = []time.Duration{100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2 * time.Second}

// Options configure Dial. The zero value (or nil) is fine.
type Options struct {
	// Token is the bearer token (default $FIXTURE_BROKER_TOKEN), sent once per connection
	// in the upgrade request's Authorization header; a wrong one is UNAUTHENTICATED.
	Token string
	// Client names the client in the broker's logs (default "fixture-broker-go").
	Client string
	// Labels are the session's labels; "pid" is added.
	Labels map[string]string
	// ConnectTimeout bounds each connection attempt with its session.hello (default 10 s).
	ConnectTimeout time.Duration
	// CallTimeout bounds a call whose context has no deadline (default 60 s; negative:
	// no bound). An acquire's Wait and an ensure's Wait are added to it.
	CallTimeout time.Duration
	// Resume takes over a session by its resume token.
	Resume string
	// HTTPClient makes the WebSocket handshakes (default http.DefaultClient, or for wss://
	// a client with TLSConfig). Give either HTTPClient or TLSConfig.
	HTTPClient *http.Client
	// TLSConfig verifies a wss:// broker (and may present a client certificate). Default:
	// the system's CAs, or those of the PEM file $FIXTURE_BROKER_CA, with the client
	// certificate and key of the PEM files $FIXTURE_BROKER_CERT and $FIXTURE_BROKER_KEY, if
	// set (as libfxb's tls.ca, tls.cert, tls.key).
	TLSConfig *tls.Config
	// OnNotification receives the broker's notifications (server.exited), in order, on a
	// goroutine of the client's; it may call the client.
	OnNotification func(Notification)
	// OnSessionLost is told when a reconnection could not resume the session: a fresh
	// session began and these leases are gone. Called like OnNotification.
	OnSessionLost func(leases []*Lease)
}

// Notification is a message the broker sent without an id (no reply expected).
type Notification struct {
	Method string
	Params json.RawMessage
}

// Hello is the broker's answer to session.hello.
type Hello struct {
	Session string `json:"session"`
	Resume  string `json:"resume"`
	Resumed bool   `json:"resumed"`
	Broker  struct {
		Version  string `json:"version"`
		Instance string `json:"instance"`
	} `json:"broker"`
	Limits struct {
		MaxMessageBytes     int64 `json:"max_message_bytes"`
		GraceMs             int64 `json:"grace_ms"`
		MaxFixturesPerLease int   `json:"max_fixtures_per_lease"`
		Ports               struct {
			First int `json:"first"`
			Last  int `json:"last"`
		} `json:"ports"`
	} `json:"limits"`
}

type state int

const (
	stateOpen state = iota
	stateReconnecting
	stateClosed
)

// call is one request in flight: its caller waits on done; the reader sets result or err.
type call struct {
	method string
	done   chan struct{}
	result json.RawMessage
	err    *Error
}

func (c *call) finish(result json.RawMessage, err *Error) {
	c.result, c.err = result, err
	close(c.done)
}

// Client is one broker session. Use Dial, which also opens the connection.
type Client struct {
	url  string
	opts Options

	// mu guards everything below; changed is closed (and replaced) on every change of
	// state or conn, so that waiters can select on it.
	mu           sync.Mutex
	changed      chan struct{}
	state        state
	closing      bool
	conn         *websocket.Conn
	nextID       int64
	inflight     map[int64]*call
	abandoned    map[int64]bool
	refused      *Error
	droppedAt    time.Time
	leases       map[string]*Lease
	hello        Hello
	resume       string
	reconnects   int
	sessionsLost int

	stop       context.Context // done once Close has begun its last step
	stopNow    context.CancelFunc
	readerDone chan struct{}
	events     *eventQueue
}

// Dial connects to the broker and opens a session (session.hello). url defaults to
// $FIXTURE_BROKER_URL, else DefaultURL. ctx bounds the connection and the hello only.
func Dial(ctx context.Context, url string, opts *Options) (*Client, error) {
	if url == "" {
		url = os.Getenv("FIXTURE_BROKER_URL")
	}
	if url == "" {
		url = DefaultURL
	}
	c := &Client{url: url, changed: make(chan struct{}), inflight: map[int64]*call{},
		abandoned: map[int64]bool{}, leases: map[string]*Lease{}, nextID: 1,
		readerDone: make(chan struct{})}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Token == "" {
		c.opts.Token = os.Getenv("FIXTURE_BROKER_TOKEN")
	}
	if c.opts.Client == "" {
		c.opts.Client = "fixture-broker-go"
	}
	labels := map[string]string{"pid": strconv.Itoa(os.Getpid())}
	for k, v := range c.opts.Labels {
		labels[k] = v
	}
	c.opts.Labels = labels
	if c.opts.ConnectTimeout <= 0 {
		c.opts.ConnectTimeout = defaultConnectTimeout
	}
	if c.opts.CallTimeout == 0 {
		c.opts.CallTimeout = defaultCallTimeout
	}
	c.resume = c.opts.Resume
	if len(url) >= 6 && strings.EqualFold(url[:6], "wss://") {
		if err := c.tlsClient(); err != nil {
			return nil, err
		}
	}
	c.stop, c.stopNow = context.WithCancel(context.Background())

	conn, hello, err := c.establish(ctx, false)
	if err != nil {
		c.stopNow()
		return nil, err
	}
	c.hello = *hello
	c.resume = hello.Resume
	c.conn = conn
	c.events = newEventQueue()
	go c.run(conn)
	return c, nil
}

// The environment variables that name the PEM files of a wss:// connection.
const (
	envCA   = "FIXTURE_BROKER_CA"
	envCert = "FIXTURE_BROKER_CERT"
	envKey  = "FIXTURE_BROKER_KEY"
)

// tlsClient makes the HTTP client of a wss:// connection from TLSConfig or the
// environment, unless the caller gave an HTTPClient of its own.
func (c *Client) tlsClient() error {
	if c.opts.HTTPClient != nil {
		if c.opts.TLSConfig != nil {
			return clientError(InvalidArgument, "", nil,
				"give either HTTPClient or TLSConfig, not both (set the TLS config on the client's transport)")
		}
		return nil
	}
	cfg := c.opts.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		if ca := os.Getenv(envCA); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return clientError(InvalidArgument, "", err, "cannot read $%s: %v", envCA, err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return clientError(InvalidArgument, "", nil, "$%s (%s) holds no PEM certificate", envCA, ca)
			}
		}
		cert, key := os.Getenv(envCert), os.Getenv(envKey)
		if (cert == "") != (key == "") {
			return clientError(InvalidArgument, "", nil,
				"a client certificate needs its key and the other way round ($%s and $%s)", envCert, envKey)
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return clientError(InvalidArgument, "", err, "cannot load $%s and $%s: %v", envCert, envKey, err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	c.opts.HTTPClient = &http.Client{Transport: t}
	return nil
}

// URL is the broker's address.
func (c *Client) URL() string { return c.url }

// Hello is the broker's answer to the latest session.hello: session, resume token, limits.
func (c *Client) Hello() Hello {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hello
}

// Session is the session's id.
func (c *Client) Session() string { return c.Hello().Session }

// Connected reports whether the client has a live session (not reconnecting, not closed).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == stateOpen && c.conn != nil
}

// Reconnects is how many times the connection was established again after a drop;
// SessionsLost how many of those had to begin a fresh session.
func (c *Client) Reconnects() (reconnects, sessionsLost int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects, c.sessionsLost
}

// signal wakes every waiter on c.changed; c.mu is held.
func (c *Client) signal() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// establish connects and says hello; when reconnecting it resumes the session (or, once
// the grace period is over, begins a fresh one). It returns the connection, not yet read
// by anyone, and the hello's result.
func (c *Client) establish(ctx context.Context, reconnecting bool) (*websocket.Conn, *Hello, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	// The token goes once, here: the broker checks it before it upgrades.
	var header http.Header
	if c.opts.Token != "" {
		header = http.Header{"Authorization": {"Bearer " + c.opts.Token}}
	}
	conn, resp, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{
		HTTPClient:   c.opts.HTTPClient,
		HTTPHeader:   header,
		Subprotocols: []string{SubProtocol},
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			// As the broker's own UNAUTHENTICATED: a wrong token will not mend itself.
			return nil, nil, &Error{Code: 1001, Name: "UNAUTHENTICATED", cause: err,
				Message: fmt.Sprintf("cannot connect to %s: the broker refused the bearer token (HTTP 401)", c.url)}
		}
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			return nil, nil, clientError(ConnectFailed, "", err,
				"cannot connect to %s: the broker's TLS certificate was not accepted: %v", c.url, verr.Err)
		}
		return nil, nil, clientError(ConnectFailed, "", err, "cannot connect to %s: %v", c.url, err)
	}
	conn.SetReadLimit(-1)
	c.mu.Lock()
	params := map[string]any{"client": c.opts.Client, "labels": c.opts.Labels}
	if c.resume != "" {
		params["resume"] = c.resume
	}
	grace := time.Duration(c.hello.Limits.GraceMs) * time.Millisecond
	dropped := c.droppedAt
	c.mu.Unlock()

	hello, err := c.sayHello(ctx, conn, params)
	var fe *Error
	if err != nil && reconnecting && errors.As(err, &fe) && fe.Name == "RESUME_UNKNOWN" &&
		params["resume"] != nil && time.Since(dropped) >= grace {
		// Past the grace period the session is gone for good: begin a fresh one. Within
		// it the old connection may just not be gone yet on the broker's side: the
		// caller tries again later rather than give the leases up.
		delete(params, "resume")
		hello, err = c.sayHello(ctx, conn, params)
	}
	if err != nil {
		conn.CloseNow()
		return nil, nil, err
	}
	return conn, hello, nil
}

// sayHello calls session.hello on conn before any reader reads it.
func (c *Client) sayHello(ctx context.Context, conn *websocket.Conn, params map[string]any) (*Hello, error) {
	const method = "session.hello"
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	c.mu.Unlock()
	text, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	if err != nil {
		return nil, clientError(InvalidArgument, method, err, "%s: %v", method, err)
	}
	if err := conn.Write(ctx, websocket.MessageText, text); err != nil {
		return nil, helloFailed(ctx, c.url, err)
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return nil, helloFailed(ctx, c.url, err)
		}
		var m wireMessage
		if json.Unmarshal(data, &m) != nil || m.id() != id {
			continue
		}
		if m.Error != nil {
			var obj map[string]any
			_ = json.Unmarshal(m.Error, &obj)
			return nil, rpcError(obj, method)
		}
		var h Hello
		if err := json.Unmarshal(m.Result, &h); err != nil || h.Session == "" || h.Resume == "" {
			return nil, clientError(ProtocolError, method, err,
				"%s: the reply has no session or resume token", method)
		}
		return &h, nil
	}
}

func helloFailed(ctx context.Context, url string, err error) *Error {
	if ctx.Err() != nil {
		return clientError(Timeout, "session.hello", err, "session.hello: no reply from %s in time", url)
	}
	return clientError(ConnectionLost, "session.hello", err,
		"session.hello: the connection to %s dropped (%v)", url, err)
}

// wireMessage is any message the broker sends: a reply (id with result or error) or a
// notification (method without id).
type wireMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// id returns the message's numeric id, or -1 when it has none this client could have sent.
func (m *wireMessage) id() int64 {
	n, err := strconv.ParseInt(string(m.ID), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// run is the reader goroutine: it reads replies until the connection drops, then
// reconnects, until the client is closed.
func (c *Client) run(conn *websocket.Conn) {
	defer close(c.readerDone)
	for {
		err := c.read(conn)
		code := websocket.CloseStatus(err)
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		closing := c.state == stateClosed || c.closing
		for id, cl := range c.inflight {
			delete(c.inflight, id)
			if cl.method == "lease.acquire" {
				c.abandoned[id] = true
			}
			if closing {
				cl.finish(nil, clientError(ClientClosed, cl.method, nil, "%s: the client is closed", cl.method))
			} else {
				cl.finish(nil, clientError(ConnectionLost, cl.method, err,
					"%s: the connection to %s dropped before the reply (%v)", cl.method, c.url, err))
			}
		}
		if code == closeTakenOver {
			// Another connection resumed this session: do not take it back from it.
			c.resume = ""
		}
		if closing {
			c.signal()
			c.mu.Unlock()
			conn.CloseNow()
			return
		}
		c.state = stateReconnecting
		c.droppedAt = time.Now()
		c.signal()
		c.mu.Unlock()
		conn.CloseNow()
		if conn = c.reconnect(); conn == nil {
			return
		}
	}
}

// read hands out the replies read on conn until it fails; returns why.
func (c *Client) read(conn *websocket.Conn) error {
	for {
		typ, data, err := conn.Read(c.stop)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		data = bytes.TrimSpace(data)
		if len(data) > 0 && data[0] == '[' {
			var batch []wireMessage
			if json.Unmarshal(data, &batch) == nil {
				for i := range batch {
					c.dispatch(&batch[i])
				}
			}
			continue
		}
		var m wireMessage
		if json.Unmarshal(data, &m) == nil {
			c.dispatch(&m)
		}
	}
}

func (c *Client) dispatch(m *wireMessage) {
	if m.ID == nil && m.Method != "" {
		if h := c.opts.OnNotification; h != nil {
			n := Notification{Method: m.Method, Params: m.Params}
			c.events.post(func() { h(n) })
		}
		return
	}
	id := m.id()
	c.mu.Lock()
	cl := c.inflight[id]
	delete(c.inflight, id)
	abandoned := cl == nil && c.abandoned[id]
	delete(c.abandoned, id)
	c.mu.Unlock()
	if cl == nil {
		// A grant whose caller gave up would hold fixtures nobody knows of until the
		// session ends: give it back (not from this goroutine, which reads its reply).
		var r struct {
			Lease string `json:"lease"`
		}
		if abandoned && json.Unmarshal(m.Result, &r) == nil && r.Lease != "" {
			go c.Call(context.Background(), "lease.release", map[string]any{"lease": r.Lease}, nil) //nolint:errcheck
		}
		return
	}
	switch {
	case m.Error != nil:
		var obj map[string]any
		_ = json.Unmarshal(m.Error, &obj)
		cl.finish(nil, rpcError(obj, cl.method))
	case m.Result != nil:
		cl.finish(m.Result, nil)
	default:
		cl.finish(nil, clientError(ProtocolError, cl.method, nil,
			"%s: the reply has neither result nor error", cl.method))
	}
}

// reconnect tries again with backoff until a session is back (it returns its connection)
// or the client is closed (nil).
func (c *Client) reconnect() *websocket.Conn {
	for attempt := 0; ; attempt++ {
		t := time.NewTimer(backoff[min(attempt, len(backoff)-1)])
		select {
		case <-c.stop.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		conn, hello, err := c.establish(c.stop, true)
		if err != nil {
			var fe *Error
			// The broker refusing the session (a bad token) will not mend itself: let the
			// waiting calls know rather than make them wait for their timeouts.
			if errors.As(err, &fe) && fe.FromBroker() && fe.Name != "RESUME_UNKNOWN" {
				c.mu.Lock()
				c.refused = fe
				c.signal()
				c.mu.Unlock()
			}
			continue
		}
		c.mu.Lock()
		if c.state == stateClosed || c.closing {
			c.mu.Unlock()
			conn.CloseNow()
			return nil
		}
		// A resumed session keeps its id, and the broker says resumed; a new id, or a hello
		// that did not resume (another broker, behind a load balancer, may hand out the
		// same id), means the old one and its leases are gone.
		var lost []*Lease
		sessionLost := hello.Session != c.hello.Session || !hello.Resumed
		if sessionLost {
			c.sessionsLost++
			for id, l := range c.leases {
				l.markReleased()
				lost = append(lost, l)
				delete(c.leases, id)
			}
		}
		c.hello = *hello
		c.resume = hello.Resume
		c.conn = conn
		c.state = stateOpen
		c.refused = nil
		c.reconnects++
		c.signal()
		c.mu.Unlock()
		if h := c.opts.OnSessionLost; h != nil && sessionLost {
			c.events.post(func() { h(lost) })
		}
		return conn
	}
}

// Call calls any broker method with params (anything encoding/json takes; nil sends
// none) and decodes its result into result (a pointer, or nil to drop it). A broker error
// or a client-side failure is an *Error.
func (c *Client) Call(ctx context.Context, method string, params any, result any) error {
	raw, err := c.call(ctx, method, params, 0)
	if err != nil {
		return err
	}
	if result != nil {
		if err := json.Unmarshal(raw, result); err != nil {
			return clientError(ProtocolError, method, err, "%s: unexpected reply %s: %v", method, raw, err)
		}
	}
	return nil
}

// call sends one request and waits for its reply; extra lengthens the default bound.
func (c *Client) call(ctx context.Context, method string, params any, extra time.Duration) (json.RawMessage, error) {
	if _, ok := ctx.Deadline(); !ok && c.opts.CallTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.CallTimeout+extra)
		defer cancel()
	}
	if ctx.Err() != nil {
		return nil, contextError(ctx, method, "not sent")
	}
	msg := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		msg["params"] = params
	}
	for {
		c.mu.Lock()
		for c.state == stateReconnecting && c.refused == nil {
			ch := c.changed
			c.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, contextError(ctx, method, "not connected to "+c.url)
			case <-ch:
			}
			c.mu.Lock()
		}
		if c.state == stateClosed || c.closing {
			c.mu.Unlock()
			return nil, clientError(ClientClosed, method, nil, "%s: the client is closed", method)
		}
		if c.state == stateReconnecting {
			err := c.refused
			c.mu.Unlock()
			return nil, err
		}
		conn := c.conn
		id := c.nextID
		c.nextID++
		limit := c.hello.Limits.MaxMessageBytes
		c.mu.Unlock()

		msg["id"] = id
		text, err := json.Marshal(msg)
		if err != nil {
			return nil, clientError(InvalidArgument, method, err, "%s: cannot encode the params: %v", method, err)
		}
		if limit > 0 && int64(len(text)) > limit {
			return nil, clientError(InvalidArgument, method, nil,
				"%s: the request is %d bytes, over the broker's limit of %d", method, len(text), limit)
		}
		cl := &call{method: method, done: make(chan struct{})}
		c.mu.Lock()
		if c.conn != conn {
			c.mu.Unlock()
			continue // dropped meanwhile: wait for the next connection
		}
		c.inflight[id] = cl
		c.mu.Unlock()

		// The write gets a context of its own: coder/websocket closes the connection when
		// a write's context ends, and one caller's deadline must not cut every caller's.
		wctx, cancel := context.WithTimeout(context.Background(), c.opts.ConnectTimeout)
		err = conn.Write(wctx, websocket.MessageText, text)
		cancel()
		if err != nil {
			// The request never left: wait for the reader to notice and reconnect.
			c.mu.Lock()
			if c.inflight[id] == cl {
				delete(c.inflight, id)
			}
			for c.conn == conn && c.state == stateOpen {
				ch := c.changed
				c.mu.Unlock()
				select {
				case <-ctx.Done():
					return nil, contextError(ctx, method, "not connected to "+c.url)
				case <-ch:
				}
				c.mu.Lock()
			}
			c.mu.Unlock()
			continue
		}

		select {
		case <-cl.done:
		case <-ctx.Done():
			c.mu.Lock()
			mine := c.inflight[id] == cl
			if mine {
				delete(c.inflight, id)
				if method == "lease.acquire" {
					c.abandoned[id] = true
				}
			}
			c.mu.Unlock()
			if mine {
				return nil, contextError(ctx, method, "no reply from "+c.url)
			}
			<-cl.done // the reader took the reply just now and is handing it over
		}
		if cl.err != nil {
			return nil, cl.err
		}
		return cl.result, nil
	}
}

// Close releases this session's leases and closes the connection; calls still waiting
// fail with CLIENT_CLOSED. ctx bounds the releases (at most 5 s without a deadline).
// Closing twice does nothing.
func (c *Client) Close(ctx context.Context) error {
	return c.close(ctx, true)
}

// CloseKeepLeases closes the connection without releasing: the broker keeps the leases
// for its grace period, for whoever resumes the session with its resume token.
func (c *Client) CloseKeepLeases() error {
	return c.close(context.Background(), false)
}

func (c *Client) close(ctx context.Context, release bool) error {
	c.mu.Lock()
	if c.state == stateClosed || c.closing {
		c.mu.Unlock()
		return nil
	}
	open := c.state == stateOpen
	c.mu.Unlock()
	if release && open {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, releaseOnClose)
			defer cancel()
		}
		// The broker releases them after its grace period anyway if this fails.
		if held, err := c.List(ctx); err == nil {
			for _, l := range held {
				_, _ = c.Release(ctx, l.Lease)
			}
		}
	}
	c.mu.Lock()
	if c.state == stateClosed || c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	c.state = stateClosed
	conn := c.conn
	for id, l := range c.leases {
		l.markReleased()
		delete(c.leases, id)
	}
	c.signal()
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close(websocket.StatusNormalClosure, "client closing")
	}
	c.stopNow()
	select {
	case <-c.readerDone:
	case <-time.After(releaseOnClose):
	}
	c.events.close()
	return nil
}

// eventQueue runs callbacks one at a time, in order, on a goroutine of its own, so that
// the reader never waits for user code (which may call the client).
type eventQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []func()
	closed bool
}

func newEventQueue() *eventQueue {
	q := &eventQueue{}
	q.cond = sync.NewCond(&q.mu)
	go q.loop()
	return q
}

func (q *eventQueue) post(f func()) {
	q.mu.Lock()
	if !q.closed {
		q.queue = append(q.queue, f)
		q.cond.Signal()
	}
	q.mu.Unlock()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *eventQueue) loop() {
	for {
		q.mu.Lock()
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			q.mu.Unlock()
			return
		}
		f := q.queue[0]
		q.queue = q.queue[1:]
		q.mu.Unlock()
		f()
	}
}

// vectors_test.go: walks protocol/vectors/*.json against the real broker, raw over WebSocket
// and through Client.Call.
//
// The broker is the one the vectors assume (protocol/vectors/README.md): a pool of ten
// ports, no quarantine, every other setting at its default. Its pool is 31130-31139 rather
// than 15000-15009, so the expected "first"/"last" values are adjusted to it, as the JS and
// Python walkers do.
//
// Each file runs twice, each time on a fresh session: once raw (every case's text sent as
// one WebSocket message, its replies compared by the vectors' matching rules), and once
// through Client.Call for the cases that are plain calls (the result, or the error's code,
// message and data, compared the same way). No case waits, so "no reply" is checked without
// a timer: after each case a marker call follows, and whatever arrives before the marker's
// reply is the case's reply.

package fixturebroker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
	"github.com/coder/websocket"
)

const (
	vectorPorts               = "31130-31139"
	assumedFirst, assumedLast = 15000, 15009
	actualFirst, actualLast   = 31130, 31139
)

type vectorCase struct {
	Name        string          `json:"name"`
	Request     json.RawMessage `json:"request"`
	RequestText *string         `json:"request_text"`
	Response    json.RawMessage `json:"response"`
}

type vectorFile struct {
	name  string
	cases []vectorCase
}

func loadVectors(t *testing.T) []vectorFile {
	files, err := filepath.Glob(filepath.Join("..", "protocol", "vectors", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vector files (%v)", err)
	}
	sort.Strings(files)
	var out []vectorFile
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Cases []vectorCase `json:"cases"`
		}
		if err := json.Unmarshal(text, &doc); err != nil || len(doc.Cases) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, vectorFile{filepath.Base(f), doc.Cases})
	}
	return out
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	default:
		return "object"
	}
}

type missing struct{}

func show(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// match returns "" when actual matches expected by the vectors' rules, else the first difference.
func match(expected, actual any, where string) string {
	if s, ok := expected.(string); ok && s == "*" {
		if _, gone := actual.(missing); gone {
			return where + ": missing"
		}
		return ""
	}
	if _, gone := actual.(missing); gone {
		return where + ": missing"
	}
	if kindOf(expected) != kindOf(actual) {
		return fmt.Sprintf("%s: expected %s %s, got %s %s", where, kindOf(expected), show(expected), kindOf(actual), show(actual))
	}
	switch e := expected.(type) {
	case []any:
		a := actual.([]any)
		if len(e) != len(a) {
			return fmt.Sprintf("%s: expected %d elements, got %d: %s", where, len(e), len(a), show(a))
		}
		for i := range e {
			if r := match(e[i], a[i], fmt.Sprintf("%s[%d]", where, i)); r != "" {
				return r
			}
		}
		return ""
	case map[string]any:
		a := actual.(map[string]any)
		open := e["*"] == "*"
		for k, ev := range e {
			if open && k == "*" {
				continue
			}
			av, ok := a[k]
			if !ok {
				av = missing{}
			}
			if r := match(ev, av, where+"."+k); r != "" {
				return r
			}
		}
		if !open {
			for k := range a {
				if _, ok := e[k]; !ok {
					return fmt.Sprintf("%s.%s: not expected (%s)", where, k, show(a[k]))
				}
			}
		}
		return ""
	default:
		if expected != actual {
			return fmt.Sprintf("%s: expected %s, got %s", where, show(expected), show(actual))
		}
		return ""
	}
}

// adjust replaces the assumed pool's first and last ports with the ones in use.
func adjust(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = adjust(x[i])
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			switch {
			case k == "first" && e == float64(assumedFirst):
				out[k] = float64(actualFirst)
			case k == "last" && e == float64(assumedLast):
				out[k] = float64(actualLast)
			default:
				out[k] = adjust(e)
			}
		}
		return out
	}
	return v
}

func decodeAny(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	return v
}

func TestMatchFollowsTheVectorRules(t *testing.T) {
	cases := []struct {
		expected, actual string
		ok               bool
	}{
		{`"*"`, `null`, true},
		{`{"a":"*"}`, `{"a":0}`, true},
		{`{"a":"*"}`, `{}`, false},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`{"a":1,"*":"*"}`, `{"a":1,"b":2}`, true},
		{`{"a":1,"*":"*"}`, `{"b":2}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`[1]`, `[1,1]`, false},
		{`1`, `true`, false},
		{`"1"`, `1`, false},
		{`null`, `{}`, false},
		{`[{"a":[1,"*"]}]`, `[{"a":[1,"x"]}]`, true},
	}
	for _, c := range cases {
		var e, a any
		json.Unmarshal([]byte(c.expected), &e)
		json.Unmarshal([]byte(c.actual), &a)
		if got := match(e, a, "$") == ""; got != c.ok {
			t.Errorf("match(%s, %s) = %v", c.expected, c.actual, got)
		}
	}
}

// rawSession is a WebSocket session that reads its messages in order.
type rawSession struct {
	conn   *websocket.Conn
	marker int
}

func (s *rawSession) exchange(t *testing.T, text []byte) []any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.marker++
	marker := fmt.Sprintf("vectors-marker-%d", s.marker)
	m, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": marker, "method": "broker.status"})
	if err := s.conn.Write(ctx, websocket.MessageText, text); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.Write(ctx, websocket.MessageText, m); err != nil {
		t.Fatal(err)
	}
	var replies []any
	for {
		_, data, err := s.conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg := decodeAny(t, data)
		if o, ok := msg.(map[string]any); ok && o["id"] == marker {
			return replies
		}
		replies = append(replies, msg)
	}
}

// giveBack releases what the session leased, checking each release, and closes it.
func (s *rawSession) giveBack(t *testing.T) {
	listed := s.exchange(t, []byte(`{"jsonrpc":"2.0","id":"list","method":"lease.list"}`))
	leases := listed[0].(map[string]any)["result"].(map[string]any)["leases"].([]any)
	for _, l := range leases {
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": "release", "method": "lease.release",
			"params": map[string]any{"lease": l.(map[string]any)["lease"]}})
		r := s.exchange(t, req)
		if r[0].(map[string]any)["result"].(map[string]any)["released"] != true {
			t.Errorf("release of %v: %s", l, show(r))
		}
	}
	s.conn.Close(websocket.StatusNormalClosure, "")
}

func TestVectorsRaw(t *testing.T) {
	b := start(t, vectorPorts, "--port-quarantine-ms", "0")
	for _, file := range loadVectors(t) {
		t.Run(file.name, func(t *testing.T) {
			ctx := ctxT(t)
			conn, _, err := websocket.Dial(ctx, b.URL, &websocket.DialOptions{Subprotocols: []string{fb.SubProtocol}})
			if err != nil {
				t.Fatal(err)
			}
			conn.SetReadLimit(-1)
			s := &rawSession{conn: conn}
			defer s.giveBack(t)
			for _, c := range file.cases {
				text := []byte(c.Request)
				if c.RequestText != nil {
					text = []byte(*c.RequestText)
				} else if len(text) == 0 {
					t.Fatalf("%s: neither request nor request_text", c.Name)
				}
				replies := s.exchange(t, text)
				expected := decodeAny(t, c.Response)
				if expected == nil {
					if len(replies) != 0 {
						t.Errorf("%s: a reply came where none must: %s", c.Name, show(replies))
					}
					continue
				}
				if len(replies) != 1 {
					t.Errorf("%s: expected one reply, got %s", c.Name, show(replies))
					continue
				}
				if d := match(adjust(expected), replies[0], "$"); d != "" {
					t.Errorf("%s: %s\nreply: %s", c.Name, d, show(replies[0]))
				}
			}
		})
	}
	checkNoLease(t, b.URL)
}

// plainCall returns a case's method and params when Client.Call can send it as it is:
// one call by name, with a numeric id, params absent or an object, a reply expected.
func plainCall(c vectorCase) (method string, params map[string]any, ok bool) {
	if c.RequestText != nil || len(c.Request) == 0 {
		return "", nil, false
	}
	var r map[string]any
	if json.Unmarshal(c.Request, &r) != nil {
		return "", nil, false
	}
	for k := range r {
		if k != "jsonrpc" && k != "id" && k != "method" && k != "params" {
			return "", nil, false
		}
	}
	method, _ = r["method"].(string)
	if _, num := r["id"].(float64); r["jsonrpc"] != "2.0" || method == "" || !num {
		return "", nil, false
	}
	if p, present := r["params"]; present {
		if params, ok = p.(map[string]any); !ok {
			return "", nil, false
		}
	}
	var resp map[string]any
	return method, params, json.Unmarshal(c.Response, &resp) == nil && resp != nil
}

func TestVectorsThroughTheClient(t *testing.T) {
	b := start(t, vectorPorts, "--port-quarantine-ms", "0")
	walked := 0
	for _, file := range loadVectors(t) {
		t.Run(file.name, func(t *testing.T) {
			ctx := ctxT(t)
			c, err := fb.Dial(ctx, b.URL, &fb.Options{Client: "vectors"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			for _, vc := range file.cases {
				method, params, ok := plainCall(vc)
				if !ok {
					continue
				}
				walked++
				expected := adjust(decodeAny(t, vc.Response)).(map[string]any)
				var raw json.RawMessage
				var p any
				if params != nil {
					p = params
				}
				err := c.Call(ctx, method, p, &raw)
				var fe *fb.Error
				switch {
				case err == nil:
					if _, ok := expected["result"]; !ok {
						t.Errorf("%s: expected an error, got %s", vc.Name, raw)
					} else if d := match(expected["result"], decodeAny(t, raw), "$.result"); d != "" {
						t.Errorf("%s: %s\nresult: %s", vc.Name, d, raw)
					}
				case errors.As(err, &fe) && fe.FromBroker():
					got := map[string]any{"code": float64(fe.Code), "message": fe.Message, "data": any(fe.Data)}
					if fe.Data == nil {
						delete(got, "data")
					}
					if _, ok := expected["error"]; !ok {
						t.Errorf("%s: expected a result, got %v", vc.Name, err)
					} else if d := match(expected["error"], got, "$.error"); d != "" {
						t.Errorf("%s: %s\nerror: %s", vc.Name, d, show(got))
					}
				default:
					t.Errorf("%s: %v", vc.Name, err)
				}
			}
		})
	}
	if walked == 0 {
		t.Fatal("no case was a plain call")
	}
	checkNoLease(t, b.URL)
}

// checkNoLease fails the test when the broker still holds a lease (the sessions closed).
func checkNoLease(t *testing.T, url string) {
	ctx := ctxT(t)
	observer := dial(t, url, &fb.Options{Client: "vectors-observer"})
	until(t, 5*time.Second, "no lease left", func() bool {
		s, err := observer.Status(ctx)
		return err == nil && s.Leases == 0
	})
}

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"

	"fixturebroker.dev/examples/todo/internal/api"
	"fixturebroker.dev/examples/todo/internal/testdb"
	"fixturebroker.dev/fixturebroker/fxb"
)

// serve leases a port and a database for the test, serves the API on that port and
// returns its base URL. The server stops when the test ends.
func serve(t *testing.T) string {
	t.Helper()
	l := fxb.Acquire(t, fxb.Port("http"), fxb.Postgres("db", fxb.Template(testdb.Template)))
	pool := testdb.Connect(t, l.URL("db"))
	ln, err := net.Listen("tcp", l.Addr("http"))
	if err != nil {
		t.Fatalf("the leased port is not free: %v", err)
	}
	srv := &http.Server{Handler: api.Handler(pool)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return "http://" + l.Addr("http")
}

func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, r)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

type list struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

type item struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

func TestHealthz(t *testing.T) {
	t.Parallel()
	base := serve(t)
	var body map[string]string
	if code := call(t, "GET", base+"/healthz", nil, &body); code != 200 || body["status"] != "ok" {
		t.Fatalf("%d %v", code, body)
	}
}

func TestCreateAListAndFillIt(t *testing.T) {
	t.Parallel()
	base := serve(t)
	var l list
	if code := call(t, "POST", base+"/lists", map[string]string{"name": "trip"}, &l); code != 201 || l.ID == 0 {
		t.Fatalf("%d %+v", code, l)
	}
	for _, title := range []string{"tickets", "passport"} {
		var it item
		if code := call(t, "POST", fmt.Sprintf("%s/lists/%d/items", base, l.ID), map[string]string{"title": title}, &it); code != 201 {
			t.Fatalf("%d", code)
		}
	}
	var items []item
	if code := call(t, "GET", fmt.Sprintf("%s/lists/%d/items", base, l.ID), nil, &items); code != 200 || len(items) != 2 {
		t.Fatalf("%d %+v", code, items)
	}
	var done item
	if code := call(t, "POST", fmt.Sprintf("%s/items/%d/done", base, items[0].ID), nil, &done); code != 200 || !done.Done {
		t.Fatalf("%d %+v", code, done)
	}
	var lists []list
	call(t, "GET", base+"/lists", nil, &lists)
	if len(lists) != 2 || lists[1].Name != "trip" {
		t.Fatalf("%+v", lists)
	}
}

func TestBadRequestsGetClearStatuses(t *testing.T) {
	t.Parallel()
	base := serve(t)
	cases := []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/lists", map[string]string{}, 400},
		{"POST", "/lists", map[string]string{"name": "inbox"}, 409},
		{"GET", "/lists/abc/items", nil, 400},
		{"GET", "/lists/424242/items", nil, 404},
		{"POST", "/lists/424242/items", map[string]string{"title": "x"}, 404},
		{"POST", "/items/424242/done", nil, 404},
		{"DELETE", "/lists/424242", nil, 404},
	}
	for _, c := range cases {
		var body map[string]string
		if code := call(t, c.method, base+c.path, c.body, &body); code != c.status || body["error"] == "" {
			t.Errorf("%s %s: %d %v, want %d", c.method, c.path, code, body, c.status)
		}
	}
}

func TestDeletingTheInboxEmptiesTheReport(t *testing.T) {
	t.Parallel()
	base := serve(t)
	var lists []list
	call(t, "GET", base+"/lists", nil, &lists)
	if code := call(t, "DELETE", fmt.Sprintf("%s/lists/%d", base, lists[0].ID), nil, nil); code != 204 {
		t.Fatalf("%d", code)
	}
	var lines []map[string]any
	if code := call(t, "GET", base+"/report", nil, &lines); code != 200 || len(lines) != 0 {
		t.Fatalf("%d %v", code, lines)
	}
}

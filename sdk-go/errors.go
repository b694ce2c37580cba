// errors.go: Error, the one error type of the client, for the broker's errors and its own.
//
// The broker's errors carry a numeric JSON-RPC code and a stable name in data.name
// (protocol/README.md); callers branch on those, never on the message. Failures on the
// client's side (no connection, no reply in time, a closed client) use the same type with
// small negative codes, the numbers the C, JS and Python SDKs use, so a test can tell "the
// broker said no" from "the broker never answered".

package fixturebroker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Client-side error names. Their codes are in ClientErrors; the broker's own names are
// in protocol/openrpc.json (PORTS_EXHAUSTED, LEASE_NOT_FOUND, ...).
const (
	InvalidArgument = "INVALID_ARGUMENT"
	ConnectFailed   = "CONNECT_FAILED"
	ConnectionLost  = "CONNECTION_LOST"
	Timeout         = "TIMEOUT"
	Cancelled       = "CANCELLED"
	ProtocolError   = "PROTOCOL_ERROR"
	ClientClosed    = "CLIENT_CLOSED"
)

// ClientErrors maps the client-side error names to their codes. CANCELLED (the caller's
// context was cancelled) shares TIMEOUT's code: in both the caller gave up waiting.
var ClientErrors = map[string]int{
	InvalidArgument: -1,
	ConnectFailed:   -3,
	ConnectionLost:  -3,
	Timeout:         -4,
	Cancelled:       -4,
	ProtocolError:   -6,
	ClientClosed:    -7,
}

// Error is an error the broker sent in reply to a call, or one the client raised.
//
// Use errors.As to get at it, and branch on Name or Code:
//
//	var fe *fixturebroker.Error
//	if errors.As(err, &fe) && fe.Name == "PORTS_EXHAUSTED" { ... }
//
// errors.Is(err, &fixturebroker.Error{Name: "LEASE_NOT_FOUND"}) matches by name too.
type Error struct {
	Code    int            // the numeric code: the broker's, or a negative client-side one
	Name    string         // the stable symbolic name ("PORTS_EXHAUSTED", "CONNECTION_LOST")
	Message string         // the text; never branch on it
	Data    map[string]any // the error's data as the broker sent it (nil for client-side errors)
	Method  string         // the method whose call failed
	cause   error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Method != "" && !strings.HasPrefix(e.Message, e.Method+":") {
		b.WriteString(e.Method)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	fmt.Fprintf(&b, " (%s, %d)", e.Name, e.Code)
	if tail := FormatLogTail(e.Data["log_tail"]); tail != "" {
		b.WriteString("\n--- log tail ---\n")
		b.WriteString(tail)
	}
	return b.String()
}

// FromBroker reports whether the broker sent this error (false: the client raised it).
func (e *Error) FromBroker() bool {
	_, client := ClientErrors[e.Name]
	return !client
}

// Unwrap returns what caused a client-side error (a network error, the context's error).
func (e *Error) Unwrap() error { return e.cause }

// Is matches a target *Error by name: errors.Is(err, &Error{Name: "LEASE_NOT_FOUND"}).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name != "" && t.Name == e.Name
}

// IsName reports whether err is (or wraps) an *Error with one of the names.
func IsName(err error, names ...string) bool {
	var fe *Error
	if !errors.As(err, &fe) {
		return false
	}
	for _, n := range names {
		if fe.Name == n {
			return true
		}
	}
	return false
}

func clientError(name, method string, cause error, format string, args ...any) *Error {
	return &Error{Code: ClientErrors[name], Name: name, Message: fmt.Sprintf(format, args...),
		Method: method, cause: cause}
}

// rpcError builds the error for a JSON-RPC error object the broker sent in reply to method.
func rpcError(obj map[string]any, method string) *Error {
	e := &Error{Name: "UNKNOWN_ERROR", Method: method, Message: method + ": broker error"}
	if code, ok := obj["code"].(float64); ok {
		e.Code = int(code)
	}
	if msg, ok := obj["message"].(string); ok {
		e.Message = msg
	}
	if data, ok := obj["data"].(map[string]any); ok {
		e.Data = data
		if name, ok := data["name"].(string); ok {
			e.Name = name
		}
	}
	return e
}

// contextError is the error of a call whose context ended before the reply.
func contextError(ctx context.Context, method, what string) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return clientError(Timeout, method, ctx.Err(), "%s: %s before the context's deadline", method, what)
	}
	return clientError(Cancelled, method, ctx.Err(), "%s: the context was cancelled (%s)", method, what)
}

// FormatLogTail renders a server's log tail as the broker sent it (a string, a list of
// lines, or an object of streams) as text; "" when there is none.
func FormatLogTail(tail any) string {
	switch t := tail.(type) {
	case nil:
		return ""
	case string:
		return strings.TrimRight(t, " \t\r\n")
	case []any:
		lines := make([]string, len(t))
		for i, l := range t {
			lines[i] = fmt.Sprint(l)
		}
		return strings.TrimRight(strings.Join(lines, "\n"), " \t\r\n")
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			if body := FormatLogTail(t[k]); body != "" {
				parts = append(parts, "["+k+"]\n"+body)
			}
		}
		return strings.Join(parts, "\n")
	default:
		return fmt.Sprint(t)
	}
}

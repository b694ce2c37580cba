// Command tlsworker is an sdk-go worker for the TLS tests of tests/multihost/test_tls.py
// (built by mk/multihost.mk): it dials $FIXTURE_BROKER_URL with the TLS settings of the
// environment ($FIXTURE_BROKER_CA, _CERT, _KEY) and the token of $FIXTURE_BROKER_TOKEN,
// leases one port fixture "p", releases it and prints {"session", "port"}, exit 0; on
// failure it prints {"name", "code", "error"} and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	fixturebroker "fixturebroker.dev/fixturebroker"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx)
	if err != nil {
		var fe *fixturebroker.Error
		out = map[string]any{"error": err.Error()}
		if errors.As(err, &fe) {
			out["name"], out["code"] = fe.Name, fe.Code
		}
	}
	text, _ := json.Marshal(out)
	fmt.Println(string(text))
	if err != nil {
		os.Exit(1)
	}
}

func run(ctx context.Context) (map[string]any, error) {
	c, err := fixturebroker.Dial(ctx, "", &fixturebroker.Options{Client: "go-tls-worker"})
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	lease, err := c.Acquire(ctx, map[string]fixturebroker.Spec{"p": {Kind: "port"}}, nil)
	if err != nil {
		return nil, err
	}
	port := lease.Port("p")
	if _, err := lease.Release(ctx); err != nil {
		return nil, err
	}
	return map[string]any{"session": c.Session(), "port": port}, nil
}

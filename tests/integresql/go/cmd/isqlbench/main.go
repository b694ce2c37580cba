// isqlbench: "get test database" latency and churn (get + give back) through two servers
// that speak IntegreSQL's REST API, with the same client (integresql-client-go v1.0.0)
// and the same template, one after the other in one run; prints both and their ratios.
//
//	isqlbench -a broker=http://127.0.0.1:7357 -b integresql=http://127.0.0.1:5000
//
// Printed, never asserted: tests/integresql/bench.sh runs it from `make bench`.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	integresql "github.com/allaboutapps/integresql-client-go"
	_ "github.com/lib/pq"
)

type target struct{ name, base string }

type result struct {
	get, churn    []time.Duration // per operation
	churnPerSec   float64         // cycles per second, all workers together
	parallelCycle []time.Duration
}

func parseTarget(s string) target {
	name, base, ok := strings.Cut(s, "=")
	if !ok {
		fmt.Fprintf(os.Stderr, "isqlbench: %q: expected NAME=URL\n", s)
		os.Exit(2)
	}
	return target{name, strings.TrimRight(base, "/")}
}

func migrate(db *sql.DB) error {
	_, err := db.Exec(`CREATE TABLE pilots (id serial PRIMARY KEY, name text NOT NULL, born date);
		CREATE TABLE flights (id serial PRIMARY KEY, pilot int REFERENCES pilots, miles int);
		CREATE INDEX ON flights (pilot);
		INSERT INTO pilots (name, born) SELECT 'pilot ' || i, date '1900-01-01' + i FROM generate_series(1, 200) i;
		INSERT INTO flights (pilot, miles) SELECT 1 + i % 200, i FROM generate_series(1, 2000) i`)
	return err
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "isqlbench: %s: %v\n", what, err)
		os.Exit(1)
	}
}

func recreate(ctx context.Context, base, hash string, id int) error {
	req, _ := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/api/v1/templates/%s/tests/%d/recreate", base, hash, id), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("recreate: status %d", resp.StatusCode)
	}
	return nil
}

func run(t target, n, workers int) result {
	ctx := context.Background()
	c, err := integresql.NewClient(integresql.ClientConfig{BaseURL: t.base + "/api", APIVersion: "v1"})
	must(err, t.name)
	hash := fmt.Sprintf("isqlbench-%d-%d", os.Getpid(), time.Now().UnixNano())
	must(c.SetupTemplateWithDBClient(ctx, hash, migrate), t.name+": template")
	var r result
	// Warm-up: the pools fill, connections open.
	for i := 0; i < 10; i++ {
		td, err := c.GetTestDatabase(ctx, hash)
		must(err, t.name+": warm-up get")
		must(recreate(ctx, t.base, hash, td.ID), t.name+": warm-up recreate")
	}
	time.Sleep(time.Second)
	// get: one at a time, each given back (untimed) before the next.
	for i := 0; i < n; i++ {
		t0 := time.Now()
		td, err := c.GetTestDatabase(ctx, hash)
		r.get = append(r.get, time.Since(t0))
		must(err, t.name+": get")
		must(c.ReturnTestDatabase(ctx, hash, td.ID), t.name+": return")
	}
	time.Sleep(time.Second)
	// churn: get + recreate, one at a time.
	for i := 0; i < n; i++ {
		t0 := time.Now()
		td, err := c.GetTestDatabase(ctx, hash)
		must(err, t.name+": churn get")
		must(recreate(ctx, t.base, hash, td.ID), t.name+": churn recreate")
		r.churn = append(r.churn, time.Since(t0))
	}
	time.Sleep(time.Second)
	// parallel churn: workers at once, as parallel test processes do.
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				t0 := time.Now()
				td, err := c.GetTestDatabase(ctx, hash)
				must(err, t.name+": parallel get")
				must(recreate(ctx, t.base, hash, td.ID), t.name+": parallel recreate")
				mu.Lock()
				r.parallelCycle = append(r.parallelCycle, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.churnPerSec = float64(len(r.parallelCycle)) / time.Since(start).Seconds()
	must(c.ResetAllTracking(ctx), t.name+": reset")
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func main() {
	a := flag.String("a", "", "NAME=URL of the server measured (the broker)")
	b := flag.String("b", "", "NAME=URL of the baseline (IntegreSQL)")
	n := flag.Int("n", 200, "operations per phase")
	workers := flag.Int("workers", 4, "workers in the parallel churn")
	flag.Parse()
	ta, tb := parseTarget(*a), parseTarget(*b)
	rb := run(tb, *n, *workers)
	ra := run(ta, *n, *workers)
	fmt.Printf("IntegreSQL API, same client (integresql-client-go v1.0.0), same template, %d ops per phase\n", *n)
	fmt.Printf("  %-34s %14s %14s %8s\n", "", ta.name, tb.name, "ratio")
	row := func(label string, x, y time.Duration) {
		fmt.Printf("  %-34s %14s %14s %7.2fx\n", label, ms(x), ms(y), float64(y)/float64(x))
	}
	row("get test database p50", pct(ra.get, .5), pct(rb.get, .5))
	row("get test database p99", pct(ra.get, .99), pct(rb.get, .99))
	row("churn (get + recreate) p50", pct(ra.churn, .5), pct(rb.churn, .5))
	row("churn (get + recreate) p99", pct(ra.churn, .99), pct(rb.churn, .99))
	row(fmt.Sprintf("churn, %d workers, p50", *workers), pct(ra.parallelCycle, .5), pct(rb.parallelCycle, .5))
	row(fmt.Sprintf("churn, %d workers, p99", *workers), pct(ra.parallelCycle, .99), pct(rb.parallelCycle, .99))
	fmt.Printf("  %-34s %10.1f /s  %10.1f /s %7.2fx\n", fmt.Sprintf("churn, %d workers, throughput", *workers),
		ra.churnPerSec, rb.churnPerSec, ra.churnPerSec/rb.churnPerSec)
	fmt.Printf("  (ratio: %s's time over %s's, or %s's throughput over %s's; above 1: %s is faster)\n",
		tb.name, ta.name, ta.name, tb.name, ta.name)
}

// Command acquire times the acquire round trip through the Go client: N acquires of one
// port fixture, each released before the next, after a warm-up, against the broker at
// $FIXTURE_BROKER_URL (or -url). It prints one JSON line:
//
//	{"client":"go","n":N,"p50_us":...,"p99_us":...,"mean_us":...}
//
// Each sample is one acquire and the release of its lease, as in the other clients' benches
// (tests/bench/clients.sh runs them side by side).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	fb "fixturebroker.dev/fixturebroker"
)

func main() {
	url := flag.String("url", os.Getenv("FIXTURE_BROKER_URL"), "the broker's URL (default $FIXTURE_BROKER_URL)")
	n := flag.Int("n", 2000, "timed acquires")
	warmup := flag.Int("warmup", 200, "untimed acquires first")
	flag.Parse()
	if *url == "" || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: FIXTURE_BROKER_URL=ws://... acquire [-n N] [-warmup N]")
		os.Exit(2)
	}
	if err := bench(*url, *n, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "acquire:", err)
		os.Exit(1)
	}
}

func bench(url string, n, warmup int) error {
	ctx := context.Background()
	c, err := fb.Dial(ctx, url, &fb.Options{Client: "bench-go"})
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	want := map[string]fb.Spec{"p": fb.Port()}
	samples := make([]time.Duration, 0, n)
	for i := 0; i < warmup+n; i++ {
		start := time.Now()
		l, err := c.Acquire(ctx, want, &fb.AcquireOptions{Wait: 10 * time.Second})
		if err != nil {
			return err
		}
		if _, err := l.Release(ctx); err != nil {
			return err
		}
		if i >= warmup {
			samples = append(samples, time.Since(start))
		}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	pct := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	line, _ := json.Marshal(struct {
		Client string  `json:"client"`
		N      int     `json:"n"`
		P50    float64 `json:"p50_us"`
		P99    float64 `json:"p99_us"`
		Mean   float64 `json:"mean_us"`
	}{"go", n, round(us(pct(0.50))), round(us(pct(0.99))), round(us(sum / time.Duration(len(samples))))})
	fmt.Println(string(line))
	return nil
}

func round(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

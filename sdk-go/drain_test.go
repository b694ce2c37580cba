// drain_test.go: the client against a draining broker (SIGTERM with --drain-timeout-ms).
//
// A client holding a lease keeps working through the drain (renew, one more acquire,
// release) and the broker exits 0 once it has released; a client holding nothing is closed
// with 1001, waits while the draining broker refuses it, and reports its session lost once a
// new broker answers on the same address (as behind a load balancer).

package fixturebroker_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
)

func TestAHeldLeaseSurvivesTheDrainAndAnIdleSessionIsReportedLostElsewhere(t *testing.T) {
	const listen = "127.0.0.1:31141"
	args := []string{"--ports", "31142-31145", "--state-dir", stateDir(t), "--listen", listen}
	// --grace-ms 0: the client, told so in session.hello, takes RESUME_UNKNOWN from the
	// next broker as final at once (no retries within a grace period, each a session there).
	b, err := fb.StartBroker(context.Background(),
		&fb.BrokerOptions{Args: append(args, "--drain-timeout-ms", "60000", "--grace-ms", "0")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop(30 * time.Second) }) // exited below; this is for a failure before
	ctx := ctxT(t)
	// The idle client connects first, so its session is s-1, the id the new broker gives
	// the first session it opens: the client must tell the lost session by resumed, not by
	// its id alone.
	lostCh := make(chan []*fb.Lease, 1)
	idle := dial(t, b.URL, &fb.Options{OnSessionLost: func(l []*fb.Lease) { lostCh <- l }})
	holder := dial(t, b.URL, nil)
	l, err := holder.Acquire(ctx, map[string]fb.Spec{"http": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idleSession := idle.Session()
	// To the watchdog, which passes SIGTERM on to the broker.
	if err := syscall.Kill(b.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	until(t, 10*time.Second, "the idle client was closed", func() bool { return !idle.Connected() })
	st, err := holder.Status(ctx)
	if err != nil || !st.Draining || st.ShuttingDown || st.DrainRemainingMs == nil ||
		*st.DrainRemainingMs <= 0 || *st.DrainRemainingMs > 60000 {
		t.Fatalf("%+v, %v", st, err)
	}
	if _, err := l.Renew(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	more, err := holder.Acquire(ctx, map[string]fb.Spec{"more": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := more.Release(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
	select {
	case <-b.Exited():
		t.Fatal("the broker exited while a lease was held")
	default:
	}
	if idle.Connected() {
		t.Fatal("the idle client is connected to a draining broker")
	}

	if ok, err := l.Release(ctx); !ok || err != nil {
		t.Fatal(ok, err)
	}
	select {
	case <-b.Exited():
	case <-time.After(15 * time.Second):
		t.Fatal("the broker did not exit once no lease was held")
	}
	if err := b.Stop(time.Second); err != nil {
		t.Fatal(err)
	}
	holder.Close(ctx) // so that the idle client opens the next broker's first session
	second := start(t, "31142-31145", "--listen", listen)
	if second.URL != b.URL {
		t.Fatalf("%s, not %s", second.URL, b.URL)
	}
	select {
	case lost := <-lostCh:
		if len(lost) != 0 {
			t.Fatalf("lost %v", lost)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the idle client got no fresh session on the new broker")
	}
	until(t, 10*time.Second, "the idle client is back", func() bool { return idle.Connected() })
	if _, lost := idle.Reconnects(); lost != 1 {
		t.Fatalf("%d sessions lost (was %s, now %s)", lost, idleSession, idle.Session())
	}
}

// process.go: finds the fixture-broker binary, starts a private broker, stops it.
//
// Used by the fxb testing helper when $FIXTURE_BROKER_URL is not set, and by this module's
// own tests. The broker listens on 127.0.0.1 with port 0 and prints `listening
// ws://127.0.0.1:<port>` on stdout once it accepts connections; that line is the
// readiness signal. Its log (stderr) goes to a file. As in sdk-js, the broker runs under a
// small sh watchdog that holds a pipe from this process: when this process exits for any
// reason (a test binary has no exit hook; a SIGKILL from `go test -timeout` neither), the
// pipe closes and the watchdog sends the broker SIGTERM, so no broker outlives the process
// that started it. Neither the watchdog nor the broker holds this process's stdout or
// stderr, so `go test` never waits for them.

package fixturebroker

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// $1 is the broker, the rest its flags. SIGTERM/SIGINT/SIGHUP to the watchdog, or the end
// of its stdin, stop the broker; the watchdog exits with the broker's status. A wait cut
// short by the trap says 143; the last wait asks again once the broker is gone (dash
// remembers a child's status; a shell that does not says 127, and the last one stands).
// $FXB_WATCHDOG_LOG names a log file of the starter's own, removed after a clean exit even
// when the starter is gone by then.
const watchdog = `b="$1"; shift
log="$FXB_WATCHDOG_LOG"; unset FXB_WATCHDOG_LOG
exec 3<&0
"$b" "$@" </dev/null 3<&- &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT HUP
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) &
wait "$pid"; status=$?
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done
wait "$pid" 2>/dev/null; s=$?; [ "$s" = 127 ] || status=$s
if [ "$status" = 0 ] && [ -n "$log" ]; then rm -f "$log"; fi
exit "$status"`

// FindBroker returns the broker binary to start: bin if given, else $FIXTURE_BROKER_BIN,
// else fixture-broker on PATH, else build/fixture-broker of the checkout this package's
// source is in. It is an error when none is there.
func FindBroker(bin string) (string, error) {
	explicit, from := bin, "the bin argument"
	if explicit == "" {
		explicit, from = os.Getenv("FIXTURE_BROKER_BIN"), "FIXTURE_BROKER_BIN"
	}
	if explicit != "" {
		abs, err := filepath.Abs(explicit)
		if err == nil && isExecutable(abs) {
			return abs, nil
		}
		return "", fmt.Errorf("fixture-broker: %s (from %s) is not an executable file", explicit, from)
	}
	if p, err := exec.LookPath("fixture-broker"); err == nil {
		return filepath.Abs(p)
	}
	inRepo := ""
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		inRepo = filepath.Join(filepath.Dir(filepath.Dir(file)), "build", "fixture-broker")
		if isExecutable(inRepo) {
			return inRepo, nil
		}
	}
	return "", fmt.Errorf("fixture-broker: no broker binary found; set FIXTURE_BROKER_URL to a running "+
		"broker or FIXTURE_BROKER_BIN to the binary (looked on PATH and at %q)", inRepo)
}

func isExecutable(file string) bool {
	st, err := os.Stat(file)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// BrokerOptions configure StartBroker.
type BrokerOptions struct {
	Bin  string   // see FindBroker
	Args []string // extra flags, after those of $FIXTURE_BROKER_ARGS
	// LogFile receives the broker's log (default $FIXTURE_BROKER_LOG, else a new file in
	// the temporary directory, removed when the broker stops cleanly).
	LogFile      string
	Env          []string      // the broker's environment (default this process's)
	StartTimeout time.Duration // default 60 s
}

// BrokerProcess is a broker StartBroker started.
type BrokerProcess struct {
	URL     string
	PID     int // the watchdog's
	LogFile string

	cmd      *exec.Cmd
	keep     *os.File // the watchdog's stdin: its end stops the broker
	ownLog   bool
	exited   chan struct{}
	exitErr  error
	stopOnce sync.Once
}

var listening = regexp.MustCompile(`^listening (wss?://\S+)\s*$`)

// StartBroker starts a broker on 127.0.0.1:0 and returns once it listens. The broker
// stops at once on SIGTERM (--drain-timeout-ms 0: a run's own broker has no other broker
// to hand its workers to); FIXTURE_BROKER_ARGS and opts.Args come after and may override.
func StartBroker(ctx context.Context, opts *BrokerOptions) (*BrokerProcess, error) {
	if opts == nil {
		opts = &BrokerOptions{}
	}
	bin, err := FindBroker(opts.Bin)
	if err != nil {
		return nil, err
	}
	args := append([]string{"--listen", "127.0.0.1:0", "--drain-timeout-ms", "0"},
		strings.Fields(os.Getenv("FIXTURE_BROKER_ARGS"))...)
	args = append(args, opts.Args...)
	p := &BrokerProcess{exited: make(chan struct{}), LogFile: opts.LogFile}
	if p.LogFile == "" {
		p.LogFile = os.Getenv("FIXTURE_BROKER_LOG")
	}
	if p.LogFile == "" {
		f, err := os.CreateTemp("", fmt.Sprintf("fixture-broker-%d-*.log", os.Getpid()))
		if err != nil {
			return nil, err
		}
		f.Close()
		p.LogFile, p.ownLog = f.Name(), true
	}
	logf, err := os.OpenFile(p.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer stdinR.Close()
	cmd := exec.Command("/bin/sh", append([]string{"-c", watchdog, "fixture-broker-watchdog", bin}, args...)...)
	cmd.Stdin = stdinR
	cmd.Stderr = logf
	cmd.Env = opts.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if p.ownLog {
		cmd.Env = append(cmd.Env, "FXB_WATCHDOG_LOG="+p.LogFile)
	}
	// Its own process group, so that the last resort can kill the broker with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		stdinW.Close()
		return nil, err
	}
	cmd.Stdout = stdoutW
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		stdinW.Close()
		stdout.Close()
		return nil, fmt.Errorf("fixture-broker: cannot start %s: %w", bin, err)
	}
	p.cmd, p.keep, p.PID = cmd, stdinW, cmd.Process.Pid
	describe := func() string {
		tail := ""
		if b, err := os.ReadFile(p.LogFile); err == nil {
			if len(b) > 4096 {
				b = b[len(b)-4096:]
			}
			tail = strings.TrimSpace(string(b))
		}
		return fmt.Sprintf("%s %s (log: %s)\n%s", bin, strings.Join(args, " "), p.LogFile, tail)
	}

	found := make(chan string, 1)
	go func() {
		defer stdout.Close()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
				break
			}
		}
		// Whatever else it prints is read and dropped, so the broker never blocks on it.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case p.URL = <-found:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("fixture-broker exited before it listened (%v): %s", p.exitErr, describe())
	case <-timer.C:
		err = fmt.Errorf("fixture-broker did not start listening within %s: %s", timeout, describe())
	case <-ctx.Done():
		err = fmt.Errorf("fixture-broker: %w while starting: %s", ctx.Err(), describe())
	}
	_ = p.Stop(10 * time.Second)
	return nil, err
}

// Stop sends the broker SIGTERM (it releases every lease and exits), kills its process
// group if it has not exited within grace, and waits. It returns nil when the broker exited
// with status 0. Stopping twice returns the first result.
func (p *BrokerProcess) Stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		// One signal: a second one makes the broker stop at once, without its clean-up.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.exited:
		case <-t.C:
			_ = syscall.Kill(-p.PID, syscall.SIGKILL)
			<-p.exited
		}
		t.Stop()
		p.keep.Close()
		if p.exitErr == nil && p.ownLog {
			os.Remove(p.LogFile)
		}
	})
	if p.exitErr != nil {
		return fmt.Errorf("fixture-broker: %w (log: %s)", p.exitErr, p.LogFile)
	}
	return nil
}

// Exited is closed once the broker (its watchdog) has exited.
func (p *BrokerProcess) Exited() <-chan struct{} { return p.exited }

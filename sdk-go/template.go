// template.go: PostgreSQL templates built by a client (pg.template.ensure, finish, discard),
// and HashFS, a stable hash of migration files to key them by.

package fixturebroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"time"
)

// TemplateBuild is the private build database pg.template.ensure hands its builder.
type TemplateBuild struct {
	URL      string `json:"url"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Database string `json:"database"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// DefaultTemplateWait is how long EnsureTemplate waits for another caller's build.
const DefaultTemplateWait = 5 * time.Minute

// EnsureTemplate makes sure the PostgreSQL template with this hash exists. Exactly one
// caller across all clients builds it: for that caller build runs against the private
// build database, then the template is finished; if build fails, the build is discarded
// (the next waiter builds) and its error returned. Every other caller waits (up to wait;
// 0: DefaultTemplateWait) until the template is ready. built says whether this call built it.
func (c *Client) EnsureTemplate(ctx context.Context, hash string, wait time.Duration,
	build func(ctx context.Context, db TemplateBuild) error) (built bool, err error) {
	const method = "pg.template.ensure"
	if wait <= 0 {
		wait = DefaultTemplateWait
	}
	raw, err := c.call(ctx, method, map[string]any{"hash": hash, "wait_ms": wait.Milliseconds()}, wait)
	if err != nil {
		return false, err
	}
	var r struct {
		State string `json:"state"`
		TemplateBuild
	}
	if err := json.Unmarshal(raw, &r); err != nil || (r.State != "ready" && (r.State != "build" || r.URL == "")) {
		return false, clientError(ProtocolError, method, err, "%s: unexpected reply %s", method, raw)
	}
	if r.State == "ready" {
		return false, nil
	}
	if err := build(ctx, r.TemplateBuild); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseOnClose)
		_ = c.DiscardTemplate(dctx, hash)
		cancel()
		return false, fmt.Errorf("building template %s: %w", hash, err)
	}
	return true, c.FinishTemplate(ctx, hash)
}

// FinishTemplate marks the template this session is building ready (pg.template.finish).
func (c *Client) FinishTemplate(ctx context.Context, hash string) error {
	return c.Call(ctx, "pg.template.finish", map[string]any{"hash": hash}, nil)
}

// DiscardTemplate gives up this session's build of the template (pg.template.discard); the
// next waiting caller becomes the builder.
func (c *Client) DiscardTemplate(ctx context.Context, hash string) error {
	return c.Call(ctx, "pg.template.discard", map[string]any{"hash": hash}, nil)
}

// HashFS returns the sha256 (hex) of the files of fsys matching patterns (fs.Glob syntax):
// for each, in order of path, its path, its size and its bytes. It is the hash sdk-js's
// hashFiles gives the same files (with paths relative to the same directory). It is an
// error when nothing matches.
func HashFS(fsys fs.FS, patterns ...string) (string, error) {
	files, err := MatchFS(fsys, patterns...)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range files {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(body))
		h.Write(body)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MatchFS returns the regular files of fsys matching any of patterns, sorted and without
// duplicates; an error when nothing matches.
func MatchFS(fsys fs.FS, patterns ...string) ([]string, error) {
	seen := map[string]bool{}
	var files []string
	for _, p := range patterns {
		matches, err := fs.Glob(fsys, p)
		if err != nil {
			return nil, clientError(InvalidArgument, "", err, "bad pattern %q: %v", p, err)
		}
		for _, m := range matches {
			st, err := fs.Stat(fsys, m)
			if err != nil || !st.Mode().IsRegular() || seen[m] {
				continue
			}
			seen[m] = true
			files = append(files, m)
		}
	}
	if len(files) == 0 {
		return nil, clientError(InvalidArgument, "", nil, "no file matches %q", patterns)
	}
	sort.Strings(files)
	return files, nil
}

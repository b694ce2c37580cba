package report_test

import (
	"testing"

	"fixturebroker.dev/examples/todo/internal/report"
	"fixturebroker.dev/examples/todo/internal/store"
	"fixturebroker.dev/examples/todo/internal/testdb"
)

func TestSummaryCountsOpenAndDonePerList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.Pool(t)
	s := store.New(pool)
	l, _ := s.CreateList(ctx, "errands")
	a, _ := s.AddItem(ctx, l.ID, "bank")
	s.AddItem(ctx, l.ID, "post office")
	s.Complete(ctx, a.ID)
	lines, err := report.Summary(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	want := []report.Line{{List: "errands", Open: 1, Done: 1}, {List: "inbox", Open: 1, Done: 0}}
	if len(lines) != 2 || lines[0] != want[0] || lines[1] != want[1] {
		t.Fatalf("%+v", lines)
	}
}

func TestPurgeDoneDeletesOnlyDoneItems(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.Pool(t)
	s := store.New(pool)
	l, _ := s.CreateList(ctx, "week")
	for i := 0; i < 5; i++ {
		it, _ := s.AddItem(ctx, l.ID, "thing")
		if i%2 == 0 {
			s.Complete(ctx, it.ID)
		}
	}
	n, err := report.PurgeDone(ctx, pool)
	if err != nil || n != 3 {
		t.Fatalf("%d %v", n, err)
	}
	lines, _ := report.Summary(ctx, pool)
	if lines[1].List != "week" || lines[1].Open != 2 || lines[1].Done != 0 {
		t.Fatalf("%+v", lines)
	}
}

func TestAnEmptyDatabaseHasOnlyTheInbox(t *testing.T) {
	t.Parallel()
	pool := testdb.Pool(t)
	if _, err := pool.Exec(t.Context(), "DELETE FROM items"); err != nil {
		t.Fatal(err)
	}
	lines, err := report.Summary(t.Context(), pool)
	if err != nil || len(lines) != 1 || lines[0] != (report.Line{List: "inbox"}) {
		t.Fatalf("%+v %v", lines, err)
	}
}

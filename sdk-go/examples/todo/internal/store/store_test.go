package store_test

import (
	"context"
	"errors"
	"testing"

	"fixturebroker.dev/examples/todo/internal/store"
	"fixturebroker.dev/examples/todo/internal/testdb"
)

// Every test runs in parallel on a database of its own, cloned from the migrated template:
// each starts from the seed (the inbox with one item) whatever the others write.

func TestTheSeedHasAnInboxWithOneItem(t *testing.T) {
	t.Parallel()
	s := store.New(testdb.Pool(t))
	lists, err := s.Lists(t.Context())
	if err != nil || len(lists) != 1 || lists[0].Name != "inbox" {
		t.Fatalf("%+v %v", lists, err)
	}
	items, err := s.Items(t.Context(), lists[0].ID)
	if err != nil || len(items) != 1 || items[0].Done {
		t.Fatalf("%+v %v", items, err)
	}
}

func TestCreateListRefusesADuplicateName(t *testing.T) {
	t.Parallel()
	s := store.New(testdb.Pool(t))
	if _, err := s.CreateList(t.Context(), "groceries"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateList(t.Context(), "groceries"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("%v", err)
	}
	lists, _ := s.Lists(t.Context())
	if len(lists) != 2 {
		t.Fatalf("%+v", lists)
	}
}

func TestItemsBelongToTheirList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := store.New(testdb.Pool(t))
	work, _ := s.CreateList(ctx, "work")
	home, _ := s.CreateList(ctx, "home")
	for _, title := range []string{"report", "email", "review"} {
		if _, err := s.AddItem(ctx, work.ID, title); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AddItem(ctx, home.ID, "dishes"); err != nil {
		t.Fatal(err)
	}
	items, err := s.Items(ctx, work.ID)
	if err != nil || len(items) != 3 || items[0].Title != "report" || items[2].Title != "review" {
		t.Fatalf("%+v %v", items, err)
	}
	if _, err := s.AddItem(ctx, 99999, "nowhere"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v", err)
	}
	if _, err := s.Items(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v", err)
	}
}

func TestCompleteKeepsTheFirstCompletionTime(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := store.New(testdb.Pool(t))
	l, _ := s.CreateList(ctx, "chores")
	it, _ := s.AddItem(ctx, l.ID, "laundry")
	first, err := s.Complete(ctx, it.ID)
	if err != nil || !first.Done || first.DoneAt == nil {
		t.Fatalf("%+v %v", first, err)
	}
	again, err := s.Complete(ctx, it.ID)
	if err != nil || !again.DoneAt.Equal(*first.DoneAt) {
		t.Fatalf("%+v %v", again, err)
	}
	if _, err := s.Complete(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v", err)
	}
}

func TestDeleteListTakesItsItems(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := testdb.Pool(t)
	s := store.New(pool)
	lists, _ := s.Lists(ctx)
	if err := s.DeleteList(ctx, lists[0].ID); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d items left (%v)", n, err)
	}
	if err := s.DeleteList(ctx, lists[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%v", err)
	}
}

func TestManyWritersOnOneDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := store.New(testdb.Pool(t))
	l, _ := s.CreateList(ctx, "busy")
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		go func() {
			_, err := s.AddItem(ctx, l.ID, "task")
			errs <- err
		}()
	}
	for i := 0; i < 20; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	items, _ := s.Items(ctx, l.ID)
	if len(items) != 20 {
		t.Fatalf("%d items", len(items))
	}
}

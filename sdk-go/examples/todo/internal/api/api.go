// Package api is the service's HTTP interface over the store, in JSON.
package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"fixturebroker.dev/examples/todo/internal/report"
	"fixturebroker.dev/examples/todo/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Handler serves:
//
//	GET    /healthz
//	GET    /lists               POST /lists {"name"}
//	DELETE /lists/{id}
//	GET    /lists/{id}/items    POST /lists/{id}/items {"title"}
//	POST   /items/{id}/done
//	GET    /report
func Handler(pool *pgxpool.Pool) http.Handler {
	s := store.New(pool)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := pool.Ping(r.Context()); err != nil {
			reply(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		reply(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /lists", func(w http.ResponseWriter, r *http.Request) {
		lists, err := s.Lists(r.Context())
		answer(w, http.StatusOK, lists, err)
	})
	mux.HandleFunc("POST /lists", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Name string `json:"name"`
		}
		if !decode(w, r, &body) || !required(w, "name", body.Name) {
			return
		}
		l, err := s.CreateList(r.Context(), body.Name)
		answer(w, http.StatusCreated, l, err)
	})
	mux.HandleFunc("DELETE /lists/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if ok {
			answer(w, http.StatusNoContent, nil, s.DeleteList(r.Context(), id))
		}
	})
	mux.HandleFunc("GET /lists/{id}/items", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := pathID(w, r); ok {
			items, err := s.Items(r.Context(), id)
			answer(w, http.StatusOK, items, err)
		}
	})
	mux.HandleFunc("POST /lists/{id}/items", func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		var body struct {
			Title string `json:"title"`
		}
		if !ok || !decode(w, r, &body) || !required(w, "title", body.Title) {
			return
		}
		it, err := s.AddItem(r.Context(), id, body.Title)
		answer(w, http.StatusCreated, it, err)
	})
	mux.HandleFunc("POST /items/{id}/done", func(w http.ResponseWriter, r *http.Request) {
		if id, ok := pathID(w, r); ok {
			it, err := s.Complete(r.Context(), id)
			answer(w, http.StatusOK, it, err)
		}
	})
	mux.HandleFunc("GET /report", func(w http.ResponseWriter, r *http.Request) {
		lines, err := report.Summary(r.Context(), pool)
		answer(w, http.StatusOK, lines, err)
	})
	return mux
}

func reply(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func answer(w http.ResponseWriter, status int, v any, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		reply(w, http.StatusNotFound, map[string]string{"error": "not found"})
	case errors.Is(err, store.ErrConflict):
		reply(w, http.StatusConflict, map[string]string{"error": "already exists"})
	case err != nil:
		reply(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		reply(w, status, v)
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		reply(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
		return false
	}
	return true
}

func required(w http.ResponseWriter, field, value string) bool {
	if value == "" {
		reply(w, http.StatusBadRequest, map[string]string{"error": field + " is required"})
		return false
	}
	return true
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		reply(w, http.StatusBadRequest, map[string]string{"error": "bad id"})
		return 0, false
	}
	return id, true
}

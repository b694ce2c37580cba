/* pg_conf.h: the "postgres" configuration section, the names of the broker's PostgreSQL
 * objects, and the checks on identifiers that clients send.
 *
 * Pure functions with no connection and no loop, so they are unit-tested on their own.
 * broker_new() parses the section through pg_new() and refuses to start on an error that
 * names the key. Every object name the broker creates is built here and nowhere else:
 * "fxb_<instance>_<kind>_<template id>[_<suffix>]", at most 63 bytes, lower-case letters,
 * digits and underscores only, so a name never needs more than PQescapeIdentifier.
 */
#ifndef FXB_PG_CONF_H
#define FXB_PG_CONF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

enum pg_strategy { PG_STRATEGY_FILE_COPY, PG_STRATEGY_WAL_LOG };

/* A template the broker builds itself by running migrate. */
struct pg_tpl_conf {
	char *name;
	char **migrate;   /* argv; "{url}" and friends are replaced at run time */
	size_t nmigrate;
	char **inputs;    /* files or glob patterns whose contents key the template */
	size_t ninputs;
	char *cwd;        /* NULL: the broker's */
	char **env;       /* "NAME=value" */
	size_t nenv;
	int timeout_ms;
	int min_ready, max; /* -1: the pool's defaults */
};

struct pg_conf {
	char embedded_user[64]; /* who runs initdb and postgres when the broker is root */
	int workers;            /* threads doing PostgreSQL work */
	enum pg_strategy strategy;
	int connections;        /* default CONNECTION LIMIT of a lease's role */
	int acquire_timeout_ms; /* how long an acquire waits for a clone */
	int min_ready, max, global_max, refill_parallelism;
	int idle_ms;            /* a pool unused this long shrinks to nothing ready */
	int gc_keep;            /* client-built templates kept, most recently used first */
	int64_t gc_max_age_ms;  /* and dropped when unused this long */
	struct pg_tpl_conf *templates;
	size_t ntemplates;
};

/* Fills c from section (the "postgres" object without "url"; NULL: all defaults), with
 * pool sizes defaulting from ncpu. Returns 0, or -1 with err naming the key
 * ("postgres.templates.app.migrate: expected an array of strings"); on error c holds
 * nothing to free. */
int pg_conf_parse(json_t *section, int ncpu, struct pg_conf *c, struct fxb_error *err);
void pg_conf_clear(struct pg_conf *c);
/* The configured template named name, or NULL. */
const struct pg_tpl_conf *pg_conf_template(const struct pg_conf *c, const char *name);

/* 1 if s may be a client's template hash: 1 to 128 of A-Z a-z 0-9 . _ : - */
int pg_hash_valid(const char *s);
/* 1 if s may name a configured template: 1 to 64 of A-Z a-z 0-9 _ -, a letter first. */
int pg_tpl_name_valid(const char *s);
/* 1 if s is an instance id: 8 to 16 lower-case hex digits. */
int pg_instance_valid(const char *s);

/* 64-bit FNV-1a over n bytes, continuing from h (start with PG_FNV_SEED). */
#define PG_FNV_SEED 0xcbf29ce484222325ULL
uint64_t pg_fnv(uint64_t h, const void *p, size_t n);
/* The template id (16 hex digits) of key, salted with the server's version and the
 * broker's template format, so a server upgrade never reuses an old template. */
void pg_tid(const char *key, int server_version, char out[17]);
/* Writes "fxb_<inst>_<kind>_<tid>" and, if suffix is not NULL, "_<suffix>". Returns 0, or
 * -1 when it would not fit in 63 bytes. */
int pg_object_name(char *out, size_t cap, const char *inst, char kind, const char *tid,
    const char *suffix);
/* Parses a name made by pg_object_name for inst: returns its kind letter and copies its
 * tid (16 hex digits) to tid, or returns 0 when name is not one of inst's. */
char pg_object_parse(const char *name, const char *inst, char tid[17]);

/* A postgresql:// URL with each part percent-encoded. Returns 0, or -1 if cap is short. */
int pg_url(char *out, size_t cap, const char *host, int port, const char *user,
    const char *password, const char *dbname, const char *application_name);
/* Replaces "{url}", "{host}", "{port}", "{database}", "{user}" and "{password}" in arg.
 * vals holds the six values in that order. Returns a malloc'd string or NULL. */
char *pg_placeholders(const char *arg, const char *const vals[6]);

#endif

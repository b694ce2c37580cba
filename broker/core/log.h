/* log.h: the broker's logging vocabulary, one line per event on stderr.
 *
 * Every line carries a level and the calling function's name. log_warn() appends
 * strerror(errno); log_warnx() does not. fatal() logs and exits 1: it is for start-up
 * failures and broken invariants, never for a client's bad input.
 */
#ifndef FXB_LOG_H
#define FXB_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_set_level(enum log_level level);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *name, enum log_level *out);

void log_at(enum log_level level, int with_errno, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void fatal_at(const char *func, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

#define log_warn(...) log_at(LOG_LEVEL_WARN, 1, __func__, __VA_ARGS__)
#define log_warnx(...) log_at(LOG_LEVEL_WARN, 0, __func__, __VA_ARGS__)
#define log_error(...) log_at(LOG_LEVEL_ERROR, 0, __func__, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, 0, __func__, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, 0, __func__, __VA_ARGS__)
#define fatal(...) fatal_at(__func__, __VA_ARGS__)

#endif

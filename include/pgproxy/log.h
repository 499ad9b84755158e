/*
 * log.h - structured log lines on stderr.
 *
 * One line per event, either logfmt ("ts=... level=info msg=... key=value")
 * or JSON, chosen at start (log.format) and switchable with the level on
 * SIGHUP.  Values are escaped for the chosen format, so bytes from the
 * network (user names, application_name) cannot forge fields or lines.
 * This module owns only its global settings; it never allocates and never
 * blocks beyond one write(2) of the assembled line.
 */
#ifndef PGPROXY_LOG_H
#define PGPROXY_LOG_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum pgp_log_level {
    PGP_LOG_DEBUG = 0,
    PGP_LOG_INFO,
    PGP_LOG_WARN,
    PGP_LOG_ERROR,
} pgp_log_level_t;

typedef enum pgp_log_format {
    PGP_LOG_TEXT = 0,   /* logfmt */
    PGP_LOG_JSON,
} pgp_log_format_t;

/* Parse "debug"/"info"/"warn"/"error".  Returns 0, or -1 when unknown. */
int pgp_log_level_parse(const char *name, pgp_log_level_t *out);
/* Parse "text"/"json".  Returns 0, or -1 when unknown. */
int pgp_log_format_parse(const char *name, pgp_log_format_t *out);

/* Set the global level and format.  Any thread; takes effect for the next line. */
void pgp_log_configure(pgp_log_level_t level, pgp_log_format_t format);

/* True when a line at `level` would be written (cheap; check before building fields). */
bool pgp_log_enabled(pgp_log_level_t level);

/*
 * Write one line: msg plus key/value pairs.  `fields` is a NULL-terminated
 * list of alternating keys and printf-free string values, e.g.
 *   pgp_log(PGP_LOG_INFO, "session open", "id", idbuf, "user", user, NULL);
 * A NULL value is written as an empty string.  Lines longer than 4 KiB are cut.
 */
void pgp_log(pgp_log_level_t level, const char *msg, ...);
void pgp_logv(pgp_log_level_t level, const char *msg, va_list fields);

#endif

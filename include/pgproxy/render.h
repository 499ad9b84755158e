/*
 * render.h - output renderers: a capped growable text buffer with a sticky
 * error, and writers for JSON, HTML and the Prometheus text exposition
 * format.
 *
 * The buffer (pgp_render_t) grows on demand up to a hard cap fixed per use;
 * the first failure (cap reached, out of memory, JSON misuse) is recorded
 * and every later write is a no-op, so a renderer writes without checking
 * each call and the caller checks pgp_render_error() once before sending
 * (SQLite printf.c's accError; curl's dynbuf cap).  There is one escape
 * function per output language, and each one turns invalid UTF-8 into
 * U+FFFD, so the output is valid UTF-8 whatever bytes come in (SQL text
 * from the wire may be anything).  Numbers are formatted without printf
 * and without locale.  This module is a leaf: no I/O, no threads, no
 * global state; one pgp_render_t is used by one thread at a time.
 */
#ifndef PGPROXY_RENDER_H
#define PGPROXY_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGP_RENDER_ENOMEM  (-1)   /* malloc/realloc failed */
#define PGP_RENDER_ETOOBIG (-2)   /* the output would exceed the cap */
#define PGP_RENDER_EUSAGE  (-3)   /* JSON structure misuse (value without key, bad nesting) */

#define PGP_RENDER_JSON_MAX_DEPTH 64   /* nested objects/arrays */
#define PGP_RENDER_MAX_DECIMALS 9      /* largest `decimals` the double writers honour */

typedef struct pgp_render {
    char *buf;              /* owned; NUL-terminated when non-NULL */
    size_t len;             /* bytes written, without the NUL */
    size_t alloc;           /* bytes allocated */
    size_t cap;             /* hard limit on len */
    int err;                /* 0 or the first PGP_RENDER_E* */
    /* JSON nesting: bit d of `in_object` / `has_items` describes level d+1. */
    uint32_t depth;
    uint64_t in_object;
    uint64_t has_items;
    bool after_key;         /* a key was written, its value is due */
} pgp_render_t;

/* A Prometheus label: name (borrowed, a valid label name) and value (any bytes, NUL-terminated). */
typedef struct pgp_render_label {
    const char *name;
    const char *value;
} pgp_render_label_t;

/*
 * Start an empty buffer that may hold up to `cap_bytes` bytes of output
 * (the NUL terminator is not counted).  Allocates nothing yet.  Never fails.
 */
void pgp_render_init(pgp_render_t *r, size_t cap_bytes);

/* Free the buffer and reset r to empty with the same cap.  Idempotent. */
void pgp_render_free(pgp_render_t *r);

/* 0, or the first error (PGP_RENDER_E*) since init; check once before using the output. */
int pgp_render_error(const pgp_render_t *r) __attribute__((warn_unused_result));

/* The output so far: borrowed (valid until the next write or free); "" when empty. */
const char *pgp_render_data(const pgp_render_t *r);
size_t pgp_render_len(const pgp_render_t *r);

/*
 * Hand over the output: returns owned (free with free()) NUL-terminated
 * text and its length in *len, and resets r to empty.  Returns NULL when
 * r is in error (r is then freed) or when the allocation of an empty
 * string fails.
 */
char *pgp_render_take(pgp_render_t *r, size_t *len);

/* ---- raw text ---------------------------------------------------------- */

/* Append n bytes verbatim (no escaping: only for text the caller produced). */
void pgp_render_append(pgp_render_t *r, const void *data, size_t n);
/* Append a NUL-terminated string verbatim; NULL appends nothing. */
void pgp_render_str(pgp_render_t *r, const char *s);
void pgp_render_char(pgp_render_t *r, char c);

/* Decimal integers. */
void pgp_render_int(pgp_render_t *r, int64_t v);
void pgp_render_uint(pgp_render_t *r, uint64_t v);

/*
 * A double with exactly `decimals` digits after the point (0..9; clamped),
 * rounded half away from zero, '.' whatever the locale: 1.5 -> "1.500" for
 * 3.  |v| >= 1e18 is written as "<mantissa>e+<exp>" (e.g. "1.250e+20").
 * Non-finite values are written as Prometheus spells them: "NaN", "+Inf",
 * "-Inf".  -0.0 is written "0.000".
 */
void pgp_render_double(pgp_render_t *r, double v, int decimals);

/* Like pgp_render_double with trailing zeros (and a bare '.') removed: 0.005, 2, 1.5. */
void pgp_render_double_trim(pgp_render_t *r, double v, int max_decimals);

/* ---- JSON (RFC 8259) -------------------------------------------------------- */
/*
 * Structure writers insert the commas; inside an object each value must be
 * preceded by pgp_render_json_key, inside an array keys are misuse; misuse,
 * unbalanced ends and nesting beyond PGP_RENDER_JSON_MAX_DEPTH set
 * PGP_RENDER_EUSAGE.  Top level holds one value.
 */
void pgp_render_json_begin_object(pgp_render_t *r);
void pgp_render_json_end_object(pgp_render_t *r);
void pgp_render_json_begin_array(pgp_render_t *r);
void pgp_render_json_end_array(pgp_render_t *r);
/* True when every begun object/array has been ended. */
bool pgp_render_json_complete(const pgp_render_t *r);

/* An object key: `key` NUL-terminated, escaped like a string. */
void pgp_render_json_key(pgp_render_t *r, const char *key);

/*
 * A string value from n bytes (any bytes, NULs included): escapes '"' '\\',
 * \b \f \n \r \t, other bytes < 0x20 and DEL as \u00XX, '<' '>' '&' and
 * U+2028/U+2029 as \uXXXX (so the JSON may sit inside an HTML <script>);
 * invalid UTF-8 becomes U+FFFD, one per maximal invalid subsequence
 * (Unicode's "substitution of maximal subparts").  Valid UTF-8 is kept.
 */
void pgp_render_json_string(pgp_render_t *r, const void *s, size_t n);
/* Same for a NUL-terminated string; NULL writes null. */
void pgp_render_json_cstr(pgp_render_t *r, const char *s);
void pgp_render_json_int(pgp_render_t *r, int64_t v);
void pgp_render_json_uint(pgp_render_t *r, uint64_t v);
/* A number with `decimals` digits (see pgp_render_double_trim); NaN and infinities write null. */
void pgp_render_json_double(pgp_render_t *r, double v, int decimals);
void pgp_render_json_bool(pgp_render_t *r, bool v);
/* "key": value members of the object being written (a NULL string is null). */
void pgp_render_json_kv_str(pgp_render_t *r, const char *key, const char *val);
void pgp_render_json_kv_uint(pgp_render_t *r, const char *key, uint64_t v);
/* A Unix-epoch nanosecond time as an ISO-8601 UTC string with milliseconds:
 * "2026-11-26T10:00:00.123Z". */
void pgp_render_json_time(pgp_render_t *r, uint64_t wall_ns);
/* The same text into buf (at least PGP_RENDER_TIME_BYTES); returns its length. */
#define PGP_RENDER_TIME_BYTES 32u
size_t pgp_render_format_time(uint64_t wall_ns, char *buf);
void pgp_render_json_null(pgp_render_t *r);

/* The body of a JSON string (no quotes, no commas): the escaping of pgp_render_json_string. */
void pgp_render_json_escape(pgp_render_t *r, const void *s, size_t n);

/* ---- HTML --------------------------------------------------------------------- */

/*
 * Text safe both as element content and inside a quoted attribute value:
 * & < > " ' become &amp; &lt; &gt; &quot; &#39;; invalid UTF-8 and control
 * characters other than tab, LF and CR become U+FFFD.
 */
void pgp_render_html(pgp_render_t *r, const void *s, size_t n);

/* ---- Prometheus text exposition format 0.0.4 ------------------------------------ */

/*
 * "# HELP <name> <help>\n# TYPE <name> <type>\n": name and type ("counter",
 * "gauge", "histogram") are the caller's constants; help is escaped
 * (\\ and \n) and made valid UTF-8 (other controls but tab -> U+FFFD).
 */
void pgp_render_prom_family(pgp_render_t *r, const char *name, const char *type,
                            const char *help);

/* A label value's escaping: \\ \" \n; invalid UTF-8 and controls but tab -> U+FFFD. */
void pgp_render_prom_label_value(pgp_render_t *r, const void *s, size_t n);

/*
 * One sample line "<name>{l1="v1",...} <value>\n" (no braces when
 * nlabels == 0).  Labels borrowed; values escaped.  The double form writes
 * up to 9 decimals, trimmed, and NaN/+Inf/-Inf.
 */
void pgp_render_prom_sample(pgp_render_t *r, const char *name, const pgp_render_label_t *labels,
                            size_t nlabels, double value);
void pgp_render_prom_sample_uint(pgp_render_t *r, const char *name,
                                 const pgp_render_label_t *labels, size_t nlabels,
                                 uint64_t value);

/*
 * A histogram's samples (the family line is written separately):
 * <name>_bucket{labels...,le="<bound>"} cumulative count for each of the
 * `nbuckets` ascending upper bounds, then le="+Inf" with `count`, then
 * <name>_sum and <name>_count.  `bucket_counts[i]` holds the observations
 * in (bounds[i-1], bounds[i]] (not cumulative); observations above the
 * last bound are count - sum(bucket_counts).  Arrays borrowed.
 */
void pgp_render_prom_histogram(pgp_render_t *r, const char *name,
                               const pgp_render_label_t *labels, size_t nlabels,
                               const double *bounds, const uint64_t *bucket_counts,
                               size_t nbuckets, double sum, uint64_t count);

#endif

/*
 * dashboard.h - the HTML performance dashboard (DESIGN §6, served at
 * admin.dashboard_path, default /debug/performance).
 *
 * One static, self-contained page: inline CSS and JavaScript, no CDN, no
 * fonts or images fetched, so it works offline and behind a strict proxy.
 * The C side only writes the bytes; the page's script fetches live data
 * from `json_path` every 2 s (the JSON of DESIGN §6, missing keys and
 * nulls tolerated) and re-renders the tiles and table bodies in place, so
 * the scroll position is kept; the flame graph (PGP_DASHBOARD_FLAME_PATH)
 * is re-fetched every 10 s.  Every value from the server reaches the DOM
 * through textContent or a title property, never innerHTML.  When the
 * admin server wants a token, open the page as `<path>#token=<t>`: the
 * script sends `Authorization: Bearer <t>` on its fetches (the fragment
 * is never sent to the server).  A Content-Security-Policy meta tag limits
 * the page to its own origin.  Leaf module: no I/O, no state.
 */
#ifndef PGPROXY_DASHBOARD_H
#define PGPROXY_DASHBOARD_H

#include "pgproxy/render.h"

#define PGP_DASHBOARD_CONTENT_TYPE "text/html; charset=utf-8"
#define PGP_DASHBOARD_DEFAULT_JSON_PATH "/debug/performance/json"
#define PGP_DASHBOARD_FLAME_PATH "/debug/flamegraph.svg"
/* The page is smaller than this plus the escaped json_path: a cap for pgp_render_init. */
#define PGP_DASHBOARD_MAX_BYTES (64u << 10)

/*
 * Append the dashboard page to r (borrowed).  json_path (borrowed,
 * NUL-terminated, NULL: PGP_DASHBOARD_DEFAULT_JSON_PATH) is where the page
 * fetches its data, e.g. "/debug/performance/json"; it is HTML-escaped
 * into a data attribute (so `"</script>` or invalid UTF-8 in it cannot
 * break the page).  Serve the result as PGP_DASHBOARD_CONTENT_TYPE.
 * Returns 0, or -1 when r is in error (overflowed its cap) afterwards.
 * Any thread, reentrant.
 */
int pgp_dashboard_render(const char *json_path, pgp_render_t *r)
    __attribute__((warn_unused_result));

#endif

"""The admin HTTP server from the outside (issue #6): the HTML dashboard in a
real headless Chromium with live data from a real workload, the schema and
the arithmetic of /debug/performance/json against the other endpoints,
bearer-token authentication, and hostile clients (200 slowloris
connections during a pgbench run, a 100 KB header, request bodies).

Everything is real: a throwaway PostgreSQL 15 (harness.Cluster), the
pgproxy binary, psycopg 3 requests told apart by SET pgproxy.request_id,
pgbench, Debian's chromium.  The browser tests skip, saying why, when no
chromium is installed; tests/run.sh installs it (packages chromium and
fonts-dejavu-core), so in CI they run.

Also a helper: `python3 tests/integration/test_dashboard.py --screenshot
OUT.png [--width 1280 --height 2150]` starts a cluster and a proxy, runs a
richer workload and saves a screenshot of the live dashboard (that is how
docs/dashboard.png is made).

Run: /usr/bin/python3 -m unittest discover -s tests/integration -p test_dashboard.py -v
"""

import html.parser
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness as h

CLUSTER = None
DB = "dash"
BENCH_DB = "dashbench"
N_ARTICLES = 8
SLOW_MS = 55                 # profiling.slow_query_threshold_ms: pg_sleep(0.06) is
                             # always over it, a trivial query stalled by a busy CI VM not
GAP_MS = 150                 # profiling.request_gap_ms
N1_THRESHOLD = 3             # profiling.n_plus_one_threshold
APP = "dash-test"            # application_name: the label of the profiles
TOKEN = "t0ken-Zq8+/=x"      # admin.token in the auth tests
TITLE = "pgproxy \u00b7 performance"

N1_SOURCE = "SELECT id, author_id FROM dash_article ORDER BY id"
N1_QUERY = "SELECT name FROM dash_author WHERE id = %s"
N1_NORMALIZED = "SELECT name FROM dash_author WHERE id = ?"
JOINED = ("SELECT a.title, u.name FROM dash_article a JOIN dash_author u "
          "ON u.id = a.author_id ORDER BY a.id")
SLEEP = "SELECT pg_sleep(0.06)"
# Slow, so it lands in "Recent Slow Queries": a script end tag and an inline
# handler that would retitle the page if the dashboard ever used innerHTML.
XSS = ("SELECT pg_sleep(0.06), '</script><script>alert(1)</script>' AS a, "
       "'<img src=x onerror=\"document.title=''pwned''\">' AS b")

# What run_workload() sends, statement by statement (SET and RESET count).
EXPECT_REQUESTS = 3
EXPECT_QUERIES = (1 + 1 + N_ARTICLES + 1) + 3 + 4
EXPECT_SLOW = 2
EXPECT_N1 = 1


def setUpModule():
    global CLUSTER
    CLUSTER = h.Cluster(name="pgproxy-dash")
    try:
        CLUSTER.init()
        CLUSTER.create_database(DB)
        CLUSTER.admin_sql_socket([
            "CREATE TABLE dash_author (id serial PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE dash_article (id serial PRIMARY KEY, title text NOT NULL, "
            "author_id int NOT NULL REFERENCES dash_author(id))",
            "INSERT INTO dash_author (name) SELECT 'author ' || i "
            "FROM generate_series(1, %d) i" % N_ARTICLES,
            "INSERT INTO dash_article (title, author_id) "
            "SELECT 'title ' || i, i FROM generate_series(1, %d) i" % N_ARTICLES,
        ], dbname=DB)
    except Exception:
        CLUSTER.destroy()
        raise


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.destroy()


# ---- workload -------------------------------------------------------------------------

def run_workload(port, app=APP):
    """Three requests on one psycopg connection, each bracketed by the
    session marker: an N+1 (one article list, then one author lookup per
    article), the same data with a join, and a slow request (pg_sleep and
    the XSS query, both over SLOW_MS).  EXPECT_* say what it adds up to."""
    with h.connect(port, dbname=DB, autocommit=True, application_name=app) as conn:
        conn.execute("SET pgproxy.request_id = 'articles-n1'")
        rows = conn.execute(N1_SOURCE).fetchall()
        assert len(rows) == N_ARTICLES, rows
        for _, author_id in rows:
            conn.execute(N1_QUERY, (author_id,)).fetchone()
        conn.execute("RESET pgproxy.request_id")

        conn.execute("SET pgproxy.request_id = 'articles-joined'")
        assert len(conn.execute(JOINED).fetchall()) == N_ARTICLES
        conn.execute("RESET pgproxy.request_id")

        conn.execute("SET pgproxy.request_id = 'report-slow'")
        conn.execute(SLEEP)
        row = conn.execute(XSS).fetchone()
        assert row[1] == "</script><script>alert(1)</script>", row
        conn.execute("RESET pgproxy.request_id")


def run_rich_workload(port):
    """More varied traffic for the README screenshot: several endpoints
    (sqlcommenter tags give the labels), repeated N+1 requests, a few slow
    reports, and the run_workload() requests."""
    def tag(controller, action, rid):
        return " /*action='%s',controller='%s',request_id='%s'*/" % (action, controller, rid)
    with h.connect(port, dbname=DB, autocommit=True, application_name="shop-web") as conn:
        for i in range(3):
            t = tag("articles", "index", "idx-%d" % i)
            rows = conn.execute(N1_SOURCE + t).fetchall()
            for _, author_id in rows:
                conn.execute(N1_QUERY + t, (author_id,)).fetchone()
        for i in range(4):
            t = tag("articles", "show", "show-%d" % i)
            conn.execute("SELECT id, title, author_id FROM dash_article WHERE id = %s" + t,
                         (i % N_ARTICLES + 1,)).fetchone()
            conn.execute(JOINED + t).fetchall()
        for i in range(2):
            t = tag("authors", "detail", "auth-%d" % i)
            for j in range(5):
                conn.execute("SELECT count(*) FROM dash_article WHERE author_id = %s" + t,
                             (j + 1,)).fetchone()
        for i in range(3):
            t = tag("reports", "monthly", "rep-%d" % i)
            conn.execute("SELECT pg_sleep(%s)" + t, (0.05 + 0.03 * i,)).fetchone()
            conn.execute("SELECT count(*) FROM generate_series(1, 200000)" + t).fetchone()
    run_workload(port)


def proxy_env(**extra):
    e = {"PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": str(SLOW_MS),
         "PGPROXY_PROFILING_REQUEST_GAP_MS": str(GAP_MS),
         "PGPROXY_PROFILING_N_PLUS_ONE_THRESHOLD": str(N1_THRESHOLD),
         "PGPROXY_SLOW_LOG_SINK": "none"}
    e.update(extra)
    return e


def get_json(proxy, path, headers=None):
    status, hdrs, body = proxy.http_get(path, headers)
    if status != 200:
        raise AssertionError("GET %s: %d %r" % (path, status, body[:300]))
    if not hdrs.get("content-type", "").startswith("application/json"):
        raise AssertionError("GET %s: content-type %r" % (path, hdrs.get("content-type")))
    return json.loads(body.decode("utf-8"))   # strict: the JSON must be valid UTF-8


def wait_settled(proxy, headers=None, timeout=10.0):
    """The dashboard JSON once every request of run_workload() is stored."""
    doc = {}

    def done():
        nonlocal doc
        doc = get_json(proxy, "/debug/performance/json", headers)
        return (doc.get("total_requests", 0) >= EXPECT_REQUESTS and
                doc.get("total_queries", 0) >= EXPECT_QUERIES)
    h.wait_for(done, timeout, interval=0.05, what="the workload in /debug/performance/json")
    return doc


# ---- chromium -------------------------------------------------------------------------

def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium(url, args, timeout=120):
    """Run headless chromium once on url with extra args; -> stdout (text).
    Its own HOME and profile in a temp dir (runs as root need
    --no-sandbox); the whole process group is killed on timeout."""
    binary = chromium_binary()
    if binary is None:
        raise unittest.SkipTest("chromium is not installed (apt-get install chromium "
                                "fonts-dejavu-core)")
    tmp = tempfile.mkdtemp(prefix="pgproxy-chromium-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "config"),
               XDG_CACHE_HOME=os.path.join(tmp, "cache"), LANG="C.UTF-8", TZ="UTC")
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-dev-shm-usage",
           "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--disable-component-update", "--disable-sync", "--hide-scrollbars",
           "--mute-audio", "--user-data-dir=" + os.path.join(tmp, "profile")]
    cmd += list(args) + [url]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=tmp, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        raise AssertionError("chromium still running after %ds:\n%s" % (
            timeout, err.decode("utf-8", "replace")[-3000:]))
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)   # helpers (zygote, gpu) left behind
        except ProcessLookupError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode != 0:
        raise AssertionError("chromium exited with %d:\n%s" % (
            p.returncode, err.decode("utf-8", "replace")[-3000:]))
    return out.decode("utf-8", "replace")


def dump_dom(url):
    # The page fetches the JSON at once and every 2 s; virtual time lets
    # those timers run without waiting in real time, and the budget waits
    # for the fetches to finish.
    return chromium(url, ["--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
                          "--dump-dom"])


def screenshot(url, path, width=1280, height=1700):
    path = os.path.abspath(path)   # chromium runs in its own temp dir
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)
    chromium(url, ["--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw",
                   "--window-size=%d,%d" % (width, height), "--screenshot=" + path])
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError("%s is not a PNG" % path)
    return struct.unpack("!II", head[16:24])   # (width, height)


def png_dark_pixels(path):
    """Pixels darker than the dashboard's grey text in an 8-bit RGB/RGBA,
    non-interlaced PNG (what chromium writes): rendered text, roughly.  A
    page drawn without fonts has boxes and bars but next to none."""
    import zlib
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack("!I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            hdr = struct.unpack("!IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + n
    w, hgt, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise AssertionError("unexpected PNG format %r" % (hdr,))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    dark = 0
    for y in range(hgt):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ft == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ft == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ft == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ft == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        for i in range(0, stride, bpp):
            if line[i] + line[i + 1] + line[i + 2] < 240:
                dark += 1
        prev = line
    return dark


class Dom(html.parser.HTMLParser):
    """A small DOM over html.parser: the text of every element with an id,
    the rows (cell texts) of every tbody with an id, every element's tag and
    attributes in document order, and the title."""

    VOID = {"meta", "link", "img", "br", "hr", "input", "col", "area", "base",
            "embed", "source", "track", "wbr"}

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []      # (tag, attrs dict, path of enclosing ids)
        self.text = {}          # id -> text content
        self.rows = {}          # tbody id -> [[cell text, ...], ...]
        self.cells = {}         # tbody id -> [[attrs of each td], ...]
        self.title = None
        self._stack = []        # [tag, id or None, text parts]
        self._tbody = None
        self._row = None
        self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.elements.append((tag, a, [e[1] for e in self._stack if e[1]]))
        if tag in self.VOID:
            return
        self._stack.append([tag, a.get("id"), []])
        if tag == "tbody" and a.get("id"):
            self._tbody = a["id"]
            self.rows[self._tbody] = []
            self.cells[self._tbody] = []
        elif tag == "tr" and self._tbody:
            self._row = []
            self.rows[self._tbody].append(self._row)
            self.cells[self._tbody].append([])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._row.append(self._cell)
            self.cells[self._tbody][-1].append(a)

    def handle_endtag(self, tag):
        while self._stack:
            t, ident, parts = self._stack.pop()
            s = "".join(parts)
            if ident:
                self.text[ident] = s
            if t == "title":
                self.title = s
            if self._stack:
                self._stack[-1][2].append(s)
            if t in ("td", "th") and self._row is not None and self._cell is not None:
                self._row[-1] = s
                self._cell = None
            elif t == "tr":
                self._row = None
            elif t == "tbody":
                self._tbody = None
            if t == tag:
                break

    def handle_data(self, data):
        if self._stack:
            self._stack[-1][2].append(data)

    def count(self, tag):
        return sum(1 for t, _, _ in self.elements if t == tag)


# ---- schema helpers -------------------------------------------------------------------

INT = "int"
NUM = "number"
STR = "str"
BOOL = "bool"
LIST = "list"
OBJ = "obj"
NULL = "null"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
FP = re.compile(r"^[0-9a-f]{16}$")


def is_type(v, t):
    if t == INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if t == NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == STR:
        return isinstance(v, str)
    if t == BOOL:
        return isinstance(v, bool)
    if t == LIST:
        return isinstance(v, list)
    if t == OBJ:
        return isinstance(v, dict)
    if t == NULL:
        return v is None
    raise ValueError(t)


class SchemaMixin:
    def check_obj(self, obj, schema, where):
        """schema: key -> type or tuple of types; every key must be there."""
        self.assertIsInstance(obj, dict, where)
        for k, t in schema.items():
            self.assertIn(k, obj, "%s: no key %r in %r" % (where, k, obj))
            ts = t if isinstance(t, tuple) else (t,)
            self.assertTrue(any(is_type(obj[k], x) for x in ts),
                            "%s.%s = %r is not %s" % (where, k, obj[k], "/".join(ts)))


SLOW_SCHEMA = {"sql": STR, "duration_ms": NUM, "timestamp": STR, "fingerprint": STR,
               "normalized": STR, "database": STR, "user": STR, "application_name": STR,
               "client_addr": STR, "session_id": INT, "request_id": (STR, NULL),
               "request_label": STR, "rows": (INT, NULL), "sqlstate": (STR, NULL)}
FINDING_SCHEMA = {"label": STR, "type": STR, "fingerprint": STR, "normalized": STR,
                  "source_fingerprint": (STR, NULL), "source_normalized": (STR, NULL),
                  "occurrences": INT, "max_count": INT, "total_count": INT,
                  "total_ns": INT, "estimated_saving_ns": INT, "last_seen": STR,
                  "last_profile_id": INT}
TOP_SCHEMA = {"fingerprint": STR, "normalized": STR, "database": STR, "user": STR,
              "calls": INT, "errors": INT, "rows": INT, "total_ms": NUM, "mean_ms": NUM,
              "p50_ms": NUM, "p95_ms": NUM, "p99_ms": NUM, "total_ns": INT}
PROFILE_SUMMARY_SCHEMA = {"id": INT, "session_id": INT, "label": STR,
                          "request_id": (STR, NULL), "total_ms": NUM, "sql_ms": NUM,
                          "sql_count": INT, "n_plus_one": INT, "start": STR}
CONN_SCHEMA = {"id": INT, "user": STR, "database": STR, "application_name": STR,
               "client_addr": STR, "state": STR, "queries": INT, "n_plus_one": INT,
               "connected_s": NUM}
TOP_LEVEL_SCHEMA = {"version": STR, "uptime_s": NUM, "total_requests": INT,
                    "total_queries": INT, "avg_queries_per_request": NUM,
                    "slow_query_count": INT, "n_plus_one_count": INT,
                    "recent_slow_queries": LIST, "recent_n_plus_one": LIST,
                    "n_plus_one": LIST, "top_queries": LIST, "histogram": OBJ,
                    "connections": LIST, "recent_profiles": LIST}


# ---- tests: JSON ----------------------------------------------------------------------

class TestDashboardJson(SchemaMixin, h.TestCase):

    def start_proxy(self, **env):
        p = h.Proxy(CLUSTER, env=proxy_env(**env), name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        return p

    def test_empty_proxy(self):
        """Before any query: zeros, empty lists, avg 0 (not NaN or null)."""
        p = self.start_proxy()
        d = get_json(p, "/debug/performance/json")
        self.check_obj(d, TOP_LEVEL_SCHEMA, "json")
        for k in ("total_requests", "total_queries", "slow_query_count", "n_plus_one_count"):
            self.assertEqual(d[k], 0, k)
        self.assertEqual(d["avg_queries_per_request"], 0)
        for k in ("recent_slow_queries", "recent_n_plus_one", "n_plus_one", "top_queries",
                  "connections", "recent_profiles"):
            self.assertEqual(d[k], [], k)
        self.assertTrue(all(b["count"] == 0 for b in d["histogram"]["buckets"]))
        p.check()

    def test_schema_and_consistency(self):
        p = self.start_proxy()
        run_workload(p.port)
        # A live idle connection for the connections list.
        idle = h.connect(p.port, dbname=DB, autocommit=True, application_name="dash-idle")
        self.addCleanup(idle.close)
        d = wait_settled(p)
        h.wait_for(lambda: len(get_json(p, "/debug/performance/json")["connections"]) == 1,
                   5, what="the idle connection in the dashboard JSON")
        d = get_json(p, "/debug/performance/json")
        self.check_obj(d, TOP_LEVEL_SCHEMA, "json")
        self.assertRegex(d["version"], r"^\d+\.\d+\.\d+")
        self.assertGreaterEqual(d["uptime_s"], 0)

        # Exactly what the workload sent.
        self.assertEqual(d["total_requests"], EXPECT_REQUESTS)
        self.assertEqual(d["total_queries"], EXPECT_QUERIES)
        self.assertAlmostEqual(d["avg_queries_per_request"],
                               round(EXPECT_QUERIES / EXPECT_REQUESTS, 2), places=2)
        self.assertEqual(d["slow_query_count"], EXPECT_SLOW)
        self.assertEqual(d["n_plus_one_count"], EXPECT_N1)

        # recent_slow_queries: newest first, the exact SQL text kept.
        slow = d["recent_slow_queries"]
        self.assertEqual([q["sql"] for q in slow], [XSS, SLEEP])
        for i, q in enumerate(slow):
            self.check_obj(q, SLOW_SCHEMA, "recent_slow_queries[%d]" % i)
            self.assertGreaterEqual(q["duration_ms"], SLOW_MS)
            self.assertLess(q["duration_ms"], 10000)
            self.assertRegex(q["timestamp"], ISO)
            self.assertRegex(q["fingerprint"], FP)
            self.assertEqual(q["database"], DB)
            self.assertEqual(q["user"], h.ADMIN_USER)
            self.assertEqual(q["application_name"], APP)
            self.assertEqual(q["request_id"], "report-slow")
        self.assertEqual(slow[0]["normalized"], "SELECT pg_sleep(?), ? AS a, ? AS b")

        # recent_n_plus_one: the normalized SQL of the findings, as strings.
        self.assertEqual(d["recent_n_plus_one"], [N1_NORMALIZED])
        self.assertEqual(len(d["n_plus_one"]), 1)
        f = d["n_plus_one"][0]
        self.check_obj(f, FINDING_SCHEMA, "n_plus_one[0]")
        self.assertEqual(f["type"], "n_plus_one")
        self.assertEqual(f["normalized"], N1_NORMALIZED)
        self.assertEqual(f["source_normalized"], N1_SOURCE)
        self.assertEqual(f["max_count"], N_ARTICLES)
        self.assertEqual(f["occurrences"], 1)
        self.assertEqual(f["label"], APP)
        self.assertLessEqual(f["estimated_saving_ns"], f["total_ns"])

        # top_queries: digests ordered by total time, same as /debug/queries.
        top = d["top_queries"]
        self.assertGreater(len(top), 0)
        for i, q in enumerate(top):
            self.check_obj(q, TOP_SCHEMA, "top_queries[%d]" % i)
            self.assertRegex(q["fingerprint"], FP)
        self.assertEqual([q["total_ms"] for q in top],
                         sorted((q["total_ms"] for q in top), reverse=True))
        queries = get_json(p, "/debug/queries?order=total&limit=10000")["queries"]
        self.assertEqual([q["fingerprint"] for q in top],
                         [q["fingerprint"] for q in queries][:len(top)])
        # Nothing evicted: the digests add up to the total.
        self.assertEqual(sum(q["calls"] for q in queries), d["total_queries"])
        by_norm = {q["normalized"]: q for q in queries}
        self.assertEqual(by_norm[N1_NORMALIZED]["calls"], N_ARTICLES)
        self.assertEqual(by_norm["SET pgproxy.request_id = ?"]["calls"], 3)
        self.assertEqual(by_norm["RESET pgproxy.request_id"]["calls"], 3)

        # histogram: cumulative buckets in ascending bounds ending in +Inf.
        b = d["histogram"]["buckets"]
        self.assertGreater(len(b), 2)
        for i, x in enumerate(b):
            self.check_obj(x, {"le_ms": (NUM, NULL), "count": INT}, "histogram.buckets[%d]" % i)
        bounds = [x["le_ms"] for x in b[:-1]]
        self.assertIsNone(b[-1]["le_ms"])
        self.assertNotIn(None, bounds)
        self.assertEqual(bounds, sorted(bounds))
        counts = [x["count"] for x in b]
        self.assertEqual(counts, sorted(counts), "cumulative counts must not decrease")
        self.assertEqual(counts[-1], d["total_queries"])
        over_50 = [x["count"] for x in b if x["le_ms"] is not None and x["le_ms"] <= 50]
        self.assertLessEqual(over_50[-1], counts[-1] - EXPECT_SLOW,
                             "the two 60 ms queries are not in a <= 50 ms bucket")

        # connections: the idle one, described.
        c = d["connections"][0]
        self.check_obj(c, CONN_SCHEMA, "connections[0]")
        self.assertEqual((c["application_name"], c["database"], c["user"]),
                         ("dash-idle", DB, h.ADMIN_USER))

        # recent_profiles against /debug/profiles.
        profiles = get_json(p, "/debug/profiles?order=recent&limit=1000")
        self.assertEqual(len(profiles), d["total_requests"])
        summ = d["recent_profiles"]
        self.assertEqual([s["id"] for s in summ], [x["id"] for x in profiles][:len(summ)])
        for i, s in enumerate(summ):
            self.check_obj(s, PROFILE_SUMMARY_SCHEMA, "recent_profiles[%d]" % i)
            self.assertRegex(s["start"], ISO)
        self.assertEqual([s["request_id"] for s in summ],
                         ["report-slow", "articles-joined", "articles-n1"])
        self.assertEqual([s["sql_count"] for s in summ],
                         [4, 3, 1 + 1 + N_ARTICLES + 1])
        self.assertEqual([s["n_plus_one"] for s in summ], [0, 0, 1])
        self.assertEqual(sum(x["sql_count"] for x in profiles), d["total_queries"])
        self.assertAlmostEqual(d["avg_queries_per_request"],
                               sum(x["sql_count"] for x in profiles) / len(profiles), places=2)
        # The other endpoints tell the same story.
        self.assertEqual([q["sql"] for q in get_json(p, "/debug/slow-queries")],
                         [q["sql"] for q in slow])
        n1 = get_json(p, "/debug/n-plus-one")
        # The tile counts patterns; each finding is one occurrence of its pattern.
        self.assertEqual(len(n1), d["n_plus_one_count"])
        self.assertEqual(sum(x["occurrences"] for x in n1), d["n_plus_one_findings"])
        p.check()

    def test_invalid_utf8_sql(self):
        """SQL bytes that are not UTF-8 become U+FFFD: the JSON stays valid
        UTF-8 (get_json decodes strictly) and the dashboard can show it."""
        p = self.start_proxy(PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS="0")
        with h.RawConn(p.port) as c:
            c.login(h.ADMIN_USER, database=DB)
            # The server rejects the bytes; the proxy has seen them first.
            c.send(h.message(b"Q", b"SELECT 1 AS \"bad\xff\xfe\xc3\" \0"))
            while True:
                t, _ = c.read_message()
                if t == "Z":
                    break
        d = {}

        def seen():
            nonlocal d
            d = get_json(p, "/debug/performance/json")
            return d["recent_slow_queries"]
        h.wait_for(seen, 5, what="the query in recent_slow_queries")
        self.assertEqual(d["recent_slow_queries"][0]["sql"],
                         'SELECT 1 AS "bad\ufffd\ufffd\ufffd" ')
        self.assertEqual(d["recent_slow_queries"][0]["sqlstate"], "22021")
        p.check()


# ---- tests: the page in a browser -------------------------------------------------------

class TestDashboardBrowser(h.TestCase):

    def setUp(self):
        if chromium_binary() is None:
            self.skipTest("chromium is not installed: apt-get install chromium "
                          "fonts-dejavu-core (tests/run.sh does)")

    def start_proxy(self, **env):
        p = h.Proxy(CLUSTER, env=proxy_env(**env), name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        return p

    def test_dashboard_renders_live_data(self):
        p = self.start_proxy()
        run_workload(p.port)
        idle = h.connect(p.port, dbname=DB, autocommit=True, application_name="dash-idle")
        self.addCleanup(idle.close)
        wait_settled(p)
        h.wait_for(lambda: len(get_json(p, "/debug/performance/json")["connections"]) == 1,
                   5, what="only the idle connection in the dashboard JSON")
        d = get_json(p, "/debug/performance/json")
        url = "http://127.0.0.1:%d/debug/performance" % p.admin_port

        text = dump_dom(url)
        dom = Dom(text)
        # The fetch ran and render() filled the page.
        self.assertTrue(dom.text.get("status", "").startswith("live"),
                        "status: %r\n%s" % (dom.text.get("status"), text[-4000:]))
        tiles = {k: dom.text.get("t-" + k) for k in ("req", "q", "avg", "slow", "n1")}
        self.assertEqual(tiles, {"req": str(EXPECT_REQUESTS), "q": str(EXPECT_QUERIES),
                                 "avg": "%.1f" % (EXPECT_QUERIES / EXPECT_REQUESTS),
                                 "slow": str(EXPECT_SLOW), "n1": str(EXPECT_N1)})
        self.assertEqual(tiles["req"], str(d["total_requests"]))
        self.assertEqual(tiles["q"], str(d["total_queries"]))
        for label in ("Total Requests", "Total Queries", "Avg Queries/Req", "Slow Queries",
                      "N+1 Patterns"):
            self.assertIn(">%s<" % label, text)
        classes = {a.get("id"): a.get("class", "") for t, a, _ in dom.elements if a.get("id")}
        self.assertIn("hot", classes["tile-slow"].split())
        self.assertIn("hot", classes["tile-n1"].split())

        # Recent Slow Queries: both rows, newest first, the SQL as text.
        slow = dom.rows["slow"]
        self.assertEqual([r[0] for r in slow], [XSS, SLEEP])
        for r in slow:
            self.assertRegex(r[1], r"^\d+(\.\d+)? ms$")
            self.assertEqual(r[5], DB)
        # The script end tag is text: escaped in the serialized text node...
        self.assertIn("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;", text)
        # ...and no element came out of it: one script (the page's own), no
        # img in a table, the title unchanged.
        self.assertEqual(dom.count("script"), 1)
        imgs = [a for t, a, _ in dom.elements if t == "img"]
        self.assertEqual([a.get("id") for a in imgs], ["flame"], imgs)
        self.assertEqual(dom.title, TITLE)
        # The flame graph was fetched and shown from a blob: URL.
        self.assertTrue(imgs[0].get("src", "").startswith("blob:"), imgs)

        # N+1 Query Patterns: one row, normalized SQL, count, label, source.
        n1 = dom.rows["n1"]
        self.assertEqual(len(n1), 1, n1)
        self.assertEqual(n1[0][:4], [N1_NORMALIZED, str(N_ARTICLES), APP, N1_SOURCE])
        self.assertEqual(n1[0][4], "1")

        # Top fingerprints, profiles, connections: filled from the same JSON.
        top = dom.rows["top"]
        self.assertEqual([r[0] for r in top], [q["normalized"] for q in d["top_queries"]])
        prof = dom.rows["prof"]
        self.assertEqual([r[2] for r in prof], ["4", "3", str(1 + 1 + N_ARTICLES + 1)])
        self.assertEqual([r[3] for r in prof], ["0", "0", "1"])
        conn = dom.rows["conn"]
        self.assertEqual(len(conn), 1, conn)
        self.assertEqual(conn[0][1:4], [h.ADMIN_USER, DB, "dash-idle"])
        # The histogram has one column per bucket.
        self.assertEqual(sum(1 for t, a, _ in dom.elements if a.get("class") == "hcol"),
                         len(d["histogram"]["buckets"]))

        # A screenshot next to the binary, for a human to look at.
        out = os.path.join(os.path.dirname(os.path.abspath(p.binary)), "test-dashboard",
                           "dashboard.png")
        w, _ = screenshot(url, out, 1280, 1700)
        self.assertEqual(w, 1280)
        # Text was drawn (no fonts installed: boxes without a letter).
        dark = png_dark_pixels(out)
        self.assertGreater(dark, 5000, "%s has almost no text: fonts missing? "
                           "(apt-get install fonts-dejavu-core)" % out)
        h.log("dashboard screenshot: %s" % out)
        p.check()

    def test_dashboard_before_any_query(self):
        """An empty proxy: the page still renders, with zeros and the
        empty-table texts, and says it is live."""
        p = self.start_proxy()
        dom = Dom(dump_dom("http://127.0.0.1:%d/debug/performance" % p.admin_port))
        self.assertTrue(dom.text.get("status", "").startswith("live"), dom.text.get("status"))
        self.assertEqual([dom.text.get("t-" + k) for k in ("req", "q", "avg", "slow", "n1")],
                         ["0", "0", "0.0", "0", "0"])
        self.assertEqual(dom.rows["slow"], [["No slow queries yet"]])
        self.assertEqual(dom.rows["n1"], [["No N+1 patterns detected"]])
        self.assertEqual(dom.text.get("hist"), "No queries yet")

    def test_dashboard_with_token_fragment(self):
        """Opened as /debug/performance#token=T, the page (served without a
        token: it holds no data) sends the token with its fetches."""
        p = self.start_proxy(PGPROXY_ADMIN_TOKEN=TOKEN)
        run_workload(p.port)
        wait_settled(p, {"Authorization": "Bearer " + TOKEN})
        from urllib.parse import quote
        dom = Dom(dump_dom("http://127.0.0.1:%d/debug/performance#token=%s" % (
            p.admin_port, quote(TOKEN, safe=""))))
        self.assertTrue(dom.text.get("status", "").startswith("live"), dom.text.get("status"))
        self.assertEqual(dom.text.get("t-req"), str(EXPECT_REQUESTS))


# ---- tests: authentication ------------------------------------------------------------

class TestAdminToken(h.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.proxy = h.Proxy(CLUSTER, env=proxy_env(PGPROXY_ADMIN_TOKEN=TOKEN),
                            name="pgproxy-token")
        cls.proxy.start()
        cls.proxy.wait_admin()
        run_workload(cls.proxy.port)
        wait_settled(cls.proxy, {"Authorization": "Bearer " + TOKEN})

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            cls.proxy.cleanup()

    PATHS = ("/debug/performance", "/debug/performance/json", "/debug/profiles",
             "/metrics", "/debug/queries", "/debug/slow-queries", "/debug/n-plus-one",
             "/debug/flamegraph.svg", "/debug/connections", "/healthz")

    def test_without_token_401(self):
        # The page itself is public (no data in it); everything with data is not.
        status, _, body = self.proxy.http_get("/debug/performance")
        self.assertEqual(status, 200)
        self.assertNotIn(b"dash_author", body)
        for path in self.PATHS:
            if path == "/debug/performance":
                continue
            with self.subTest(path=path):
                status, hdrs, body = self.proxy.http_get(path)
                self.assertEqual(status, 401, body[:200])
                self.assertEqual(hdrs.get("www-authenticate"), 'Bearer realm="pgproxy"')
                self.assertEqual(json.loads(body), {"error": "unauthorized"})
                self.assertNotIn(b"dash_author", body)

    def test_wrong_tokens_401(self):
        bad = ["Bearer", "Bearer ", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
               "Bearer " + TOKEN.upper(), "Basic " + TOKEN, TOKEN, "Bearer  " + TOKEN,
               "Bearer " + TOKEN + " "]
        for auth in bad:
            for path in ("/debug/performance/json", "/metrics"):
                with self.subTest(auth=auth, path=path):
                    status, _, _ = self.proxy.http_get(path, {"Authorization": auth})
                    self.assertEqual(status, 401)

    def test_token_in_query_string_is_not_accepted(self):
        status, _, _ = self.proxy.http_get("/debug/performance/json?token=" + TOKEN)
        self.assertEqual(status, 401)

    def test_with_token_200(self):
        for scheme in ("Bearer ", "bearer "):
            for path in self.PATHS:
                with self.subTest(path=path, scheme=scheme):
                    status, hdrs, body = self.proxy.http_get(
                        path, {"Authorization": scheme + TOKEN})
                    self.assertEqual(status, 200, body[:200])
        _, hdrs, body = self.proxy.http_get("/debug/performance",
                                            {"Authorization": "Bearer " + TOKEN})
        self.assertTrue(hdrs["content-type"].startswith("text/html"))
        self.assertIn(b"N+1 Patterns", body)
        d = get_json(self.proxy, "/debug/performance/json", {"Authorization": "Bearer " + TOKEN})
        self.assertEqual(d["total_queries"], EXPECT_QUERIES)
        _, _, body = self.proxy.http_get("/metrics", {"Authorization": "Bearer " + TOKEN})
        self.assertRegex(body.decode(), r"(?m)^pgproxy_queries_total %d$" % EXPECT_QUERIES)


# ---- tests: hostile HTTP clients ------------------------------------------------------

class Slowloris(threading.Thread):
    """n concurrent connections to (host, port), each sending a request that
    never ends, one byte per `interval` seconds per connection; a connection
    the server closes is replaced.  Stops at stop() or after `duration` s
    (bounded in count and time).  Counts what happened."""

    REQUEST = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\n"
               b"X-Slow: " + b"a" * 4096)

    def __init__(self, port, n=200, interval=1.0, duration=15.0):
        super().__init__(daemon=True)
        self.port, self.n, self.interval, self.duration = port, n, interval, duration
        self._halt = threading.Event()
        self.stats = {"connects": 0, "connected": 0, "closed_by_server": 0,
                      "connect_failed": 0, "bytes": 0, "max_open": 0}
        self.open_now = 0

    def stop(self):
        self._halt.set()
        self.join(30)

    def _connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        self.stats["connects"] += 1
        rc = s.connect_ex(("127.0.0.1", self.port))
        if rc not in (0, 115):  # EINPROGRESS
            self.stats["connect_failed"] += 1
            s.close()
            return None
        return [s, 0, False]   # socket, bytes sent, connected

    def run(self):
        conns = []
        deadline = time.monotonic() + self.duration
        try:
            while not self._halt.is_set() and time.monotonic() < deadline:
                while len(conns) < self.n:
                    c = self._connect()
                    if c is None:
                        break
                    conns.append(c)
                t0 = time.monotonic()
                keep = []
                for c in conns:
                    s, sent, _ = c
                    try:
                        n = s.send(self.REQUEST[sent:sent + 1])
                        if n == 1:
                            if not c[2]:
                                c[2] = True
                                self.stats["connected"] += 1
                            c[1] += 1
                            self.stats["bytes"] += 1
                        keep.append(c)
                    except (BlockingIOError, InterruptedError):
                        keep.append(c)   # connect still in progress (backlog)
                    except OSError as e:
                        if e.errno == 107:  # ENOTCONN: still connecting
                            keep.append(c)
                            continue
                        self.stats["closed_by_server"] += 1
                        s.close()
                # Closed by the server (EOF or reset) shows up on a read.
                alive = []
                for c in keep:
                    try:
                        data = c[0].recv(4096)
                        if data == b"":
                            raise ConnectionResetError
                        alive.append(c)   # an answer (e.g. 408/431): keep counting
                    except (BlockingIOError, InterruptedError):
                        alive.append(c)
                    except OSError as e:
                        if e.errno == 107:
                            alive.append(c)
                            continue
                        self.stats["closed_by_server"] += 1
                        c[0].close()
                conns = alive
                self.open_now = sum(1 for c in conns if c[2])
                self.stats["max_open"] = max(self.stats["max_open"], len(conns))
                self._halt.wait(max(0.0, self.interval - (time.monotonic() - t0)))
        finally:
            # Leave with a reset, as a killed attacker's host would: with a
            # FIN, the connections that got through while the accept queue
            # was full (their data still in TCP retransmission backoff) hold
            # MHD slots until its 10 s idle timeout, which measures TCP, not
            # the admin server (seen once in 18 rounds: /healthz after 10.0 s).
            for c in conns:
                try:
                    c[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                c[0].close()


def try_healthz(port, timeout):
    """-> ("ok", seconds) on 200, else (what went wrong, seconds)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.1, timeout - (time.monotonic() - t0)))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        took = time.monotonic() - t0
        if data.startswith(b"HTTP/1.1 200"):
            return "ok", took
        return "answer %r" % data[:40], took
    except socket.timeout:
        return "timeout", time.monotonic() - t0
    except ConnectionRefusedError:
        return "refused", time.monotonic() - t0
    except OSError as e:
        return "error %s" % e.__class__.__name__, time.monotonic() - t0


def raw_http(port, data, timeout=10.0):
    """Send bytes to the admin port (a send error once the server has
    answered and closed is fine) -> (status or None, whole answer)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if b"\r\n\r\n" in out:
                    head, _, rest = out.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length: *(\d+)", head)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except ConnectionResetError:
            pass
    finally:
        s.close()
    m = re.match(rb"HTTP/1\.[01] (\d{3})", out)
    return (int(m.group(1)) if m else None), out


class TestAdminHostileClients(h.TestCase):

    def start_proxy(self, **env):
        p = h.Proxy(CLUSTER, env=proxy_env(**env), name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        return p

    def test_huge_header_is_refused(self):
        """A 100 KB header (the per-connection limit is 32 KiB): an HTTP
        error or a closed connection, never a 200, and the server goes on."""
        p = self.start_proxy()
        for name, req in (
                ("one 100 KB header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                 b"b" * 100 * 1024 + b"\r\n\r\n"),
                ("100 KB request line", b"GET /healthz?" + b"q" * 100 * 1024 +
                 b" HTTP/1.1\r\nHost: x\r\n\r\n"),
                ("2000 small headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                 b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"\r\n")):
            with self.subTest(name):
                status, out = raw_http(p.admin_port, req)
                self.assertIn(status, (400, 413, 414, 431, None), out[:300])
                self.assertIsNotNone(status, "expected an HTTP error, got %r" % out[:100])
                self.assertTrue(p.alive())
                self.assertEqual(try_healthz(p.admin_port, 5)[0], "ok")
        p.check()

    def test_malformed_requests(self):
        """Broken requests get an HTTP error (libmicrohttpd's), the server
        goes on; an unknown method on a known path is a 405 with Allow."""
        p = self.start_proxy()
        for name, req, want in (
                ("no HTTP version", b"GET /healthz\r\n\r\n", range(400, 500)),
                ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", range(400, 600)),
                ("unknown method", b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
                ("POST to a GET route", b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Length: 0\r\n\r\n", (405,))):
            with self.subTest(name):
                status, out = raw_http(p.admin_port, req)
                self.assertIn(status, want, out[:300])
                if status == 405:
                    self.assertRegex(out, rb"(?i)\r\nallow: GET, HEAD\r\n")
                self.assertEqual(try_healthz(p.admin_port, 5)[0], "ok")
        p.check()

    def test_request_body_is_refused(self):
        p = self.start_proxy()
        run_workload(p.port)
        wait_settled(p)
        cases = (
            ("GET with Content-Length", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 5\r\n\r\nhello", 413),
            ("POST with a body", b"POST /debug/profiles HTTP/1.1\r\nHost: x\r\n"
             b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 413),
            ("DELETE with a body", b"DELETE /debug/profiles HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 1\r\n\r\nx", 413),
            ("chunked", b"GET /debug/performance/json HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 413),
            ("1 MB announced", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
             b"Content-Length: 1048576\r\n\r\n" + b"z" * 65536, 413),
        )
        for name, req, want in cases:
            with self.subTest(name):
                status, out = raw_http(p.admin_port, req)
                self.assertEqual(status, want, out[:300])
                head, _, body = out.partition(b"\r\n\r\n")
                self.assertEqual(json.loads(body), {"error": "request bodies are not accepted"})
        # The refused DELETE did not clear the store.
        self.assertEqual(len(get_json(p, "/debug/profiles?limit=1000")), EXPECT_REQUESTS)
        self.assertEqual(try_healthz(p.admin_port, 5)[0], "ok")
        p.check()

    def test_slowloris_does_not_slow_the_relay(self):
        """200 slowloris clients on the admin port while pgbench -S -c 4 -T 8
        runs through the proxy, interleaved with quiet runs (3 of each, so
        one outlier cannot decide), then /healthz must answer within 5 s of
        the attackers leaving.

        Margin: attacked median tps >= 0.8 x quiet median.  The admin server
        is one epoll thread; 200 clients sending a byte a second cost it a
        few hundred wakeups per second (measured: no CPU tick in 5 s), so
        any difference is the noise of a shared 2-core machine where
        pgbench, 4 backends and the proxy already saturate both cores (runs
        differ by 10-20 % there; interleaving cancels drift).  A real
        coupling (the admin thread spinning on a full listen queue, or
        holding a lock the loop needs) takes a core or stalls the loop:
        30 % and more.

        During the attack every one of MHD's 64 connection slots is held
        (a byte a second keeps resetting its 10 s idle timeout) and the rest
        wait in the listen backlog, so a normal /healthz is not refused but
        gets no answer: measured and logged, not asserted.
        """
        p = self.start_proxy(PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS="1000")
        if not getattr(TestAdminHostileClients, "_bench_ready", False):
            CLUSTER.create_database(BENCH_DB)
            r = h.pgbench(CLUSTER.port, ["-i", "-q", "-s", "1", BENCH_DB], dbname=BENCH_DB)
            self.assertEqual(r.returncode, 0, r)
            TestAdminHostileClients._bench_ready = True

        def bench():
            t0 = p.cpu_ticks()
            r = h.pgbench(p.port, ["-S", "-n", "-c", "4", "-j", "2", "-T", "8", BENCH_DB],
                          dbname=BENCH_DB, timeout=60)
            self.assertTrue(r.ok(), r)
            # proxy CPU ticks per 10k transactions: the cost the attack adds.
            return r.tps, (p.cpu_ticks() - t0) * 10000.0 / r.processed

        quiet, attacked, after = [], [], []
        for _ in range(3):
            quiet.append(bench())
            atk = Slowloris(p.admin_port, n=200, interval=1.0, duration=15.0)
            atk.start()
            try:
                h.wait_for(lambda: atk.open_now >= 64, 10, interval=0.1,
                           what="64 slowloris clients connected")
                # A normal client probing while pgbench runs.
                probe = []
                prober = threading.Thread(target=lambda: [
                    probe.append(try_healthz(p.admin_port, 2.0)) or time.sleep(0.5)
                    for _ in range(3)], daemon=True)
                prober.start()
                attacked.append(bench())
                prober.join(15)
                open_at_end = atk.open_now
            finally:
                atk.stop()
            self.assertTrue(p.alive())
            # After the attackers are gone the admin server answers again.
            t0 = time.monotonic()
            res = None
            while time.monotonic() - t0 < 10:
                res, _ = try_healthz(p.admin_port, 2.0)
                if res == "ok":
                    break
                time.sleep(0.05)
            after.append((res, time.monotonic() - t0))
            h.log("slowloris: %s, connected at the end %d; /healthz during: %s; "
                  "after: %s in %.2fs" % (atk.stats, open_at_end,
                                          [(r, round(t, 2)) for r, t in probe],
                                          res, after[-1][1]))
        qm = statistics.median(t for t, _ in quiet)
        am = statistics.median(t for t, _ in attacked)
        h.log("pgbench -S -c 4 -T 8 tps: quiet %s (median %.0f), under slowloris %s "
              "(median %.0f), ratio %.2f; proxy CPU ticks per 10k xacts quiet %s, attacked %s" % (
                  ["%.0f" % t for t, _ in quiet], qm, ["%.0f" % t for t, _ in attacked], am,
                  am / qm, ["%.1f" % c for _, c in quiet], ["%.1f" % c for _, c in attacked]))
        self.assertGreaterEqual(am, 0.8 * qm, "the slowloris clients slowed the relay")
        for res, took in after:
            self.assertEqual(res, "ok", "admin server did not recover: %s" % (after,))
            self.assertLess(took, 5.0, after)
        p.check()


# ---- the README screenshot helper -----------------------------------------------------

def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Screenshot of the live dashboard.")
    ap.add_argument("--screenshot", required=True, help="PNG to write")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2150)
    args = ap.parse_args(argv)
    setUpModule()
    p = h.Proxy(CLUSTER, env=proxy_env(), name="pgproxy-shot")
    try:
        p.start()
        p.wait_admin()
        run_rich_workload(p.port)
        idle = [h.connect(p.port, dbname=DB, autocommit=True, application_name=a)
                for a in ("shop-web", "shop-worker")]
        time.sleep(GAP_MS / 1000.0 + 0.5)
        # The flame graph image refreshes every 10 s; wait for the store first.
        wait_settled(p)
        w, hgt = screenshot("http://127.0.0.1:%d/debug/performance" % p.admin_port,
                            args.screenshot, args.width, args.height)
        print("%s: %dx%d" % (args.screenshot, w, hgt))
        for c in idle:
            c.close()
    finally:
        if p.alive():
            p.stop()
        p.cleanup()
        tearDownModule()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

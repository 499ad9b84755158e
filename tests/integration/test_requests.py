"""Request profiles and N+1 detection through pgproxy (issue #4), with real
PostgreSQL 15 and real clients: a Django 3.2 app on psycopg2 whose view
walks article.author (the classic N+1) and a select_related twin that must
not be flagged; requests told apart by sqlcommenter tags, by the session
marker SET pgproxy.request_id and by inference; profiling.notify_client
notices in psycopg 3's notice handler while every result stays right; the
profile endpoints (/debug/profiles, /debug/profiles/{id}?format=...,
DELETE, /debug/n-plus-one, /debug/connections[/{id}], flame graphs).

Run: /usr/bin/python3 -m unittest discover -s tests/integration -p test_requests.py -v
"""

import json
import os
import re
import sys
import time
import unittest
import xml.dom.minidom

import psycopg

import harness as h

CLUSTER = None
DB = "shop"
GAP_MS = 150            # profiling.request_gap_ms in these tests
THRESHOLD = 3           # profiling.n_plus_one_threshold
N_ARTICLES = 8


def setUpModule():
    global CLUSTER
    CLUSTER = h.Cluster(name="pgproxy-req")
    try:
        CLUSTER.init()
        CLUSTER.create_database(DB)
        CLUSTER.admin_sql_socket([
            "CREATE TABLE shop_author (id serial PRIMARY KEY, name text NOT NULL)",
            "CREATE TABLE shop_article (id serial PRIMARY KEY, title text NOT NULL, "
            "author_id int NOT NULL REFERENCES shop_author(id))",
            "INSERT INTO shop_author (name) SELECT 'author ' || i FROM generate_series(1, %d) i"
            % N_ARTICLES,
            "INSERT INTO shop_article (title, author_id) "
            "SELECT 'title ' || i, i FROM generate_series(1, %d) i" % N_ARTICLES,
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO %s" % h.TRUST_USER,
        ], dbname=DB)
    except Exception:
        CLUSTER.destroy()
        raise


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.destroy()


def http_text(proxy, path):
    status, hdrs, body = proxy.http_get(path)
    return status, hdrs, body.decode() if isinstance(body, bytes) else body


def get_json(proxy, path):
    status, hdrs, body = http_text(proxy, path)
    doc = json.loads(body) if body and hdrs.get("content-type", "").startswith(
        "application/json") else body
    return status, hdrs, doc


# ---- the Django app ---------------------------------------------------------------

DJANGO = None


def django_setup(port):
    """Configure Django once per process against the proxy on `port`."""
    global DJANGO
    import django
    from django.conf import settings
    if DJANGO is None:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="pgproxy-integration-test",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[__name__ + ".SqlCommenter"],
            INSTALLED_APPS=[],
            DATABASES={"default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1", "PORT": str(port), "NAME": DB,
                "USER": h.ADMIN_USER, "PASSWORD": h.ADMIN_PASSWORD, "CONN_MAX_AGE": 60,
            }},
            USE_TZ=True,
        )
        django.setup()
        from django.db import models

        class Author(models.Model):
            name = models.TextField()

            class Meta:
                app_label = "shop"

        class Article(models.Model):
            title = models.TextField()
            author = models.ForeignKey(Author, on_delete=models.CASCADE)

            class Meta:
                app_label = "shop"

        DJANGO = {"Author": Author, "Article": Article}
    else:
        from django.db import connections
        connections.close_all()
        settings.DATABASES["default"]["PORT"] = str(port)
        connections["default"].settings_dict["PORT"] = str(port)
    return DJANGO


class SqlCommenter:
    """What sqlcommenter's Django middleware does: tag every statement of a
    request with the view's controller/action, the route and a request id,
    URL-encoded, in a trailing comment (Django 3.2 doubles % as %%)."""

    counter = 0

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.db import connection
        from urllib.parse import quote
        SqlCommenter.counter += 1
        match = request.resolver_match
        view = request.path.strip("/").split("/")[0]
        tags = {"action": "index", "controller": view, "framework": "django:3.2",
                "request_id": "dj-%d-%d" % (os.getpid(), SqlCommenter.counter),
                "route": "%s/" % view}
        comment = ",".join("%s='%s'" % (k, quote(v, safe="").replace("%", "%%"))
                           for k, v in sorted(tags.items()))
        del match

        def wrapper(execute, sql, params, many, context):
            return execute(sql + " /*%s*/" % comment, params, many, context)

        with connection.execute_wrapper(wrapper):
            return self.get_response(request)


def view_articles(request):
    from django.http import HttpResponse
    Article = DJANGO["Article"]
    names = [a.author.name for a in Article.objects.order_by("id")]   # N+1
    return HttpResponse("\n".join(names))


def view_articles_joined(request):
    from django.http import HttpResponse
    Article = DJANGO["Article"]
    names = [a.author.name for a in Article.objects.select_related("author").order_by("id")]
    return HttpResponse("\n".join(names))


def _urlpatterns():
    from django.urls import path
    return [path("articles/", view_articles), path("joined/", view_articles_joined)]


def __getattr__(name):   # ROOT_URLCONF = this module; Django asks for urlpatterns lazily
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


# ---- tests ---------------------------------------------------------------------------

class TestRequestProfiles(h.TestCase):

    def proxy(self, **env):
        e = {"PGPROXY_PROFILING_REQUEST_GAP_MS": str(GAP_MS),
             "PGPROXY_PROFILING_N_PLUS_ONE_THRESHOLD": str(THRESHOLD)}
        e.update(env)
        p = h.Proxy(CLUSTER, env=e, name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        return p

    def profiles(self, proxy, n=None, timeout=5.0):
        """The stored profiles, newest first; waits until there are at least n."""
        doc = []

        def enough():
            nonlocal doc
            status, _, doc = get_json(proxy, "/debug/profiles?order=recent&limit=1000")
            self.assertEqual(status, 200, doc)
            return n is None or len(doc) >= n
        h.wait_for(enough, timeout, what="%s request profiles" % n)
        return doc

    def test_django_n_plus_one_flagged_and_select_related_not(self):
        p = self.proxy()
        models = django_setup(p.port)
        from django.test import Client
        from django.db import connections
        client = Client()
        r = client.get("/articles/")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.content.decode().split("\n"),
                         ["author %d" % i for i in range(1, N_ARTICLES + 1)])
        r = client.get("/joined/")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(len(r.content.decode().split("\n")), N_ARTICLES)
        self.assertIsNotNone(models)
        session_pid = connections["default"].connection.get_backend_pid()
        self.assertTrue(session_pid)
        profs = self.profiles(p, 2)
        by_label = {}
        for prof in profs:
            by_label.setdefault(prof["label"], []).append(prof)
        self.assertIn("articles#index", by_label, [x["label"] for x in profs])
        self.assertIn("joined#index", by_label, [x["label"] for x in profs])
        nplus = by_label["articles#index"][0]
        self.assertFalse(nplus["inferred"])
        self.assertEqual(nplus["source"], "request_id")
        self.assertTrue(nplus["request_id"].startswith("dj-"), nplus["request_id"])
        # Django's connection setup (SET TIME ZONE) may join the first request.
        selects = [q for q in nplus["queries"] if q["normalized"].startswith("SELECT")]
        self.assertEqual(len(selects), N_ARTICLES + 1, nplus["queries"])
        self.assertEqual(len(nplus["n_plus_one"]), 1, nplus["n_plus_one"])
        f = nplus["n_plus_one"][0]
        self.assertEqual(f["type"], "n_plus_one")
        self.assertEqual(f["count"], N_ARTICLES)
        self.assertEqual(f["distinct_values"], N_ARTICLES)
        self.assertIn('FROM "shop_author"', f["normalized"])
        self.assertIn('"shop_author"."id" = ?', f["normalized"])
        self.assertIn('"shop_article"', f["source_normalized"] or "", f)
        self.assertEqual(f["source_rows"], N_ARTICLES)
        # Tags are attributes, never part of the text.
        self.assertNotIn("/*", f["normalized"])
        joined = by_label["joined#index"][0]
        self.assertEqual([q["normalized"][:6] for q in joined["queries"]], ["SELECT"])
        self.assertEqual(joined["n_plus_one"], [])
        # The same finding on that connection's report and in the aggregate.
        status, _, conns = get_json(p, "/debug/connections")
        self.assertEqual(status, 200)
        self.assertEqual(len(conns), 1, conns)
        cid = conns[0]["id"]
        self.assertEqual(conns[0]["database"], DB)
        self.assertGreaterEqual(conns[0]["n_plus_one"], 1)
        status, _, one = get_json(p, "/debug/connections/%d" % cid)
        self.assertEqual(status, 200, one)
        self.assertEqual(one["connection"]["id"], cid)
        found = [x for x in one["n_plus_one"] if x.get("fingerprint") == f["fingerprint"]]
        self.assertTrue(found, one)
        status, _, agg = get_json(p, "/debug/n-plus-one")
        self.assertEqual(status, 200)
        rows = [x for x in agg if x["fingerprint"] == f["fingerprint"]]
        self.assertEqual(len(rows), 1, agg)
        self.assertEqual(rows[0]["label"], "articles#index")
        self.assertEqual(rows[0]["occurrences"], 1)
        # Once more: the same pattern aggregates, it does not duplicate.
        self.assertEqual(client.get("/articles/").status_code, 200)
        connections.close_all()
        self.profiles(p, 3)
        h.wait_for(lambda: get_json(p, "/debug/n-plus-one")[2][0]["occurrences"] == 2, 5,
                   what="a second occurrence")
        status, _, miss = get_json(p, "/debug/connections/999999")
        self.assertEqual(status, 404)

    def test_session_marker_groups_requests(self):
        p = self.proxy()
        with psycopg.connect(CLUSTER.dsn(p.port, dbname=DB), autocommit=True) as c:
            for rid, n in (("req-a", 2), ("req-b", 4)):
                c.execute("SET pgproxy.request_id = '%s'" % rid)
                for i in range(n):
                    self.assertEqual(c.execute("SELECT %s::int", (i,)).fetchone()[0], i)
            c.execute("RESET pgproxy.request_id")
        profs = self.profiles(p, 2)
        ids = {x["request_id"]: x for x in profs if x["request_id"]}
        self.assertEqual(set(ids), {"req-a", "req-b"}, profs)
        self.assertEqual(ids["req-a"]["source"], "session")
        # The SET opens its request, the RESET ends it (and belongs to it).
        self.assertEqual(ids["req-a"]["sql_count"], 3)
        self.assertEqual(ids["req-b"]["sql_count"], 6)
        self.assertEqual(ids["req-b"]["n_plus_one"][0]["type"], "n_plus_one")
        self.assertEqual(ids["req-b"]["n_plus_one"][0]["count"], 4)
        # Renderings of one profile.
        pid = ids["req-b"]["id"]
        status, hdrs, text = http_text(p, "/debug/profiles/%d?format=header" % pid)
        self.assertEqual(status, 200)
        self.assertRegex(text.strip(), r"^total=\S+ sql=\S+\(6q\) app=\S+ n\+1=1$")
        status, _, text = http_text(p, "/debug/profiles/%d?format=collapsed" % pid)
        self.assertEqual(status, 200)
        lines = [ln for ln in text.splitlines() if ln]
        self.assertTrue(lines)
        for ln in lines:
            self.assertRegex(ln, r"^request;[^;\n]+;(sql;[^;\n]+|app) \d+$")
        status, _, doc = get_json(p, "/debug/profiles/%d" % pid)
        self.assertEqual(status, 200)
        self.assertEqual(doc["id"], pid)
        self.assertEqual(len(doc["queries"]), 6)
        self.assertEqual(doc["queries"][1]["normalized"], "SELECT $1::int".replace("$1", "?"))
        self.assertEqual(get_json(p, "/debug/profiles/%d?format=xml" % pid)[0], 400)
        self.assertEqual(get_json(p, "/debug/profiles/123456789")[0], 404)

    def test_inferred_requests_split_by_gap(self):
        p = self.proxy()
        with psycopg.connect(CLUSTER.dsn(p.port, dbname=DB), autocommit=True) as c:
            for _ in range(3):
                c.execute("SELECT 1")
            time.sleep(GAP_MS * 3 / 1000.0)
            for _ in range(2):
                c.execute("SELECT 2")
            time.sleep(GAP_MS * 3 / 1000.0)
            profs = self.profiles(p, 2)
        inferred = [x for x in profs if x["inferred"]]
        self.assertEqual(sorted(x["sql_count"] for x in inferred), [2, 3], profs)
        for x in inferred:
            self.assertIsNone(x["request_id"])
            self.assertEqual(x["source"], "inferred")
            # Same values every time: a duplicate query, not an N+1.
            if x["sql_count"] == 3:
                self.assertEqual([f["type"] for f in x["n_plus_one"]], ["duplicate"])

    def test_notify_client_notice(self):
        p = self.proxy(PGPROXY_PROFILING_NOTIFY_CLIENT="true")
        notices = []
        with psycopg.connect(CLUSTER.dsn(p.port, dbname=DB), autocommit=True) as c:
            # A Diagnostic is only readable inside the handler: copy its fields.
            c.add_notice_handler(lambda d: notices.append(
                (d.severity_nonlocalized, d.sqlstate, d.message_primary)))
            c.execute("SET pgproxy.request_id = 'n1'")
            names = [c.execute("SELECT name FROM shop_author WHERE id = %s", (i,)).fetchone()[0]
                     for i in range(1, 6)]
            self.assertEqual(names, ["author %d" % i for i in range(1, 6)])
            c.execute("SET pgproxy.request_id = 'n2'")       # closes n1
            self.assertEqual(c.execute("SELECT 41 + 1").fetchone()[0], 42)
            # The notice travels between messages: the next result read picks it up.
            deadline = time.monotonic() + 3
            while not notices and time.monotonic() < deadline:
                self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1)
                time.sleep(0.05)
            self.assertEqual(c.execute("SELECT count(*) FROM shop_article").fetchone()[0],
                             N_ARTICLES)
        self.assertEqual(len(notices), 1, notices)
        severity, sqlstate, message = notices[0]
        self.assertEqual(severity, "WARNING")
        self.assertEqual(sqlstate, "01000")
        self.assertIn("N+1", message)
        self.assertIn("5 executions", message)
        self.assertIn("SELECT name FROM shop_author WHERE id = ?", message)

    def test_flamegraph_and_clear(self):
        p = self.proxy()
        with psycopg.connect(CLUSTER.dsn(p.port, dbname=DB), autocommit=True) as c:
            c.execute("/*controller='a;b',action='x\ny'*/ SELECT 1")
            c.execute("SET pgproxy.request_id = 'f2'")
            c.execute("SELECT ';' AS semi")
        self.profiles(p, 2)
        status, hdrs, text = http_text(p, "/debug/flamegraph.txt")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        lines = [ln for ln in text.splitlines() if ln]
        self.assertTrue(any(";sql;" in ln for ln in lines), lines)
        for ln in lines:
            self.assertRegex(ln, r"^request;[^\n]+ \d+$")
            self.assertEqual(len(ln.rsplit(" ", 1)[0].split(";")) in (3, 4), True, ln)
        status, hdrs, svg = http_text(p, "/debug/flamegraph.svg")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("image/svg+xml"))
        dom = xml.dom.minidom.parseString(svg.encode())
        self.assertEqual(dom.documentElement.tagName, "svg")
        self.assertTrue(dom.getElementsByTagName("title"))
        status, _, doc = h_delete(p, "/debug/profiles")
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.profiles(p), [])
        status, _, text = http_text(p, "/debug/flamegraph.txt")
        self.assertEqual(text.strip(), "")
        self.assertEqual(get_json(p, "/debug/profiles?order=fastest")[0], 400)
        self.assertEqual(get_json(p, "/debug/profiles?limit=0")[0], 400)

    def test_metrics_count_requests_and_findings(self):
        p = self.proxy()
        with psycopg.connect(CLUSTER.dsn(p.port, dbname=DB), autocommit=True) as c:
            c.execute("SET pgproxy.request_id = 'm1'")
            for i in range(1, 5):
                c.execute("SELECT name FROM shop_author WHERE id = %s", (i,))
            c.execute("RESET pgproxy.request_id")
        self.profiles(p, 1)
        status, _, text = http_text(p, "/metrics")
        self.assertEqual(status, 200)
        vals = dict(re.findall(r"^(pgproxy_\w+) (\d+)$", text, re.M))
        self.assertGreaterEqual(int(vals["pgproxy_requests_total"]), 1)
        self.assertGreaterEqual(int(vals["pgproxy_n_plus_one_total"]), 1)


def h_delete(proxy, path):
    status, hdrs, body = proxy.http("DELETE", path)
    return status, hdrs, json.loads(body) if body else None


if __name__ == "__main__":
    unittest.main()

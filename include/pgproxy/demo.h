/*
 * demo.h - `pgproxy demo`: the README's first command.
 *
 * Starts a throwaway PostgreSQL cluster in a temporary directory, starts
 * pgproxy itself in front of it as a child process, runs a small web-app
 * workload through pgproxy with libpq (sqlcommenter-tagged requests, one
 * classic N+1, slow queries, a prepared statement, an error inside a
 * transaction), prints where to look, and cleans everything up.  It is a
 * plain blocking program: it never runs inside the proxy's event loop and
 * shares no state with it; the proxy under demonstration is a separate
 * process (/proc/self/exe).
 */
#ifndef PGPROXY_DEMO_H
#define PGPROXY_DEMO_H

/*
 * Run the demo.  argv[0] is "demo"; options: --no-wait, --keep, --port N,
 * --help.  Main thread only: installs SIGINT/SIGTERM/SIGHUP handlers for
 * its duration, forks children (initdb, pg_ctl, pgproxy) and reaps them.
 * Every child it started is stopped and the temporary directory removed
 * (unless --keep) before it returns, on every path.
 * Returns a process exit code: 0 ok, 1 runtime failure (including a
 * nonzero exit status of the pgproxy child), 2 usage error.
 */
int pgp_demo_main(int argc, char **argv);

#endif

/*
 * fuzz_track.c - the tracker fed arbitrary message sequences in both
 * directions.  Input format: a sequence of records
 *   [dir byte: even = client, odd = server][type byte][body len byte][body]
 * each turned into one framed message and fed through the real framer in
 * the given direction, with a tick that advances per record.  Checks: no
 * crash, no out-of-range access, no leak (ASan), events are well formed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/proto.h"
#include "pgproxy/track.h"

static void on_event(void *ud, const pgp_track_event_t *ev)
{
    size_t *count = ud;
    (*count)++;
    if (ev->end_ticks < ev->start_ticks)
        abort();
    if (ev->sql == NULL || strnlen(ev->sqlstate, sizeof(ev->sqlstate)) > 5)
        abort();
    /* Touch every byte of the SQL so ASan sees an overread. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < ev->sql_len; i++)
        sink ^= (uint8_t)ev->sql[i];
    if (ev->statement != NULL)
        sink ^= (uint8_t)strlen(ev->statement);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t events = 0;
    pgp_track_t *t = pgp_track_create(64, on_event, &events);
    if (t == NULL)
        return 0;
    pgp_framer_t c2s, s2c;
    pgp_framer_init(&c2s, 1u << 20);
    pgp_framer_init(&s2c, 1u << 20);
    uint8_t msg[5 + 255];
    uint64_t now = 1;
    size_t pos = 0;
    while (pos + 3 <= size) {
        uint8_t dir = data[pos], type = data[pos + 1], blen = data[pos + 2];
        pos += 3;
        if (blen > size - pos)
            blen = (uint8_t)(size - pos);
        msg[0] = type;
        pgp_put_be32(msg + 1, 4u + blen);
        memcpy(msg + 5, data + pos, blen);
        pos += blen;
        pgp_track_set_now(t, now += 7);
        pgp_framer_t *f = (dir & 1) ? &s2c : &c2s;
        const pgp_frame_ops_t *ops = (dir & 1) ? &pgp_track_server_ops : &pgp_track_client_ops;
        /* Split the message at a data-dependent point to exercise fragments. */
        size_t total = 5u + blen, cut = (dir >> 1) % (total + 1);
        size_t bad;
        if (pgp_framer_feed(f, msg, cut, ops, t, &bad) != PGP_FRAME_OK ||
            pgp_framer_feed(f, msg + cut, total - cut, ops, t, &bad) != PGP_FRAME_OK)
            abort();   /* every record is well framed */
    }
    pgp_track_stats_t st;
    pgp_track_get_stats(t, &st);
    if (st.events != events)
        abort();
    pgp_track_destroy(t);
    return 0;
}

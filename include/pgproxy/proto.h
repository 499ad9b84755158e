/*
 * proto.h - PostgreSQL v3 wire protocol: incremental framing, startup
 * packet parsing, and the few messages pgproxy writes itself.
 *
 * The framer walks a byte stream chunk by chunk and reports message
 * boundaries (type + length) and body fragments to an optional observer,
 * without copying or waiting for a whole message: the relay forwards each
 * chunk as it arrives and the framer only keeps the <= 5 header bytes
 * that may straddle two chunks.  The length field is checked (>= 4 and
 * <= the configured maximum) before anything else looks at the message.
 *
 * This module is a leaf: no libuv, no allocation, no I/O.
 */
#ifndef PGPROXY_PROTO_H
#define PGPROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGP_MUST_CHECK __attribute__((warn_unused_result))

/* Frontend (client -> server) message types, named as in the PostgreSQL docs. */
enum {
    PGP_FE_BIND = 'B',
    PGP_FE_CLOSE = 'C',
    PGP_FE_COPY_DATA = 'd',
    PGP_FE_COPY_DONE = 'c',
    PGP_FE_COPY_FAIL = 'f',
    PGP_FE_DESCRIBE = 'D',
    PGP_FE_EXECUTE = 'E',
    PGP_FE_FLUSH = 'H',
    PGP_FE_FUNCTION_CALL = 'F',
    PGP_FE_PARSE = 'P',
    PGP_FE_PASSWORD = 'p',  /* also SASLInitialResponse, SASLResponse, GSSResponse */
    PGP_FE_QUERY = 'Q',
    PGP_FE_SYNC = 'S',
    PGP_FE_TERMINATE = 'X',
};

/* Backend (server -> client) message types. */
enum {
    PGP_BE_AUTHENTICATION = 'R',
    PGP_BE_BACKEND_KEY_DATA = 'K',
    PGP_BE_BIND_COMPLETE = '2',
    PGP_BE_CLOSE_COMPLETE = '3',
    PGP_BE_COMMAND_COMPLETE = 'C',
    PGP_BE_COPY_DATA = 'd',
    PGP_BE_COPY_DONE = 'c',
    PGP_BE_COPY_IN_RESPONSE = 'G',
    PGP_BE_COPY_OUT_RESPONSE = 'H',
    PGP_BE_COPY_BOTH_RESPONSE = 'W',
    PGP_BE_DATA_ROW = 'D',
    PGP_BE_EMPTY_QUERY_RESPONSE = 'I',
    PGP_BE_ERROR_RESPONSE = 'E',
    PGP_BE_FUNCTION_CALL_RESPONSE = 'V',
    PGP_BE_NEGOTIATE_PROTOCOL_VERSION = 'v',
    PGP_BE_NO_DATA = 'n',
    PGP_BE_NOTICE_RESPONSE = 'N',
    PGP_BE_NOTIFICATION_RESPONSE = 'A',
    PGP_BE_PARAMETER_DESCRIPTION = 't',
    PGP_BE_PARAMETER_STATUS = 'S',
    PGP_BE_PARSE_COMPLETE = '1',
    PGP_BE_PORTAL_SUSPENDED = 's',
    PGP_BE_READY_FOR_QUERY = 'Z',
    PGP_BE_ROW_DESCRIPTION = 'T',
};

/* Startup-phase request codes (the "protocol version" field). */
#define PGP_PROTO_CANCEL_REQUEST_CODE  80877102u  /* 1234.5678 */
#define PGP_PROTO_SSL_REQUEST_CODE     80877103u  /* 1234.5679 */
#define PGP_PROTO_GSSENC_REQUEST_CODE  80877104u  /* 1234.5680 */
#define PGP_PROTO_MAJOR(v) ((v) >> 16)
#define PGP_PROTO_MINOR(v) ((v) & 0xFFFFu)

/* PostgreSQL's MAX_STARTUP_PACKET_LENGTH. */
#define PGP_PROTO_STARTUP_MAX_BYTES 10000u
/* Protocol 3.2 allows cancel keys of up to 256 bytes. */
#define PGP_PROTO_CANCEL_KEY_MAX_BYTES 256u

/* Framer result codes. */
#define PGP_FRAME_OK 0
#define PGP_FRAME_EBADLEN (-1)   /* length field < 4 or > maximum */

/*
 * Observer of framed messages.  Every callback may be NULL.  `begin` gets
 * the type byte and the length field (which counts itself, not the type);
 * `body` gets the body in order, in one or more fragments (none when the
 * body is empty); `end` follows the last fragment.  Fragments are borrowed
 * (valid until the callback returns).
 */
typedef struct pgp_frame_ops {
    void (*begin)(void *ud, uint8_t type, uint32_t len);
    void (*body)(void *ud, const uint8_t *p, size_t n);
    void (*end)(void *ud, uint8_t type);
} pgp_frame_ops_t;

/* Incremental framer state for one direction of one session. */
typedef struct pgp_framer {
    uint32_t max_len;      /* largest accepted length field */
    uint32_t body_left;    /* body bytes of the current message not yet seen */
    uint8_t hdr[5];        /* header bytes straddling a chunk boundary */
    uint8_t hdr_len;       /* how many of hdr are filled; 0 at a boundary */
    uint8_t cur_type;      /* type of the message whose body is being passed */
    bool in_body;          /* a begin was reported and its end is pending */
    uint64_t msg_count;    /* complete headers seen */
} pgp_framer_t;

/* Start a framer at a message boundary; lengths above max_len (>= 4) are refused. */
void pgp_framer_init(pgp_framer_t *f, uint32_t max_len);

/*
 * Feed the next chunk of the stream.  Reports boundaries and bodies to ops
 * (may be NULL).  Returns PGP_FRAME_OK, or PGP_FRAME_EBADLEN when a length
 * field is invalid; then *bad_at (if not NULL) is the offset in `data` at
 * which the offending message's header began (the bytes before it were
 * well-formed; for a header straddling chunks it is 0) and the framer is
 * poisoned: every later call returns PGP_FRAME_EBADLEN.
 */
PGP_MUST_CHECK int pgp_framer_feed(pgp_framer_t *f, const uint8_t *data, size_t len,
                                   const pgp_frame_ops_t *ops, void *ud, size_t *bad_at);

/* True when the stream so far ends exactly on a message boundary. */
bool pgp_framer_at_boundary(const pgp_framer_t *f);

/* Kinds of startup packet. */
typedef enum pgp_startup_kind {
    PGP_STARTUP_MESSAGE = 1,
    PGP_STARTUP_SSL_REQUEST,
    PGP_STARTUP_GSSENC_REQUEST,
    PGP_STARTUP_CANCEL_REQUEST,
} pgp_startup_kind_t;

/* A parsed startup packet; pointers borrow the packet buffer. */
typedef struct pgp_startup {
    pgp_startup_kind_t kind;
    uint32_t code;                  /* protocol version or request code */
    /* PGP_STARTUP_MESSAGE: NUL-terminated, inside the packet; NULL if absent. */
    const char *user;
    const char *database;           /* defaults to user, as PostgreSQL does */
    const char *application_name;
    uint32_t param_count;
    /* PGP_STARTUP_CANCEL_REQUEST */
    uint32_t cancel_pid;
    const uint8_t *cancel_key;
    uint32_t cancel_key_len;
} pgp_startup_t;

/*
 * Read the length prefix of a startup packet from the first 4 bytes of
 * `hdr`.  Returns the total packet length, or 0 when it is outside
 * [8, PGP_PROTO_STARTUP_MAX_BYTES].
 */
uint32_t pgp_startup_length(const uint8_t hdr[4]);

/*
 * Parse one complete startup packet (`len` bytes including the length
 * word).  Returns 0 and fills *out, or -1 with a short reason in *why
 * (static string) when the packet is malformed: wrong length for its
 * kind, unsupported protocol major version, parameters not terminated,
 * missing "user".
 */
PGP_MUST_CHECK int pgp_startup_parse(const uint8_t *pkt, size_t len, pgp_startup_t *out,
                                     const char **why);

/*
 * Write an ErrorResponse with fields S and V = severity, C = sqlstate and
 * M = message into out.  severity is cut to 16 bytes, sqlstate to 5, and
 * the message to fit (possibly inside a UTF-8 sequence: callers pass ASCII).  Returns the number of
 * bytes written, or 0 when cap is too small for even an empty message.
 */
size_t pgp_proto_error_response(uint8_t *out, size_t cap, const char *severity,
                                const char *sqlstate, const char *message);

/* The same as a NoticeResponse (e.g. severity "WARNING", sqlstate "01000"). */
size_t pgp_proto_notice_response(uint8_t *out, size_t cap, const char *severity,
                                 const char *sqlstate, const char *message);

/* Write a CancelRequest packet (key of 4..256 bytes).  Returns bytes written (12 + key_len) or 0. */
size_t pgp_proto_cancel_request(uint8_t *out, size_t cap, uint32_t pid, const uint8_t *key,
                                uint32_t key_len);

/* First byte of a TLS handshake record: a client starting TLS directly (PostgreSQL 17). */
#define PGP_PROTO_TLS_HANDSHAKE_BYTE 0x16u

/* Authentication request codes (the int32 after 'R'). */
#define PGP_PROTO_AUTH_OK 0u
#define PGP_PROTO_AUTH_SASL 10u

/*
 * In a complete AuthenticationSASL message (type 'R', length, code 10, the
 * mechanism names, an empty name) remove every "SCRAM-SHA-256-PLUS" in
 * place and fix the length.  Returns the message's new length: len itself
 * when nothing changed, the message is another one, or it does not parse.
 */
size_t pgp_proto_strip_scram_plus(uint8_t *msg, size_t len);

/*
 * The gs2 channel-binding flag in a SASLInitialResponse body (mechanism
 * name, NUL, int32 length, client-first-message): 'n', 'y' or 'p'; 0 when
 * the bytes given (a prefix will do) do not reach it or do not parse.
 */
int pgp_proto_sasl_gs2_flag(const uint8_t *body, size_t n);

/* Big-endian helpers for wire integers. */
static inline uint32_t pgp_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void pgp_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif

/*
 * A small test harness for the wxmedia C tests.
 *
 * One binary (wxm_ctest) holds every test case.  It starts its own emulator
 * (a real HTTP server on 127.0.0.1), scripts it through the admin API with a
 * tiny HTTP/1.1 client written here, runs the cases one by one and prints
 * "ok - NAME" / "FAIL - NAME" for each, then a closing "N passed, N failed".
 *
 * Test code uses CHECK(cond[, fmt, ...]) (records a failure, goes on) and
 * REQUIRE(cond[, fmt, ...]) (records a failure, leaves the test function).
 */
#ifndef WXM_TEST_HARNESS_H
#define WXM_TEST_HARNESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wxmedia.h"

/* ---- the test registry ---------------------------------------------- */

typedef void (*test_fn)(void);

typedef struct {
    const char *name;
    test_fn fn;
    int valgrind; /* part of the (slow) valgrind subset */
} test_case;

/* Defined by each tests/c/test_*.c file: a table ended by {NULL, NULL, 0}. */
extern const test_case download_tests[];
extern const test_case upload_tests[];
extern const test_case cancel_tests[];
extern const test_case args_tests[];
extern const test_case thread_tests[];
extern const test_case error_tests[];
extern const test_case callback_tests[];

/* Record a failure of the current test: "file:line: cond: message". */
void t_fail(const char *file, int line, const char *cond, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
int t_failed(void); /* has the current test failed? */
void t_note(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* CHECK(cond) or CHECK(cond, "printf format", args...).  The appended "%s", ""
 * gives the message-less form a format; the test build passes
 * -Wno-format-extra-args for it. */
#define CHECK(...) CHECK_IMPL_(__VA_ARGS__, "%s", "")
#define CHECK_IMPL_(cond, ...)                                                 \
    do {                                                                       \
        if (!(cond)) t_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);           \
    } while (0)

#define REQUIRE(...) REQUIRE_IMPL_(__VA_ARGS__, "%s", "")
#define REQUIRE_IMPL_(cond, ...)                                               \
    do {                                                                       \
        if (!(cond)) {                                                         \
            t_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
            return;                                                            \
        }                                                                      \
    } while (0)

/* CHECK_RC(rc, expected): an int32_t result with its strerror text. */
#define CHECK_RC(rc, expected)                                                 \
    do {                                                                       \
        int32_t rc_ = (rc), ex_ = (expected);                                  \
        if (rc_ != ex_) {                                                      \
            t_fail(__FILE__, __LINE__, #rc, "= %d (%s), expected %d (%s)",     \
                   (int)rc_, wxm_strerror(rc_), (int)ex_, wxm_strerror(ex_)); \
        }                                                                      \
    } while (0)

#define REQUIRE_RC(rc, expected)                                               \
    do {                                                                       \
        int32_t rc_ = (rc), ex_ = (expected);                                  \
        if (rc_ != ex_) {                                                      \
            t_fail(__FILE__, __LINE__, #rc, "= %d (%s), expected %d (%s)",     \
                   (int)rc_, wxm_strerror(rc_), (int)ex_, wxm_strerror(ex_)); \
            return;                                                            \
        }                                                                      \
    } while (0)

/* ---- the emulator ---------------------------------------------------- */

/* The static access_token the emulator is started with.  It is distinctive
 * on purpose: tests search error messages for it. */
#define TEST_TOKEN "wxmTOKEN-7f3a9c1d-do-not-leak"
#define TEST_CORPID "wxm-corp"
#define TEST_SECRET "wxm-secret"

extern char g_base_url[160]; /* "http://127.0.0.1:PORT" */
extern char g_tmpdir[256];  /* a fresh directory, removed at exit */

/* A path inside g_tmpdir (static buffer per call site is the caller's). */
void tmp_path(char *out, size_t cap, const char *name);

/* ---- admin API ------------------------------------------------------- */

/* One HTTP request to the emulator.  Returns the HTTP status (or -1 on a
 * transport failure); *body (malloc'd, NUL-terminated) receives the body. */
int http_request(const char *method, const char *path, const char *json_body,
                 char **body);

/* POST a JSON body to an admin path; returns 1 when the status is 2xx. */
int admin_post(const char *path, const char *json_fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Register a media with generated content.  Returns 1 on success. */
int admin_media_gen(const char *media_id, uint64_t size, uint64_t seed,
                    const char *filename, const char *content_type);

/* Queue a fault (the JSON object's body, without braces, e.g.
 * "\"kind\":\"stall\",\"ms\":20000").  Returns 1 on success. */
int admin_fault(const char *json_fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Clear faults and stats. */
int admin_reset(void);

/* ---- a minimal JSON reader -------------------------------------------- */

typedef enum { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_ARR, JV_OBJ } jv_type;

typedef struct jv {
    jv_type type;
    char *key;        /* member name inside an object, else NULL */
    char *str;        /* JV_STR: decoded text; JV_NUM: the literal */
    int boolean;
    struct jv *child; /* first element / member */
    struct jv *next;  /* next sibling */
} jv;

jv *jv_parse(const char *text);          /* NULL on a syntax error */
void jv_free(jv *v);
const jv *jv_get(const jv *obj, const char *key); /* NULL when absent */
const char *jv_str(const jv *v);         /* NULL unless a string */
int jv_u64(const jv *v, uint64_t *out);  /* 1 if a non-negative integer */
int jv_i64(const jv *v, int64_t *out);   /* 1 if an integer */

/* GET an admin path and parse it; NULL on failure.  Caller frees. */
jv *admin_get_json(const char *path);

/* ---- content helpers ----------------------------------------------- */

/* Byte k of the emulator's generated media with this seed (CONTRACT.md). */
void gen_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len);

/* SHA-256 as 64 lowercase hex characters plus NUL. */
void sha256_hex(const uint8_t *data, size_t len, char out[65]);

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    uint8_t block[64];
    size_t fill;
} sha256_ctx;
void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const uint8_t *data, size_t len);
void sha256_final_hex(sha256_ctx *c, char out[65]);

/* Write len bytes to path; returns 1 on success. */
int write_file(const char *path, const uint8_t *data, size_t len);
/* Read a whole file (malloc'd); returns 1 on success. */
int read_file(const char *path, uint8_t **data, size_t *len);

/* A client configured for the emulator. chunk 0 / parallelism 0 keep the
 * library's defaults.  max_attempts 0 keeps the default retry policy. */
wxm_client *test_client(uint64_t chunk, uint32_t parallelism,
                        uint32_t max_attempts);
/* Same with a caller-chosen token (NULL: none). */
wxm_client *test_client_token(const char *token, uint64_t chunk,
                              uint32_t parallelism, uint32_t max_attempts);

/* Seconds since an arbitrary point (CLOCK_MONOTONIC). */
double now_s(void);
void sleep_ms(unsigned ms);

/* ---- callback recorders ------------------------------------------------ */

/* A sink that checks every byte against generated content, the order of
 * offsets, and the calling thread.  abort_on_call: return abort_value on that
 * call (1-based); 0 never aborts. */
typedef struct {
    uint64_t seed;
    uint64_t first; /* the first offset seen (UINT64_MAX before any call) */
    uint64_t next;  /* the offset the next call must have */
    uint64_t calls, bytes, empty_calls;
    int out_of_order, mismatch, wrong_thread;
    pthread_t thread;
    uint64_t abort_on_call;
    int32_t abort_value;
    uint64_t calls_after_abort;
    uint8_t *scratch;
    size_t scratch_cap;
} vsink;
void vsink_init(vsink *s, uint64_t seed, uint64_t start);
void vsink_done(vsink *s);
int32_t vsink_fn(void *user_data, uint64_t offset, const uint8_t *data,
                 size_t len);

/* A progress callback that checks done is monotonic and total is stable. */
typedef struct {
    uint64_t calls, last_done, last_total;
    int backwards, total_changed, over_total, wrong_thread;
    pthread_t thread;
    uint64_t abort_at; /* return 1 once done >= abort_at (0: never) */
} vprogress;
void vprogress_init(vprogress *p);
int32_t vprogress_fn(void *user_data, uint64_t done, uint64_t total);

/* Check the emulator's log of Range requests for media_id: each one has a
 * Range header, starts at a multiple of 16, asks for at most chunk bytes and,
 * after the first one (made before the size is known), ends inside the
 * media.  Returns the number of requests, -1 on a violation
 * (already reported), or -2 when the stats could not be read.  *min_start
 * (optional) gets the smallest start. */
long check_ranges(const char *media_id, uint64_t chunk, uint64_t size,
                  uint64_t *min_start);

/* An integer from /__admin/stats, e.g. "max_concurrent_connections".
 * Returns 1 on success. */
int stats_u64(const char *key, uint64_t *out);

/* Compare a file with generated content; returns 1 when equal. */
int file_matches_gen(const char *path, uint64_t seed, uint64_t size);

/* Does a C string contain the test token (or the secret)? NULL is fine. */
int leaks_secret(const char *s);

/* The event handler of every test_client: flags a malformed event or one
 * that shows a secret; the runner fails the test that had one. */
void check_event(void *user_data, const wxm_event *ev);
/* How many bad events since the last call (and the first one, into
 * first[cap]); starts afresh. */
unsigned long bad_events_take(char *first, size_t cap);

#endif

/*
 * Uploads from a path and from a reader, against the emulator, which
 * reports the size and SHA-256 of what it received.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

/* Compare the emulator's record of media_id with what we sent. */
static void check_uploaded(const char *media_id, const uint8_t *data,
                           size_t len, const char *filename)
{
    char path[512], want[65];
    jv *m;
    uint64_t size = 0;
    const char *sha, *name;
    snprintf(path, sizeof path, "/__admin/media/%s", media_id);
    m = admin_get_json(path);
    if (m == NULL) {
        t_fail(__FILE__, __LINE__, "check_uploaded", "the emulator does not know media %s",
               media_id);
        return;
    }
    sha256_hex(data, len, want);
    sha = jv_str(jv_get(m, "sha256"));
    name = jv_str(jv_get(m, "filename"));
    CHECK(jv_u64(jv_get(m, "size"), &size) && size == len,
          "emulator got %llu bytes, sent %lu", (unsigned long long)size,
          (unsigned long)len);
    CHECK(sha != NULL && strcmp(sha, want) == 0, "sha256 %s, sent %s",
          sha ? sha : "(none)", want);
    if (filename != NULL) {
        CHECK(name != NULL && strcmp(name, filename) == 0,
              "filename '%s', sent '%s'", name ? name : "(none)", filename);
    }
    jv_free(m);
}

static uint8_t *gen_buf(uint64_t seed, size_t len)
{
    uint8_t *b = (uint8_t *)malloc(len ? len : 1);
    if (b != NULL) gen_fill(seed, 0, b, len);
    return b;
}

static void up_path(void)
{
    const size_t len = 300001;
    uint8_t *data = gen_buf(31, len);
    char path[300];
    wxm_client *client;
    wxm_upload *u;
    vprogress p;
    const char *id;
    uint64_t uploads = 0;
    REQUIRE(data != NULL);
    tmp_path(path, sizeof path, "upload-1.bin");
    REQUIRE(write_file(path, data, len));
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);

    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK(wxm_upload_media_id(u) == NULL || wxm_upload_media_id(u)[0] == '\0',
          "media_id before the run");
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    vprogress_init(&p);
    CHECK_RC(wxm_upload_set_progress(u, vprogress_fn, &p), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_OK);
    id = wxm_upload_media_id(u);
    CHECK(id != NULL && id[0] != '\0', "no media_id");
    CHECK(wxm_upload_type(u) != NULL && strcmp(wxm_upload_type(u), "file") == 0,
          "type = %s", wxm_upload_type(u));
    CHECK(wxm_upload_created_at(u) > 1000000000, "created_at = %lld",
          (long long)wxm_upload_created_at(u));
    CHECK(p.calls > 0 && p.last_done == len && !p.backwards && !p.wrong_thread,
          "progress %llu/%llu", (unsigned long long)p.last_done,
          (unsigned long long)p.last_total);
    if (id != NULL && id[0] != '\0') check_uploaded(id, data, len, "upload-1.bin");
    CHECK(stats_u64("uploads", &uploads) && uploads == 1, "uploads = %llu",
          (unsigned long long)uploads);
    CHECK(wxm_upload_errmsg(u) != NULL && wxm_upload_errmsg(u)[0] == '\0',
          "errmsg after a success: '%s'", wxm_upload_errmsg(u));
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

/* A UTF-8 filename with spaces and parentheses reaches the server intact. */
static void up_path_filename(void)
{
    const size_t len = 4096;
    static const char name[] = "\xe6\x8a\xa5\xe5\x91\x8a 2024 (final).txt";
    uint8_t *data = gen_buf(33, len);
    char path[300];
    wxm_client *client;
    wxm_upload *u;
    REQUIRE(data != NULL);
    tmp_path(path, sizeof path, "plain-name.bin");
    REQUIRE(write_file(path, data, len));
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_set_filename(u, name), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_OK);
    if (wxm_upload_media_id(u) != NULL)
        check_uploaded(wxm_upload_media_id(u), data, len, name);
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    uint64_t calls, calls_after_stop;
    int64_t fail_at;   /* return -1 once pos >= fail_at (-1: never) */
    size_t stop_short; /* claim EOF this many bytes early */
    int stopped, wrong_thread;
    pthread_t thread;
} mem_reader;

static int64_t mem_read(void *user_data, uint8_t *buf, size_t cap)
{
    mem_reader *r = (mem_reader *)user_data;
    size_t n, end = r->len - r->stop_short;
    r->calls++;
    if (!pthread_equal(r->thread, pthread_self())) r->wrong_thread = 1;
    if (r->stopped) r->calls_after_stop++;
    if (r->fail_at >= 0 && (int64_t)r->pos >= r->fail_at) {
        r->stopped = 1;
        return -1;
    }
    /* Short reads on purpose: a reader may return fewer bytes than asked. */
    n = cap / 3 + 1;
    if (n > cap) n = cap;
    if (n > end - r->pos) n = end - r->pos;
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (int64_t)n;
}

static void mem_reader_init(mem_reader *r, const uint8_t *data, size_t len)
{
    memset(r, 0, sizeof *r);
    r->data = data;
    r->len = len;
    r->fail_at = -1;
    r->thread = pthread_self();
}

static void up_reader(void)
{
    const size_t len = 777777;
    uint8_t *data = gen_buf(32, len);
    wxm_client *client;
    wxm_upload *u;
    mem_reader r;
    REQUIRE(data != NULL);
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    mem_reader_init(&r, data, len);
    CHECK_RC(wxm_upload_set_reader(u, mem_read, &r, len), WXM_OK);
    CHECK_RC(wxm_upload_set_filename(u, "reader.bin"), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_OK);
    CHECK(r.pos == len, "reader gave %lu of %lu bytes", (unsigned long)r.pos,
          (unsigned long)len);
    CHECK(!r.wrong_thread, "reader called on another thread");
    if (wxm_upload_media_id(u) != NULL)
        check_uploaded(wxm_upload_media_id(u), data, len, "reader.bin");
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

/* A reader that returns a negative number stops the upload: WXM_E_ABORTED. */
static void up_reader_abort(void)
{
    const size_t len = 500000;
    uint8_t *data = gen_buf(34, len);
    wxm_client *client;
    wxm_upload *u;
    mem_reader r;
    REQUIRE(data != NULL);
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    mem_reader_init(&r, data, len);
    r.fail_at = 100000;
    CHECK_RC(wxm_upload_set_reader(u, mem_read, &r, len), WXM_OK);
    CHECK_RC(wxm_upload_set_filename(u, "abort.bin"), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_E_ABORTED);
    CHECK(r.stopped && r.calls_after_stop == 0,
          "reader called %llu times after it said stop",
          (unsigned long long)r.calls_after_stop);
    CHECK(wxm_upload_errmsg(u) != NULL && !leaks_secret(wxm_upload_errmsg(u)),
          "errmsg %s", wxm_upload_errmsg(u));
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

/* A reader that ends before the announced length is an error, not a
 * silently short file. */
static void up_reader_short(void)
{
    const size_t len = 200000;
    uint8_t *data = gen_buf(35, len);
    wxm_client *client;
    wxm_upload *u;
    mem_reader r;
    int32_t rc;
    uint64_t uploads = 0;
    REQUIRE(data != NULL);
    client = test_client(0, 0, 1);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    mem_reader_init(&r, data, len);
    r.stop_short = 1000;
    CHECK_RC(wxm_upload_set_reader(u, mem_read, &r, len), WXM_OK);
    CHECK_RC(wxm_upload_set_filename(u, "short.bin"), WXM_OK);
    rc = wxm_upload_run(u);
    CHECK_RC(rc, WXM_E_IO);
    CHECK(stats_u64("uploads", &uploads) && uploads == 0,
          "the emulator stored %llu upload(s) from a short reader",
          (unsigned long long)uploads);
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

/* Rejections the library makes itself answer WeChat's codes, and send
 * nothing. */
static void up_local_rejects(void)
{
    static const uint8_t tiny[3] = {1, 2, 3};
    uint8_t *data = gen_buf(36, 1000);
    char p_tiny[300], p_empty[300], p_ok[300], p_missing[300];
    wxm_client *client;
    wxm_upload *u;
    jv *stats;
    const jv *req;
    uint64_t n = 0;
    REQUIRE(data != NULL);
    tmp_path(p_tiny, sizeof p_tiny, "tiny.bin");
    tmp_path(p_empty, sizeof p_empty, "empty.bin");
    tmp_path(p_ok, sizeof p_ok, "ok.bin");
    tmp_path(p_missing, sizeof p_missing, "missing.bin");
    REQUIRE(write_file(p_tiny, tiny, sizeof tiny));
    REQUIRE(write_file(p_empty, tiny, 0));
    REQUIRE(write_file(p_ok, data, 1000));
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);

    u = wxm_upload_new(client, "bogus");
    REQUIRE(u != NULL, "upload_new accepts any type string");
    CHECK_RC(wxm_upload_set_path(u, p_ok), WXM_OK);
    CHECK_RC(wxm_upload_run(u), 40004);
    wxm_upload_free(u);

    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, p_tiny), WXM_OK);
    CHECK_RC(wxm_upload_run(u), 40006);
    wxm_upload_free(u);

    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, p_empty), WXM_OK);
    CHECK_RC(wxm_upload_run(u), 44001);
    wxm_upload_free(u);

    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    {
        int32_t rc = wxm_upload_set_path(u, p_missing);
        if (rc == WXM_OK) rc = wxm_upload_run(u);
        CHECK_RC(rc, WXM_E_IO);
    }
    wxm_upload_free(u);

    /* Nothing to send: neither a path nor a reader. */
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    {
        int32_t rc = wxm_upload_run(u);
        CHECK(rc == WXM_E_INVALID_ARG || rc == WXM_E_STATE,
              "run without a source: %d (%s)", (int)rc, wxm_strerror(rc));
    }
    wxm_upload_free(u);

    stats = admin_get_json("/__admin/stats");
    req = jv_get(jv_get(stats, "requests"), "media/upload");
    CHECK(stats != NULL && (req == NULL || (jv_u64(req, &n) && n == 0)),
          "local rejections reached the server (%llu requests)",
          (unsigned long long)n);
    jv_free(stats);
    wxm_client_free(client);
    free(data);
}

/* An errcode answered by the server passes through unchanged. */
static void up_server_errcode(void)
{
    uint8_t *data = gen_buf(37, 2000);
    char path[300];
    wxm_client *client;
    wxm_upload *u;
    REQUIRE(data != NULL);
    tmp_path(path, sizeof path, "srv-err.bin");
    REQUIRE(write_file(path, data, 2000));
    REQUIRE(admin_fault("\"kind\":\"errcode\",\"endpoint\":\"media/upload\","
                        "\"errcode\":45009,\"count\":10"));
    client = test_client(0, 0, 1);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_run(u), 45009);
    CHECK(wxm_upload_errmsg(u) != NULL && wxm_upload_errmsg(u)[0] != '\0',
          "no errmsg after a failure");
    CHECK(!leaks_secret(wxm_upload_errmsg(u)), "errmsg leaks the token: %s",
          wxm_upload_errmsg(u));
    wxm_upload_free(u);
    wxm_client_free(client);
    free(data);
}

const test_case upload_tests[] = {
    {"upload_path", up_path, 1},
    {"upload_path_utf8_filename", up_path_filename, 0},
    {"upload_reader", up_reader, 1},
    {"upload_reader_abort", up_reader_abort, 0},
    {"upload_reader_short", up_reader_short, 0},
    {"upload_local_rejects", up_local_rejects, 0},
    {"upload_server_errcode", up_server_errcode, 0},
    {NULL, NULL, 0}};

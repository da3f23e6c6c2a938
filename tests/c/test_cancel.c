/*
 * Stopping transfers: a sink or progress callback that says stop
 * (WXM_E_ABORTED), and wxm_*_cancel from a second thread while the server
 * stalls (WXM_E_CANCELLED, promptly).
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KiB 1024ULL

/* The sink returns non-zero on its second call: the transfer stops with
 * WXM_E_ABORTED, and the sink is not called again. */
static void abort_from_sink(void)
{
    wxm_client *client;
    wxm_download *d;
    vsink s;
    REQUIRE(admin_media_gen("ab-sink", 512 * KiB, 51, NULL, NULL));
    client = test_client(64 * KiB, 1, 0);
    REQUIRE(client != NULL);
    d = wxm_download_new(client, "ab-sink");
    REQUIRE(d != NULL);
    vsink_init(&s, 51, 0);
    s.abort_on_call = 2;
    s.abort_value = 7; /* any non-zero value means stop */
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_E_ABORTED);
    CHECK(s.calls == 2, "sink called %llu times, expected 2",
          (unsigned long long)s.calls);
    CHECK(s.calls_after_abort == 0, "sink called after it said stop");
    CHECK(!s.mismatch && !s.out_of_order, "bytes before the abort were wrong");
    CHECK(wxm_download_errmsg(d) != NULL && wxm_download_errmsg(d)[0] != '\0',
          "no errmsg after an abort");
    vsink_done(&s);
    /* The host may run the same handle again after a failure. */
    vsink_init(&s, 51, 0);
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_OK);
    CHECK(s.bytes == 512 * KiB && !s.mismatch && !s.out_of_order,
          "the second run got %llu bytes", (unsigned long long)s.bytes);
    vsink_done(&s);
    wxm_download_free(d);

    /* A transfer holds its own reference to the client: free the client
     * first, then stop on the first call. */
    d = wxm_download_new(client, "ab-sink");
    REQUIRE(d != NULL);
    wxm_client_free(client);
    vsink_init(&s, 51, 0);
    s.abort_on_call = 1;
    s.abort_value = -1;
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_E_ABORTED);
    CHECK(s.calls == 1, "sink called %llu times, expected 1",
          (unsigned long long)s.calls);
    vsink_done(&s);
    wxm_download_free(d);
}

static void abort_from_progress(void)
{
    wxm_client *client;
    wxm_download *d;
    wxm_upload *u;
    vsink s;
    vprogress p;
    uint8_t *data;
    char path[300];
    REQUIRE(admin_media_gen("ab-prog", 512 * KiB, 52, NULL, NULL));
    client = test_client(64 * KiB, 2, 0);
    REQUIRE(client != NULL);
    d = wxm_download_new(client, "ab-prog");
    REQUIRE(d != NULL);
    vsink_init(&s, 52, 0);
    vprogress_init(&p);
    p.abort_at = 1;
    CHECK_RC(wxm_download_set_progress(d, vprogress_fn, &p), WXM_OK);
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_E_ABORTED);
    CHECK(s.bytes < 512 * KiB, "the whole media arrived despite the abort");
    vsink_done(&s);
    wxm_download_free(d);

    data = (uint8_t *)malloc(300000);
    REQUIRE(data != NULL);
    gen_fill(53, 0, data, 300000);
    tmp_path(path, sizeof path, "ab-prog-up.bin");
    CHECK(write_file(path, data, 300000));
    free(data);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    vprogress_init(&p);
    p.abort_at = 1;
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_set_progress(u, vprogress_fn, &p), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_E_ABORTED);
    wxm_upload_free(u);
    wxm_client_free(client);
}

/* ---- cancel from another thread -------------------------------------------- */

typedef struct {
    wxm_download *d;
    wxm_upload *u;
    unsigned delay_ms;
    double cancelled_at;
    int32_t second_run; /* running the same handle meanwhile */
} canceller;

static int32_t null_sink(void *ud, uint64_t off, const uint8_t *data, size_t len)
{
    (void)ud;
    (void)off;
    (void)data;
    (void)len;
    return 0;
}

static void *cancel_thread(void *arg)
{
    canceller *c = (canceller *)arg;
    sleep_ms(c->delay_ms);
    /* While the first thread runs the transfer, a second run of the same
     * handle is refused at once. */
    if (c->d != NULL) c->second_run = wxm_download_to_sink(c->d, null_sink, NULL);
    if (c->u != NULL) c->second_run = wxm_upload_run(c->u);
    c->cancelled_at = now_s();
    if (c->d != NULL) wxm_download_cancel(c->d);
    if (c->u != NULL) wxm_upload_cancel(c->u);
    return NULL;
}

/* Run a stalled download and cancel it from a second pthread. */
static void cancel_download_case(const char *media_id, uint64_t seed,
                                 uint32_t parallelism, int to_path)
{
    const uint64_t size = 1024 * KiB;
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_download *d;
    canceller c;
    pthread_t th;
    vsink s;
    int32_t rc;
    double returned;
    uint64_t fired = 0;
    char path[300];

    REQUIRE(admin_media_gen(media_id, size, seed, NULL, NULL));
    /* The server stops sending after 8 KiB for 20 s (on every connection). */
    REQUIRE(admin_fault("\"kind\":\"stall\",\"media_id\":\"%s\","
                        "\"after_bytes\":8192,\"ms\":20000,\"count\":100",
                        media_id));
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_base_url(cfg, g_base_url), WXM_OK);
    CHECK_RC(wxm_config_set_access_token(cfg, TEST_TOKEN), WXM_OK);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 64 * KiB), WXM_OK);
    CHECK_RC(wxm_config_set_parallelism(cfg, parallelism), WXM_OK);
    /* Timeouts far longer than the test: only the cancel can end it. */
    CHECK_RC(wxm_config_set_timeouts(cfg, 30000, 60000), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(client != NULL);
    d = wxm_download_new(client, media_id);
    REQUIRE(d != NULL);

    memset(&c, 0, sizeof c);
    c.d = d;
    c.delay_ms = 500;
    REQUIRE(pthread_create(&th, NULL, cancel_thread, &c) == 0);
    vsink_init(&s, seed, 0);
    tmp_path(path, sizeof path, media_id);
    rc = to_path ? wxm_download_to_path(d, path)
                 : wxm_download_to_sink(d, vsink_fn, &s);
    returned = now_s();
    pthread_join(th, NULL);

    CHECK_RC(rc, WXM_E_CANCELLED);
    CHECK(c.cancelled_at > 0 && returned - c.cancelled_at < 2.0,
          "returned %.2f s after the cancel", returned - c.cancelled_at);
    CHECK_RC(c.second_run, WXM_E_STATE);
    /* Cancelled for good: a later run answers at once. */
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_E_CANCELLED);
    CHECK(stats_u64("faults_fired", &fired) && fired >= 1,
          "the stall never happened");
    CHECK(!s.mismatch && !s.out_of_order, "bytes before the cancel were wrong");
    if (to_path) {
        struct stat st;
        CHECK(stat(path, &st) != 0, "a cancelled download created the target");
    }
    CHECK(wxm_download_errmsg(d) == NULL ||
              !leaks_secret(wxm_download_errmsg(d)),
          "errmsg leaks a secret");
    vsink_done(&s);
    wxm_download_free(d);
    wxm_client_free(client);
}

static void cancel_download_sink(void)
{
    cancel_download_case("cx-sink", 61, 1, 0);
}

static void cancel_download_sink_parallel(void)
{
    cancel_download_case("cx-par", 62, 4, 0);
}

static void cancel_download_path(void)
{
    cancel_download_case("cx-path", 63, 2, 1);
}

/* The server holds back its answer to an upload for 20 s; cancel it. */
static void cancel_upload(void)
{
    const size_t len = 200000;
    uint8_t *data = (uint8_t *)malloc(len);
    char path[300];
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_upload *u;
    canceller c;
    pthread_t th;
    int32_t rc;
    double returned;
    REQUIRE(data != NULL);
    gen_fill(64, 0, data, len);
    tmp_path(path, sizeof path, "cx-upload.bin");
    CHECK(write_file(path, data, len));
    free(data);
    REQUIRE(admin_fault("\"kind\":\"slow_headers\",\"endpoint\":\"media/upload\","
                        "\"ms\":20000,\"count\":100"));
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_base_url(cfg, g_base_url), WXM_OK);
    CHECK_RC(wxm_config_set_access_token(cfg, TEST_TOKEN), WXM_OK);
    CHECK_RC(wxm_config_set_timeouts(cfg, 30000, 60000), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(client != NULL);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);

    memset(&c, 0, sizeof c);
    c.u = u;
    c.delay_ms = 500;
    REQUIRE(pthread_create(&th, NULL, cancel_thread, &c) == 0);
    rc = wxm_upload_run(u);
    returned = now_s();
    pthread_join(th, NULL);
    CHECK_RC(rc, WXM_E_CANCELLED);
    CHECK(c.cancelled_at > 0 && returned - c.cancelled_at < 2.0,
          "returned %.2f s after the cancel", returned - c.cancelled_at);
    CHECK_RC(c.second_run, WXM_E_STATE);
    CHECK_RC(wxm_upload_run(u), WXM_E_CANCELLED);
    wxm_upload_free(u);
    wxm_client_free(client);
}

const test_case cancel_tests[] = {
    {"abort_from_sink", abort_from_sink, 1},
    {"abort_from_progress", abort_from_progress, 0},
    {"cancel_download_sink", cancel_download_sink, 0},
    {"cancel_download_sink_parallel", cancel_download_sink_parallel, 0},
    {"cancel_download_path", cancel_download_path, 0},
    {"cancel_upload", cancel_upload, 0},
    {NULL, NULL, 0}};

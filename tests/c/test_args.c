/*
 * Argument checking at the boundary: NULL for every pointer argument of
 * every function is answered with a code (or NULL/0 from getters), never a
 * crash; invalid values and bad UTF-8 are WXM_E_INVALID_ARG; a cancelled
 * handle stays cancelled; every code has static text.
 */
#include "harness.h"

#include <string.h>

#define BAD_UTF8 "\xff\xfe\xc3("

static int32_t dummy_sink(void *ud, uint64_t off, const uint8_t *data,
                          size_t len)
{
    (void)ud;
    (void)off;
    (void)data;
    (void)len;
    return 0;
}

static int32_t dummy_progress(void *ud, uint64_t done, uint64_t total)
{
    (void)ud;
    (void)done;
    (void)total;
    return 0;
}

static int32_t dummy_provider(void *ud, int32_t force, char *buf, size_t cap,
                              size_t *len)
{
    (void)ud;
    (void)force;
    (void)buf;
    (void)cap;
    *len = 0;
    return 1;
}

static void dummy_event(void *ud, const wxm_event *ev)
{
    (void)ud;
    (void)ev;
}

/* A wxm_counters ready for a getter. */
static wxm_counters counters_out(void)
{
    wxm_counters c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    return c;
}

static int64_t dummy_read(void *ud, uint8_t *buf, size_t cap)
{
    (void)ud;
    (void)buf;
    (void)cap;
    return 0;
}

/* The message of the last failure on this thread: present, not empty. */
#define CHECK_LAST_ERRMSG()                                                    \
    CHECK(wxm_last_errmsg() != NULL && wxm_last_errmsg()[0] != '\0',           \
          "no wxm_last_errmsg after a failure")

static void args_null_config_client(void)
{
    wxm_config *cfg;
    wxm_client *client, *sentinel = (wxm_client *)&client;

    /* Unknown platforms. */
    CHECK(wxm_config_new(0) == NULL, "platform 0 accepted");
    CHECK_LAST_ERRMSG();
    CHECK(wxm_config_new(5) == NULL, "platform 5 accepted");
    CHECK(wxm_config_new(-1) == NULL, "platform -1 accepted");

    /* NULL config. */
    CHECK_RC(wxm_config_set_base_url(NULL, "http://127.0.0.1:1"), WXM_E_INVALID_ARG);
    CHECK_LAST_ERRMSG();
    CHECK_RC(wxm_config_set_access_token(NULL, "t"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_credentials(NULL, "id", "secret"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_chunk_size(NULL, 65536), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_parallelism(NULL, 2), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_timeouts(NULL, 1000, 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_retries(NULL, 2, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_limit(NULL, "file", 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_ca_file(NULL, "/etc/ssl/certs/ca-certificates.crt"),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_api(NULL, WXM_TOKEN_API_DEFAULT), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_provider(NULL, dummy_provider, NULL, NULL),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store(NULL, "redis://127.0.0.1:6379"),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store_timeouts(NULL, 1000, 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store_fallback(NULL, 1), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_event_handler(NULL, dummy_event, NULL, NULL,
                                          WXM_LEVEL_DEBUG), WXM_E_INVALID_ARG);
    wxm_config_free(NULL);

    /* NULL strings on a real config. */
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL, "%s", wxm_last_errmsg());
    CHECK_RC(wxm_config_set_base_url(cfg, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_access_token(cfg, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_credentials(cfg, NULL, "secret"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_credentials(cfg, "id", NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_limit(cfg, NULL, 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_ca_file(cfg, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store(cfg, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store(cfg, "not a redis url"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_api(cfg, 99), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_api(cfg, WXM_TOKEN_API_DEFAULT), WXM_OK);
    /* A NULL provider removes the provider. */
    CHECK_RC(wxm_config_set_token_provider(cfg, dummy_provider, NULL, NULL), WXM_OK);
    CHECK_RC(wxm_config_set_token_provider(cfg, NULL, NULL, NULL), WXM_OK);
    /* An unknown level is refused; a NULL handler removes the handler. */
    CHECK_RC(wxm_config_set_event_handler(cfg, dummy_event, NULL, NULL, 0),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_event_handler(cfg, NULL, NULL, NULL, WXM_LEVEL_INFO),
             WXM_OK);
    /* Bad UTF-8. */
    CHECK_RC(wxm_config_set_base_url(cfg, BAD_UTF8), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_access_token(cfg, BAD_UTF8), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_credentials(cfg, BAD_UTF8, "s"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_credentials(cfg, "id", BAD_UTF8), WXM_E_INVALID_ARG);
    /* Chunk sizes: a multiple of 16, at most 20 MiB. */
    CHECK_RC(wxm_config_set_chunk_size(cfg, 0), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 17), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 65536 + 8), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 20u * 1024 * 1024 + 16),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 16), WXM_OK);
    CHECK_RC(wxm_config_set_chunk_size(cfg, 20u * 1024 * 1024), WXM_OK);
    /* The other ranges the header gives. */
    CHECK_RC(wxm_config_set_parallelism(cfg, 0), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_parallelism(cfg, 65), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_parallelism(cfg, 64), WXM_OK);
    CHECK_RC(wxm_config_set_timeouts(cfg, 0, 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_timeouts(cfg, 1000, 0), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_retries(cfg, 0, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_retries(cfg, 101, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_retries(cfg, 100, 10), WXM_OK);
    CHECK_RC(wxm_config_set_base_url(cfg, "ftp://127.0.0.1/"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_limit(cfg, "bogus", 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_limit(cfg, "file", 1000), WXM_OK);
    CHECK_RC(wxm_config_set_token_store_timeouts(cfg, 0, 1000), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store_timeouts(cfg, 1000, 600001), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store_timeouts(cfg, 1000, 600000), WXM_OK);
    CHECK_RC(wxm_config_set_token_store_fallback(cfg, 2), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_config_set_token_store_fallback(cfg, 0), WXM_OK);

    /* wxm_client_new: NULL config, NULL out; out untouched on failure. */
    client = sentinel;
    CHECK_RC(wxm_client_new(NULL, &client), WXM_E_INVALID_ARG);
    CHECK(client == sentinel || client == NULL,
          "wxm_client_new wrote garbage to *out on failure");
    CHECK_RC(wxm_client_new(cfg, NULL), WXM_E_INVALID_ARG);

    /* The client. */
    CHECK_RC(wxm_config_set_access_token(cfg, "t"), WXM_OK);
    client = NULL;
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg); /* the client keeps its own copy */
    REQUIRE(client != NULL);
    CHECK_RC(wxm_client_set_access_token(NULL, "t"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_client_set_access_token(client, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_client_set_access_token(client, BAD_UTF8), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_client_set_access_token(client, "t2"), WXM_OK);
    {
        uint64_t fallbacks = 7;
        CHECK_RC(wxm_client_token_store_fallbacks(NULL, &fallbacks), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_client_token_store_fallbacks(client, NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_client_token_store_fallbacks(client, &fallbacks), WXM_OK);
        CHECK(fallbacks == 0, "no store, no fallback: %llu", (unsigned long long)fallbacks);
    }
    wxm_client_free(client);
    wxm_client_free(NULL);
}

static void args_null_download(void)
{
    wxm_client *client = test_client(0, 0, 0);
    wxm_download *d;
    int32_t rc;
    char path[300];
    REQUIRE(client != NULL);

    CHECK(wxm_download_new(NULL, "m") == NULL, "NULL client accepted");
    CHECK_LAST_ERRMSG();
    CHECK(wxm_download_new(client, NULL) == NULL, "NULL media_id accepted");
    CHECK(wxm_download_new(client, BAD_UTF8) == NULL, "bad UTF-8 accepted");
    CHECK(wxm_download_new(client, "") == NULL, "empty media_id accepted");

    CHECK_RC(wxm_download_set_start(NULL, 0), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_download_set_hd_voice(NULL, 1), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_download_set_progress(NULL, dummy_progress, NULL),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_download_to_sink(NULL, dummy_sink, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_download_to_path(NULL, "/tmp/x"), WXM_E_INVALID_ARG);
    wxm_download_cancel(NULL);
    CHECK(wxm_download_size(NULL) == 0, "size of NULL");
    CHECK(wxm_download_content_type(NULL) == NULL, "content_type of NULL");
    CHECK(wxm_download_filename(NULL) == NULL, "filename of NULL");
    CHECK(wxm_download_video_url(NULL) == NULL, "video_url of NULL");
    CHECK(wxm_download_errmsg(NULL) == NULL, "errmsg of NULL");
    wxm_download_free(NULL);

    /* The object store: every setter refuses NULL, as does the run. */
    {
        wxm_objstore *store = wxm_objstore_new();
        REQUIRE(store != NULL, "%s", wxm_last_errmsg());
        CHECK_RC(wxm_objstore_set_endpoint(NULL, "http://127.0.0.1:9"), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_endpoint(store, NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_endpoint(store, "ftp://x"), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_region(NULL, "us-east-1"), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_region(store, NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_credentials(NULL, "k", "s", NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_credentials(store, NULL, "s", NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_credentials(store, "k", NULL, NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_credentials(store, "k", BAD_UTF8, NULL), WXM_E_INVALID_ARG);
        CHECK_LAST_ERRMSG();
        CHECK_RC(wxm_objstore_set_path_style(NULL, 1), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_keep_parts_on_failure(NULL, 1), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_part_size(NULL, 8u << 20), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_objstore_set_part_size(store, 1024), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_download_to_object(NULL, store, "b", "k"), WXM_E_INVALID_ARG);
        wxm_objstore_free(store);
        wxm_objstore_free(NULL);
    }

    /* A real handle with NULL arguments (none of these starts a transfer,
     * nothing is sent: the media does not even exist). */
    d = wxm_download_new(client, "args-none");
    REQUIRE(d != NULL, "%s", wxm_last_errmsg());
    CHECK_RC(wxm_download_to_sink(d, NULL, NULL), WXM_E_INVALID_ARG);
    CHECK_LAST_ERRMSG();
    CHECK_RC(wxm_download_to_path(d, NULL), WXM_E_INVALID_ARG);
    {
        wxm_counters c = counters_out();
        CHECK_RC(wxm_download_counters(NULL, &c), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_download_counters(d, NULL), WXM_E_INVALID_ARG);
    }
    CHECK_RC(wxm_download_to_path(d, ""), WXM_E_INVALID_ARG);
    {
        wxm_objstore *store = wxm_objstore_new();
        REQUIRE(store != NULL, "%s", wxm_last_errmsg());
        CHECK_RC(wxm_download_to_object(d, NULL, "b", "k"), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_download_to_object(d, store, NULL, "k"), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_download_to_object(d, store, "b", NULL), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_download_to_object(d, store, "b", ""), WXM_E_INVALID_ARG);
        CHECK_LAST_ERRMSG();
        wxm_objstore_free(store);
    }
    /* to_path resumes by itself and refuses a host start offset. */
    CHECK_RC(wxm_download_set_start(d, 4096), WXM_OK);
    CHECK_RC(wxm_download_to_path(d, "/tmp/wxm-never-written"), WXM_E_INVALID_ARG);
    /* NULL progress function: clears the callback, or is refused. */
    rc = wxm_download_set_progress(d, NULL, NULL);
    CHECK(rc == WXM_OK || rc == WXM_E_INVALID_ARG, "set_progress(NULL) = %d",
          (int)rc);
    wxm_download_cancel(d); /* before any run: harmless */
    wxm_download_free(d);

    /* A handle may run again (the getters then describe the last run), and
     * a cancelled handle answers WXM_E_CANCELLED to every later run. */
    REQUIRE(admin_media_gen("args-again", 1000, 71, NULL, NULL));
    d = wxm_download_new(client, "args-again");
    REQUIRE(d != NULL);
    CHECK(wxm_download_errmsg(d) != NULL, "errmsg of a fresh handle");
    CHECK_RC(wxm_download_to_sink(d, dummy_sink, NULL), WXM_OK);
    CHECK(wxm_download_errmsg(d) != NULL && wxm_download_errmsg(d)[0] == '\0',
          "errmsg after a success: '%s'", wxm_download_errmsg(d));
    tmp_path(path, sizeof path, "args-again.bin");
    CHECK_RC(wxm_download_to_path(d, path), WXM_OK);
    CHECK(wxm_download_size(d) == 1000, "size %llu after the run",
          (unsigned long long)wxm_download_size(d));
    wxm_download_cancel(d);
    CHECK_RC(wxm_download_to_sink(d, dummy_sink, NULL), WXM_E_CANCELLED);
    wxm_download_free(d);
    wxm_client_free(client);
}

static void args_null_upload(void)
{
    wxm_client *client = test_client(0, 0, 0);
    wxm_upload *u;
    int32_t rc;
    REQUIRE(client != NULL);

    CHECK(wxm_upload_new(NULL, "file") == NULL, "NULL client accepted");
    CHECK_LAST_ERRMSG();
    CHECK(wxm_upload_new(client, NULL) == NULL, "NULL type accepted");
    CHECK(wxm_upload_new(client, BAD_UTF8) == NULL, "bad UTF-8 accepted");

    CHECK_RC(wxm_upload_set_path(NULL, "/tmp/x"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_set_reader(NULL, dummy_read, NULL, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_set_filename(NULL, "x.bin"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_set_progress(NULL, dummy_progress, NULL),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_run(NULL), WXM_E_INVALID_ARG);
    wxm_upload_cancel(NULL);
    CHECK(wxm_upload_media_id(NULL) == NULL, "media_id of NULL");
    CHECK(wxm_upload_url(NULL) == NULL, "url of NULL");
    CHECK(wxm_upload_type(NULL) == NULL, "type of NULL");
    CHECK(wxm_upload_created_at(NULL) == 0, "created_at of NULL");
    CHECK(wxm_upload_errmsg(NULL) == NULL, "errmsg of NULL");
    wxm_upload_free(NULL);

    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL, "%s", wxm_last_errmsg());
    CHECK_RC(wxm_upload_set_path(u, NULL), WXM_E_INVALID_ARG);
    {
        wxm_counters c = counters_out();
        CHECK_RC(wxm_upload_counters(NULL, &c), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_upload_counters(u, NULL), WXM_E_INVALID_ARG);
    }
    CHECK_RC(wxm_upload_set_reader(u, NULL, NULL, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_set_filename(u, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_upload_set_filename(u, BAD_UTF8), WXM_E_INVALID_ARG);
    rc = wxm_upload_set_progress(u, NULL, NULL);
    CHECK(rc == WXM_OK || rc == WXM_E_INVALID_ARG, "set_progress(NULL) = %d",
          (int)rc);
    wxm_upload_cancel(u);
    CHECK_RC(wxm_upload_set_reader(u, dummy_read, NULL, 10), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_E_CANCELLED);
    wxm_upload_free(u);
    wxm_client_free(client);
}

/* Upload by URL (asynchronous, WeCom): NULL arguments only, nothing is
 * submitted. */
static void args_null_url_upload(void)
{
    static const char url[] = "http://127.0.0.1:9/media.bin";
    static const char md5[] = "0123456789abcdef0123456789abcdef";
    wxm_client *client = test_client(0, 0, 0);
    wxm_url_upload *u;
    REQUIRE(client != NULL);

    CHECK(wxm_url_upload_new(NULL, "file", url, "m.bin") == NULL, "NULL client");
    CHECK_LAST_ERRMSG();
    CHECK(wxm_url_upload_new(client, NULL, url, "m.bin") == NULL, "NULL type");
    CHECK(wxm_url_upload_new(client, "file", NULL, "m.bin") == NULL, "NULL url");
    CHECK(wxm_url_upload_new(client, "file", url, NULL) == NULL, "NULL filename");
    CHECK(wxm_url_upload_new(client, "file", url, BAD_UTF8) == NULL, "bad UTF-8");

    CHECK_RC(wxm_url_upload_set_md5(NULL, md5), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_md5_from_path(NULL, "/etc/hostname"),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_scene(NULL, 1), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_jobid(NULL, "job"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_progress(NULL, dummy_progress, NULL),
             WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_submit(NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_wait(NULL, 10), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_run(NULL, 10), WXM_E_INVALID_ARG);
    wxm_url_upload_cancel(NULL);
    CHECK(wxm_url_upload_jobid(NULL) == NULL, "jobid of NULL");
    CHECK(wxm_url_upload_media_id(NULL) == NULL, "media_id of NULL");
    CHECK(wxm_url_upload_created_at(NULL) == 0, "created_at of NULL");
    CHECK(wxm_url_upload_status(NULL) == 0, "status of NULL");
    CHECK(wxm_url_upload_errmsg(NULL) == NULL, "errmsg of NULL");
    wxm_url_upload_free(NULL);

    u = wxm_url_upload_new(client, "file", url, "m.bin");
    REQUIRE(u != NULL, "%s", wxm_last_errmsg());
    CHECK_RC(wxm_url_upload_set_md5(u, NULL), WXM_E_INVALID_ARG);
    {
        wxm_counters c = counters_out();
        CHECK_RC(wxm_url_upload_counters(NULL, &c), WXM_E_INVALID_ARG);
        CHECK_RC(wxm_url_upload_counters(u, NULL), WXM_E_INVALID_ARG);
    }
    CHECK_RC(wxm_url_upload_set_md5(u, "not-an-md5"), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_md5(u, md5), WXM_OK);
    CHECK_RC(wxm_url_upload_set_md5_from_path(u, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_jobid(u, NULL), WXM_E_INVALID_ARG);
    CHECK_RC(wxm_url_upload_set_progress(u, dummy_progress, NULL), WXM_OK);
    CHECK_RC(wxm_url_upload_set_progress(u, NULL, NULL), WXM_OK); /* clears it */
    CHECK(wxm_url_upload_jobid(u) == NULL, "jobid before a submit");
    CHECK(wxm_url_upload_media_id(u) == NULL, "media_id before a run");
    wxm_url_upload_cancel(u);
    wxm_url_upload_free(u);
    wxm_client_free(client);
}

typedef struct {
    const char *main_msg;
    int same;
} tl_probe;

static void *other_thread(void *arg)
{
    tl_probe *p = (tl_probe *)arg;
    const char *m = wxm_last_errmsg();
    p->same = m != NULL && m[0] != '\0' && strcmp(m, p->main_msg) == 0;
    return NULL;
}

static void args_strerror_version(void)
{
    static const int32_t codes[] = {
        WXM_E_INVALID_ARG, WXM_E_IO,        WXM_E_NETWORK,   WXM_E_TIMEOUT,
        WXM_E_TLS,         WXM_E_HTTP_STATUS, WXM_E_PROTOCOL, WXM_E_ABORTED,
        WXM_E_CANCELLED,   WXM_E_NO_TOKEN,  WXM_E_PANIC,     WXM_E_STATE,
        WXM_E_TOKEN_STORE, WXM_E_OUTCOME_UNKNOWN};
    static const int32_t others[] = {0, -1, 40001, 40007, 830002, 123456,
                                     -999, -1015, -2000000000, 2000000000};
    size_t i, j;
    const char *v = wxm_version();
    unsigned a, b, c;
    char msg[512];
    pthread_t th;
    tl_probe probe;

    CHECK(WXM_OK == 0 && WXM_E_INVALID_ARG == -1001 && WXM_E_STATE == -1012 &&
              WXM_PLATFORM_WECOM == 1 && WXM_PLATFORM_MINIPROGRAM == 4,
          "constants differ from CONTRACT.md");
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = wxm_strerror(codes[i]);
        CHECK(codes[i] == -1001 - (int32_t)i, "WXM_E_* numbering");
        CHECK(s != NULL && s[0] != '\0', "no text for %d", (int)codes[i]);
        for (j = 0; s != NULL && j < i; j++) {
            const char *t = wxm_strerror(codes[j]);
            CHECK(t == NULL || strcmp(s, t) != 0, "%d and %d share text '%s'",
                  (int)codes[i], (int)codes[j], s);
        }
    }
    for (i = 0; i < sizeof others / sizeof others[0]; i++) {
        const char *s = wxm_strerror(others[i]);
        CHECK(s != NULL && s[0] != '\0', "no text for %d", (int)others[i]);
    }

    CHECK(v != NULL && sscanf(v, "%u.%u.%u", &a, &b, &c) == 3,
          "wxm_version() = %s", v ? v : "(null)");

    /* wxm_last_errmsg is per thread. */
    CHECK(wxm_config_new(99) == NULL);
    REQUIRE(wxm_last_errmsg() != NULL);
    snprintf(msg, sizeof msg, "%s", wxm_last_errmsg());
    probe.main_msg = msg;
    probe.same = 0;
    REQUIRE(pthread_create(&th, NULL, other_thread, &probe) == 0);
    pthread_join(th, NULL);
    CHECK(!probe.same, "another thread sees this thread's last error '%s'", msg);
}

const test_case args_tests[] = {
    {"args_null_config_client", args_null_config_client, 1},
    {"args_null_download", args_null_download, 1},
    {"args_null_upload", args_null_upload, 1},
    {"args_null_url_upload", args_null_url_upload, 1},
    {"args_strerror_version", args_strerror_version, 1},
    {NULL, NULL, 0}};

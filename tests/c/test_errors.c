/*
 * Error codes as a host sees them: WeChat's errcodes pass through
 * unchanged, the library's own failures are the WXM_E_* codes, and no
 * message ever contains the access_token or the secret.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KiB 1024ULL

/* After a failure: a per-handle message and a thread-local message, both
 * present and neither holding a secret. */
static void check_messages(const char *what, const char *handle_msg)
{
    const char *last = wxm_last_errmsg();
    CHECK(handle_msg != NULL && handle_msg[0] != '\0', "%s: no errmsg", what);
    CHECK(!leaks_secret(handle_msg), "%s: errmsg leaks a secret: %s", what,
          handle_msg);
    CHECK(last != NULL && last[0] != '\0', "%s: no wxm_last_errmsg", what);
    CHECK(!leaks_secret(last), "%s: wxm_last_errmsg leaks a secret: %s", what,
          last);
}

/* Download media_id with client, expect code; check the messages. */
static void expect_download(wxm_client *client, const char *media_id,
                            int32_t code, const char *what)
{
    wxm_download *d = wxm_download_new(client, media_id);
    vsink s;
    int32_t rc;
    if (d == NULL) {
        t_fail(__FILE__, __LINE__, "wxm_download_new", "%s: failed", what);
        return;
    }
    vsink_init(&s, 0, 0);
    rc = wxm_download_to_sink(d, vsink_fn, &s);
    if (rc != code) {
        t_fail(__FILE__, __LINE__, "expect_download", "%s: got %d (%s), expected %d (%s); errmsg: %s",
               what, (int)rc, wxm_strerror(rc), (int)code, wxm_strerror(code),
               wxm_download_errmsg(d) ? wxm_download_errmsg(d) : "(null)");
    }
    if (code != WXM_OK) check_messages(what, wxm_download_errmsg(d));
    vsink_done(&s);
    wxm_download_free(d);
}

static void err_invalid_media(void)
{
    wxm_client *client = test_client(64 * KiB, 2, 0);
    char path[300];
    wxm_download *d;
    REQUIRE(client != NULL);
    expect_download(client, "no-such-media", 40007, "unknown media (sink)");
    tmp_path(path, sizeof path, "never.bin");
    d = wxm_download_new(client, "no-such-media");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_to_path(d, path), 40007);
    check_messages("unknown media (path)", wxm_download_errmsg(d));
    wxm_download_free(d);
    wxm_client_free(client);
}

/* Errcodes scripted on the server reach the host unchanged: a final one at
 * once, and -1 (busy) after the retries are used up. */
static void err_passthrough(void)
{
    wxm_client *client;
    uint64_t n = 0;
    REQUIRE(admin_media_gen("er-pass", 1000, 91, NULL, NULL));
    client = test_client(64 * KiB, 1, 2);
    REQUIRE(client != NULL);
    REQUIRE(admin_fault("\"kind\":\"errcode\",\"media_id\":\"er-pass\","
                        "\"errcode\":45009,\"count\":10"));
    expect_download(client, "er-pass", 45009, "errcode 45009");
    CHECK(stats_u64("faults_fired", &n) && n == 1,
          "a final errcode was retried (%llu requests)", (unsigned long long)n);
    REQUIRE(admin_reset());
    REQUIRE(admin_fault("\"kind\":\"errcode\",\"media_id\":\"er-pass\","
                        "\"errcode\":-1,\"count\":10"));
    expect_download(client, "er-pass", -1, "errcode -1 after retries");
    CHECK(stats_u64("faults_fired", &n) && n == 2,
          "-1 with 2 attempts fired %llu faults", (unsigned long long)n);
    REQUIRE(admin_reset());
    /* With the fault gone the same client works. */
    expect_download(client, "er-pass", WXM_OK, "after the faults");
    wxm_client_free(client);
}

static void err_http_and_protocol(void)
{
    wxm_client *client;
    REQUIRE(admin_media_gen("er-http", 200 * KiB, 92, NULL, NULL));
    client = test_client(64 * KiB, 1, 2);
    REQUIRE(client != NULL);
    REQUIRE(admin_fault("\"kind\":\"http_status\",\"media_id\":\"er-http\","
                        "\"status\":500,\"count\":10"));
    expect_download(client, "er-http", WXM_E_HTTP_STATUS, "HTTP 500");
    REQUIRE(admin_reset());
    REQUIRE(admin_fault("\"kind\":\"wrong_content_range\","
                        "\"media_id\":\"er-http\",\"count\":10"));
    expect_download(client, "er-http", WXM_E_PROTOCOL, "wrong Content-Range");
    wxm_client_free(client);
}

/* A port on loopback where nothing listens. */
static int closed_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
    if (fd < 0) return 0;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Connection refused: WXM_E_NETWORK, for a download and an upload, and the
 * message (which may name the URL) never shows the access_token. */
static void err_network(void)
{
    char url[64], path[300];
    int port = closed_port();
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_upload *u;
    static const uint8_t data[100] = {1};
    REQUIRE(port > 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_base_url(cfg, url), WXM_OK);
    CHECK_RC(wxm_config_set_access_token(cfg, TEST_TOKEN), WXM_OK);
    CHECK_RC(wxm_config_set_retries(cfg, 1, 10), WXM_OK);
    CHECK_RC(wxm_config_set_timeouts(cfg, 2000, 2000), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(client != NULL);
    expect_download(client, "any-media", WXM_E_NETWORK, "connection refused");

    tmp_path(path, sizeof path, "net-up.bin");
    REQUIRE(write_file(path, data, sizeof data));
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_E_NETWORK);
    check_messages("upload, connection refused", wxm_upload_errmsg(u));
    wxm_upload_free(u);
    wxm_client_free(client);
}

/* A static token that expires: 42001 (nothing to refresh it with), then the
 * host rotates it with wxm_client_set_access_token. */
static void err_token_expiry_and_rotation(void)
{
    const char *tok2 = TEST_TOKEN "-2";
    wxm_client *client;
    REQUIRE(admin_media_gen("er-tok", 3000, 93, NULL, NULL));
    REQUIRE(admin_post("/__admin/tokens", "{\"token\":\"%s\"}", tok2));
    client = test_client_token(tok2, 64 * KiB, 1, 0);
    REQUIRE(client != NULL);
    expect_download(client, "er-tok", WXM_OK, "second token");
    REQUIRE(admin_post("/__admin/expire_token", "{\"token\":\"%s\"}", tok2));
    expect_download(client, "er-tok", 42001, "expired static token");
    CHECK_RC(wxm_client_set_access_token(client, TEST_TOKEN), WXM_OK);
    expect_download(client, "er-tok", WXM_OK, "rotated token");
    wxm_client_free(client);
}

static void err_no_token(void)
{
    wxm_client *client = test_client_token(NULL, 0, 0, 0);
    wxm_upload *u;
    char path[300];
    static const uint8_t data[100] = {2};
    REQUIRE(client != NULL);
    expect_download(client, "whatever", WXM_E_NO_TOKEN, "no token");
    tmp_path(path, sizeof path, "no-token.bin");
    REQUIRE(write_file(path, data, sizeof data));
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_E_NO_TOKEN);
    wxm_upload_free(u);
    wxm_client_free(client);
}

/* Credentials: the library fetches a token once and caches it; a wrong
 * secret fails without showing the secret. */
static void err_credentials(void)
{
    wxm_config *cfg;
    wxm_client *client = NULL;
    uint64_t fetches = 0;
    REQUIRE(admin_media_gen("er-cred", 5000, 94, NULL, NULL));

    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_base_url(cfg, g_base_url), WXM_OK);
    CHECK_RC(wxm_config_set_credentials(cfg, TEST_CORPID, TEST_SECRET), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(client != NULL);
    expect_download(client, "er-cred", WXM_OK, "credentials, first");
    expect_download(client, "er-cred", WXM_OK, "credentials, second");
    CHECK(stats_u64("token_fetches", &fetches) && fetches == 1,
          "token fetched %llu times for two downloads",
          (unsigned long long)fetches);
    wxm_client_free(client);

    client = NULL;
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_base_url(cfg, g_base_url), WXM_OK);
    CHECK_RC(wxm_config_set_credentials(cfg, TEST_CORPID, "bad-secret-Q9zz"),
             WXM_OK);
    CHECK_RC(wxm_config_set_retries(cfg, 1, 10), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(client != NULL);
    {
        wxm_download *d = wxm_download_new(client, "er-cred");
        vsink s;
        int32_t rc;
        REQUIRE(d != NULL);
        vsink_init(&s, 94, 0);
        rc = wxm_download_to_sink(d, vsink_fn, &s);
        CHECK(rc > 0, "a wrong secret gave %d (%s), expected WeChat's errcode",
              (int)rc, wxm_strerror(rc));
        check_messages("wrong secret", wxm_download_errmsg(d));
        vsink_done(&s);
        wxm_download_free(d);
    }
    wxm_client_free(client);
}

/* ---- a token provider callback ------------------------------------------ */

typedef struct {
    pthread_mutex_t lock;
    const char *tokens[4]; /* what call n answers (NULL: fail with code) */
    int32_t code;
    int calls, forced;
} provider;

static int32_t provide(void *user_data, int32_t force_refresh, char *buf,
                       size_t cap, size_t *len)
{
    provider *p = (provider *)user_data;
    const char *t;
    int32_t rc = 0;
    pthread_mutex_lock(&p->lock);
    t = p->tokens[p->calls < 4 ? p->calls : 3];
    p->calls++;
    if (force_refresh) p->forced++;
    if (t == NULL || strlen(t) > cap) {
        rc = p->code;
    } else {
        memcpy(buf, t, strlen(t));
        *len = strlen(t);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

static wxm_client *provider_client(provider *p)
{
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    wxm_client *client = NULL;
    if (cfg == NULL) return NULL;
    if (wxm_config_set_base_url(cfg, g_base_url) != WXM_OK ||
        wxm_config_set_chunk_size(cfg, 64 * KiB) != WXM_OK ||
        wxm_config_set_parallelism(cfg, 4) != WXM_OK ||
        wxm_config_set_retries(cfg, 1, 10) != WXM_OK ||
        wxm_config_set_token_provider(cfg, provide, p, NULL) != WXM_OK ||
        wxm_client_new(cfg, &client) != WXM_OK)
        client = NULL;
    wxm_config_free(cfg);
    return client;
}

/* The host's token service: asked once, asked again with force_refresh
 * after WeChat rejects the token, and its own failures reach the host. */
static void err_token_provider(void)
{
    const char *stale = TEST_TOKEN "-stale";
    provider p;
    wxm_client *client;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.lock, NULL);
    REQUIRE(admin_media_gen("er-prov", 400 * KiB, 95, NULL, NULL));

    /* A good token: one call for two parallel downloads. */
    p.tokens[0] = p.tokens[1] = p.tokens[2] = p.tokens[3] = TEST_TOKEN;
    client = provider_client(&p);
    REQUIRE(client != NULL);
    expect_download(client, "er-prov", WXM_OK, "provider token");
    expect_download(client, "er-prov", WXM_OK, "provider token, cached");
    CHECK(p.calls == 1 && p.forced == 0, "provider called %d times (%d forced)",
          p.calls, p.forced);
    wxm_client_free(client);

    /* A token that WeChat rejects (42001), then a good one. */
    REQUIRE(admin_post("/__admin/tokens", "{\"token\":\"%s\"}", stale));
    REQUIRE(admin_post("/__admin/expire_token", "{\"token\":\"%s\"}", stale));
    p.calls = p.forced = 0;
    p.tokens[0] = stale;
    client = provider_client(&p);
    REQUIRE(client != NULL);
    expect_download(client, "er-prov", WXM_OK, "provider refresh after 42001");
    CHECK(p.calls == 2 && p.forced == 1, "provider called %d times (%d forced)",
          p.calls, p.forced);
    wxm_client_free(client);

    /* The provider fails: a positive code is passed on, others are NO_TOKEN. */
    p.calls = p.forced = 0;
    p.tokens[0] = p.tokens[1] = p.tokens[2] = p.tokens[3] = NULL;
    p.code = 40013;
    client = provider_client(&p);
    REQUIRE(client != NULL);
    expect_download(client, "er-prov", 40013, "provider answers 40013");
    wxm_client_free(client);
    p.code = -5;
    client = provider_client(&p);
    REQUIRE(client != NULL);
    expect_download(client, "er-prov", WXM_E_NO_TOKEN, "provider answers -5");
    wxm_client_free(client);
    pthread_mutex_destroy(&p.lock);
}

const test_case error_tests[] = {
    {"errors_invalid_media_40007", err_invalid_media, 1},
    {"errors_errcode_passthrough", err_passthrough, 0},
    {"errors_http_status_and_protocol", err_http_and_protocol, 0},
    {"errors_network_refused", err_network, 0},
    {"errors_token_expiry_and_rotation", err_token_expiry_and_rotation, 0},
    {"errors_no_token", err_no_token, 0},
    {"errors_credentials", err_credentials, 0},
    {"errors_token_provider", err_token_provider, 0},
    {NULL, NULL, 0}};

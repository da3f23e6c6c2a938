/*
 * The callback rules of the header: the token provider's free_fn runs
 * exactly once, and never before the provider's last call, in every way its
 * user_data can be let go; a callback that runs its own handle again is
 * refused with WXM_E_STATE while the running call goes on.
 *
 * Each provider's user_data is malloc'd and free()d by its free_fn, so a
 * call after the finalizer is a heap-use-after-free that ASan and valgrind
 * report, besides the counters checked here.  The same holds for the event
 * handler (wxm_config_set_event_handler), which may also cancel its own
 * transfer.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define KiB 1024u

/* ---- a provider whose user_data dies in its free_fn ---------------------- */

typedef struct {
    char token[64];
    int id;
} fprov;

/* Per provider id: calls, and free_fn runs. Guarded: worker threads call. */
#define FPROV_MAX 16
static pthread_mutex_t g_fprov_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_fprov_calls[FPROV_MAX];
static int g_fprov_frees[FPROV_MAX];

static int32_t fprov_fn(void *user_data, int32_t force_refresh, char *buf,
                        size_t cap, size_t *len)
{
    fprov *p = (fprov *)user_data;
    size_t n = strlen(p->token); /* reads freed memory if called too late */
    (void)force_refresh;
    pthread_mutex_lock(&g_fprov_lock);
    g_fprov_calls[p->id]++;
    pthread_mutex_unlock(&g_fprov_lock);
    if (n > cap) return -1;
    memcpy(buf, p->token, n);
    *len = n;
    return 0;
}

static void fprov_free(void *user_data)
{
    fprov *p = (fprov *)user_data;
    pthread_mutex_lock(&g_fprov_lock);
    g_fprov_frees[p->id]++;
    pthread_mutex_unlock(&g_fprov_lock);
    memset(p, 0xAB, sizeof *p);
    free(p);
}

static fprov *fprov_new(int id)
{
    fprov *p = (fprov *)calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    strcpy(p->token, TEST_TOKEN);
    p->id = id;
    pthread_mutex_lock(&g_fprov_lock);
    g_fprov_calls[id] = g_fprov_frees[id] = 0;
    pthread_mutex_unlock(&g_fprov_lock);
    return p;
}

static int frees(int id)
{
    int n;
    pthread_mutex_lock(&g_fprov_lock);
    n = g_fprov_frees[id];
    pthread_mutex_unlock(&g_fprov_lock);
    return n;
}

static int calls(int id)
{
    int n;
    pthread_mutex_lock(&g_fprov_lock);
    n = g_fprov_calls[id];
    pthread_mutex_unlock(&g_fprov_lock);
    return n;
}

/* A config for the emulator whose tokens come from provider `id`. */
static wxm_config *provider_config(int id, uint32_t parallelism)
{
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    fprov *p = fprov_new(id);
    if (cfg == NULL || p == NULL) {
        wxm_config_free(cfg);
        free(p);
        return NULL;
    }
    if (wxm_config_set_token_provider(cfg, fprov_fn, p, fprov_free) != WXM_OK ||
        wxm_config_set_base_url(cfg, g_base_url) != WXM_OK ||
        wxm_config_set_chunk_size(cfg, 64 * KiB) != WXM_OK ||
        wxm_config_set_parallelism(cfg, parallelism) != WXM_OK) {
        wxm_config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int32_t run_download(wxm_download *d, uint64_t seed)
{
    vsink s;
    int32_t rc;
    vsink_init(&s, seed, 0);
    rc = wxm_download_to_sink(d, vsink_fn, &s);
    CHECK(!s.mismatch && !s.out_of_order, "wrong bytes");
    vsink_done(&s);
    return rc;
}

/* The finalizer runs exactly once however the user_data is let go, and only
 * after the last holder that can call the provider is gone. */
static void cb_provider_finalizer(void)
{
    wxm_config *cfg;
    wxm_client *a = NULL, *b = NULL;
    wxm_download *d;
    fprov *p;
    REQUIRE(admin_media_gen("cb-fin", 300 * KiB, 41, NULL, NULL));

    /* A config freed with no client made from it. */
    cfg = provider_config(0, 1);
    REQUIRE(cfg != NULL);
    CHECK(frees(0) == 0, "freed %d times while the config holds it", frees(0));
    wxm_config_free(cfg);
    CHECK(frees(0) == 1, "config freed: free_fn ran %d times", frees(0));

    /* A provider replaced on the config, then one removed (fn NULL). */
    cfg = provider_config(1, 1);
    REQUIRE(cfg != NULL);
    p = fprov_new(2);
    REQUIRE(p != NULL);
    CHECK_RC(wxm_config_set_token_provider(cfg, fprov_fn, p, fprov_free), WXM_OK);
    CHECK(frees(1) == 1 && frees(2) == 0, "replaced: free_fn ran %d / %d times",
          frees(1), frees(2));
    p = fprov_new(3);
    REQUIRE(p != NULL);
    /* fn NULL: the previous provider goes, and this user_data is let go at once. */
    CHECK_RC(wxm_config_set_token_provider(cfg, NULL, p, fprov_free), WXM_OK);
    CHECK(frees(2) == 1 && frees(3) == 1, "removed: free_fn ran %d / %d times",
          frees(2), frees(3));
    CHECK_RC(wxm_config_set_token_provider(cfg, NULL, NULL, NULL), WXM_OK);
    wxm_config_free(cfg);
    CHECK(frees(1) == 1 && frees(2) == 1 && frees(3) == 1, "freed again");

    /* A failed call (config NULL): the library took the user_data and let it go. */
    p = fprov_new(4);
    REQUIRE(p != NULL);
    CHECK_RC(wxm_config_set_token_provider(NULL, fprov_fn, p, fprov_free),
             WXM_E_INVALID_ARG);
    CHECK(frees(4) == 1, "failed call: free_fn ran %d times", frees(4));

    /* A client that failed to be made (unreadable CA file) keeps nothing. */
    cfg = provider_config(5, 1);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_ca_file(cfg, "/nonexistent/wxm-ca.pem"), WXM_OK);
    CHECK(wxm_client_new(cfg, &a) != WXM_OK && a == NULL, "client made");
    CHECK(frees(5) == 0, "free_fn ran while the config holds it");
    wxm_config_free(cfg);
    CHECK(frees(5) == 1, "free_fn ran %d times", frees(5));

    /* Two clients outlive their config; the last one lets go. */
    cfg = provider_config(6, 1);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_client_new(cfg, &a), WXM_OK);
    CHECK_RC(wxm_client_new(cfg, &b), WXM_OK);
    wxm_config_free(cfg);
    CHECK(frees(6) == 0, "freed while clients hold it");
    if (a != NULL) {
        d = wxm_download_new(a, "cb-fin");
        if (d != NULL) CHECK_RC(run_download(d, 41), WXM_OK);
        wxm_download_free(d);
    }
    wxm_client_free(a);
    CHECK(frees(6) == 0, "freed while a client holds it");
    if (b != NULL) {
        d = wxm_download_new(b, "cb-fin");
        if (d != NULL) CHECK_RC(run_download(d, 41), WXM_OK);
        wxm_download_free(d);
    }
    CHECK(calls(6) == 2, "one call per client, got %d", calls(6));
    wxm_client_free(b);
    CHECK(frees(6) == 1, "last client freed: free_fn ran %d times", frees(6));

    /* A transfer outlives its client, and its first token is asked for after
     * wxm_client_free: in a parallel download, from a worker thread. */
    cfg = provider_config(7, 4);
    REQUIRE(cfg != NULL);
    a = NULL;
    CHECK_RC(wxm_client_new(cfg, &a), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(a != NULL);
    d = wxm_download_new(a, "cb-fin");
    wxm_client_free(a);
    REQUIRE(d != NULL);
    CHECK(frees(7) == 0, "freed while a transfer holds the client");
    CHECK_RC(run_download(d, 41), WXM_OK);
    CHECK(calls(7) == 1, "provider called %d times", calls(7));
    CHECK_RC(run_download(d, 41), WXM_OK);
    CHECK(frees(7) == 0, "freed while a transfer holds the client");
    wxm_download_free(d);
    CHECK(frees(7) == 1, "last transfer freed: free_fn ran %d times", frees(7));

    /* No finalizer: nothing to call, nothing breaks. */
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    p = fprov_new(8);
    REQUIRE(p != NULL);
    CHECK_RC(wxm_config_set_token_provider(cfg, fprov_fn, p, NULL), WXM_OK);
    wxm_config_free(cfg);
    CHECK(frees(8) == 0, "a NULL free_fn was called");
    free(p);
}

/* ---- re-entry: a callback runs its own handle again ---------------------- */

typedef struct {
    wxm_download *d;
    vsink inner;
    int tries, cancel_first;
    int32_t rc;
} reentry_sink;

static int32_t reentering_sink(void *user_data, uint64_t offset,
                               const uint8_t *data, size_t len)
{
    reentry_sink *r = (reentry_sink *)user_data;
    if (r->tries++ == 0) {
        if (r->cancel_first) wxm_download_cancel(r->d);
        vsink other;
        vsink_init(&other, 0, 0);
        r->rc = wxm_download_to_sink(r->d, vsink_fn, &other);
        vsink_done(&other);
    }
    return vsink_fn(&r->inner, offset, data, len);
}

typedef struct {
    wxm_upload *u;
    const uint8_t *data;
    size_t len, pos;
    int tries;
    int32_t rc;
} reentry_reader;

static int64_t reentering_read(void *user_data, uint8_t *buf, size_t cap)
{
    reentry_reader *r = (reentry_reader *)user_data;
    size_t n = r->len - r->pos < cap ? r->len - r->pos : cap;
    if (r->tries++ == 0) r->rc = wxm_upload_run(r->u);
    memcpy(buf, r->data + r->pos, n);
    r->pos += n;
    return (int64_t)n;
}

typedef struct {
    wxm_url_upload *u;
    int beats;
    int32_t rc;
} reentry_beat;

static int32_t reentering_beat(void *user_data, uint64_t done, uint64_t total)
{
    reentry_beat *r = (reentry_beat *)user_data;
    (void)done;
    (void)total;
    if (r->beats++ == 0) r->rc = wxm_url_upload_wait(r->u, 1);
    return 0;
}

/* Running the handle again from its own callback is refused (WXM_E_STATE);
 * the running call goes on and succeeds. */
static void cb_reentry_is_refused(void)
{
    const size_t len = 200000;
    wxm_client *client = test_client(64 * KiB, 2, 0);
    reentry_sink rs;
    reentry_reader rr;
    reentry_beat rb;
    uint8_t *data = (uint8_t *)malloc(len);
    char url[300], local[300];
    wxm_upload *u;
    REQUIRE(client != NULL && data != NULL);
    REQUIRE(admin_media_gen("cb-re", 300 * KiB, 42, NULL, NULL));

    memset(&rs, 0, sizeof rs);
    rs.d = wxm_download_new(client, "cb-re");
    REQUIRE(rs.d != NULL);
    vsink_init(&rs.inner, 42, 0);
    CHECK_RC(wxm_download_to_sink(rs.d, reentering_sink, &rs), WXM_OK);
    CHECK_RC(rs.rc, WXM_E_STATE);
    CHECK(rs.inner.bytes == 300 * KiB && !rs.inner.mismatch, "got %llu bytes",
          (unsigned long long)rs.inner.bytes);
    CHECK(strcmp(wxm_download_errmsg(rs.d), "") == 0, "errmsg \"%s\" after a success",
          wxm_download_errmsg(rs.d));
    vsink_done(&rs.inner);
    wxm_download_free(rs.d);

    /* Cancelled from its own sink: running again is still WXM_E_STATE (the
     * refusal comes first), and the cancel stops the run. */
    memset(&rs, 0, sizeof rs);
    rs.d = wxm_download_new(client, "cb-re");
    REQUIRE(rs.d != NULL);
    rs.cancel_first = 1;
    vsink_init(&rs.inner, 42, 0);
    CHECK_RC(wxm_download_to_sink(rs.d, reentering_sink, &rs), WXM_E_CANCELLED);
    CHECK_RC(rs.rc, WXM_E_STATE);
    vsink_done(&rs.inner);
    wxm_download_free(rs.d);

    gen_fill(43, 0, data, len);
    memset(&rr, 0, sizeof rr);
    u = wxm_upload_new(client, "file");
    REQUIRE(u != NULL);
    rr.u = u;
    rr.data = data;
    rr.len = len;
    CHECK_RC(wxm_upload_set_reader(u, reentering_read, &rr, len), WXM_OK);
    CHECK_RC(wxm_upload_set_filename(u, "reentry.bin"), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_OK);
    CHECK_RC(rr.rc, WXM_E_STATE);
    CHECK(wxm_upload_media_id(u) != NULL, "no media_id");
    wxm_upload_free(u);

    /* An upload by URL: its heartbeat (the emulator's job takes >= 300 ms). */
    snprintf(url, sizeof url, "%s/__video/cb-re", g_base_url);
    tmp_path(local, sizeof local, "cb-re.bin");
    free(data);
    data = (uint8_t *)malloc(300 * KiB);
    REQUIRE(data != NULL);
    gen_fill(42, 0, data, 300 * KiB);
    REQUIRE(write_file(local, data, 300 * KiB));
    memset(&rb, 0, sizeof rb);
    rb.u = wxm_url_upload_new(client, "file", url, "cb-re.bin");
    REQUIRE(rb.u != NULL);
    CHECK_RC(wxm_url_upload_set_md5_from_path(rb.u, local), WXM_OK);
    CHECK_RC(wxm_url_upload_set_progress(rb.u, reentering_beat, &rb), WXM_OK);
    CHECK_RC(wxm_url_upload_run(rb.u, 30000), WXM_OK);
    CHECK(rb.beats >= 1, "no heartbeat");
    CHECK_RC(rb.rc, WXM_E_STATE);
    CHECK(wxm_url_upload_media_id(rb.u) != NULL, "no media_id");
    wxm_url_upload_free(rb.u);

    free(data);
    wxm_client_free(client);
}

/* ---- the event handler: its free_fn, its threads, a cancel from it -------- */

/* A handler's user_data, malloc'd and let go by its free_fn (memset, then
 * free): a call after the finalizer reads freed memory, which ASan and
 * valgrind report.  Worker threads call the handler: guarded. */
typedef struct {
    pthread_mutex_t lock;
    int id;
    int kinds[16];      /* events per WXM_EVENT_* */
    int bad;            /* a malformed or leaking event */
    uint64_t transfer;  /* the transfer_id of TRANSFER_STARTED */
    uint64_t finished_errcode_plus1;
    wxm_download *cancel; /* cancel this download on its first request */
} evrec;

#define EVREC_MAX 16
static pthread_mutex_t g_evrec_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_evrec_frees[EVREC_MAX];

static void evrec_fn(void *user_data, const wxm_event *ev)
{
    evrec *r = (evrec *)user_data;
    pthread_mutex_lock(&r->lock);
    if (ev->size != sizeof(wxm_event) || ev->endpoint == NULL ||
        ev->message == NULL || ev->kind < 1 || ev->kind > 11 ||
        leaks_secret(ev->endpoint) || leaks_secret(ev->message) ||
        strstr(ev->message, "wxmtok") != NULL) {
        r->bad++;
    } else {
        r->kinds[ev->kind]++;
    }
    if (ev->kind == WXM_EVENT_TRANSFER_STARTED) r->transfer = ev->transfer_id;
    if (ev->kind == WXM_EVENT_TRANSFER_FINISHED)
        r->finished_errcode_plus1 = (uint64_t)(int64_t)ev->errcode + 1;
    if (ev->kind == WXM_EVENT_REQUEST_STARTED && r->cancel != NULL)
        wxm_download_cancel(r->cancel); /* allowed from the handler */
    pthread_mutex_unlock(&r->lock);
}

static void evrec_free(void *user_data)
{
    evrec *r = (evrec *)user_data;
    pthread_mutex_lock(&g_evrec_lock);
    g_evrec_frees[r->id]++;
    pthread_mutex_unlock(&g_evrec_lock);
    pthread_mutex_destroy(&r->lock);
    memset(r, 0xAB, sizeof *r);
    free(r);
}

static evrec *evrec_new(int id)
{
    evrec *r = (evrec *)calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    pthread_mutex_init(&r->lock, NULL);
    r->id = id;
    pthread_mutex_lock(&g_evrec_lock);
    g_evrec_frees[id] = 0;
    pthread_mutex_unlock(&g_evrec_lock);
    return r;
}

static int evfrees(int id)
{
    int n;
    pthread_mutex_lock(&g_evrec_lock);
    n = g_evrec_frees[id];
    pthread_mutex_unlock(&g_evrec_lock);
    return n;
}

/* A config for the emulator whose events (DEBUG and up) go to `r`. */
static wxm_config *event_config(evrec *r, uint32_t parallelism)
{
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (cfg == NULL) {
        if (r != NULL) evrec_free(r);
        return NULL;
    }
    if (wxm_config_set_event_handler(cfg, evrec_fn, r, evrec_free,
                                     WXM_LEVEL_DEBUG) != WXM_OK ||
        wxm_config_set_base_url(cfg, g_base_url) != WXM_OK ||
        wxm_config_set_access_token(cfg, TEST_TOKEN) != WXM_OK ||
        wxm_config_set_chunk_size(cfg, 64 * KiB) != WXM_OK ||
        wxm_config_set_parallelism(cfg, parallelism) != WXM_OK) {
        wxm_config_free(cfg);
        return NULL;
    }
    return cfg;
}

/* The handler's free_fn runs exactly once: at once when the call fails or
 * the handler is NULL, else after the config, every client and every
 * transfer made from it are freed; the handler is never called after it. */
static void cb_event_handler_finalizer(void)
{
    wxm_config *cfg;
    wxm_client *a = NULL;
    wxm_download *d;
    wxm_counters c;
    evrec *r;
    int n, i;
    static const int32_t bad_levels[] = {0, 15, 50, -10};
    REQUIRE(admin_media_gen("cb-ev", 300 * KiB, 51, NULL, NULL));

    /* A config freed with no client made from it. */
    r = evrec_new(0);
    REQUIRE(r != NULL);
    cfg = event_config(r, 1);
    REQUIRE(cfg != NULL);
    CHECK(evfrees(0) == 0, "freed while the config holds it");
    wxm_config_free(cfg);
    CHECK(evfrees(0) == 1, "config freed: free_fn ran %d times", evfrees(0));

    /* Replaced on a config no client was made from; then removed (NULL
     * handler), whose own user_data is let go at once. */
    r = evrec_new(1);
    REQUIRE(r != NULL);
    cfg = event_config(r, 1);
    REQUIRE(cfg != NULL);
    r = evrec_new(2);
    REQUIRE(r != NULL);
    CHECK_RC(wxm_config_set_event_handler(cfg, evrec_fn, r, evrec_free,
                                          WXM_LEVEL_INFO), WXM_OK);
    CHECK(evfrees(1) == 1 && evfrees(2) == 0, "replaced: %d / %d", evfrees(1),
          evfrees(2));
    r = evrec_new(3);
    REQUIRE(r != NULL);
    CHECK_RC(wxm_config_set_event_handler(cfg, NULL, r, evrec_free,
                                          WXM_LEVEL_DEBUG), WXM_OK);
    CHECK(evfrees(2) == 1 && evfrees(3) == 1, "removed: %d / %d", evfrees(2),
          evfrees(3));

    /* An unknown level: refused, and the user_data let go at once. */
    for (i = 0; i < (int)(sizeof bad_levels / sizeof bad_levels[0]); i++) {
        r = evrec_new(4);
        REQUIRE(r != NULL);
        CHECK_RC(wxm_config_set_event_handler(cfg, evrec_fn, r, evrec_free,
                                              bad_levels[i]), WXM_E_INVALID_ARG);
        CHECK(evfrees(4) == 1, "level %d: free_fn ran %d times",
              (int)bad_levels[i], evfrees(4));
    }
    wxm_config_free(cfg);

    /* A NULL config: refused, let go at once. */
    r = evrec_new(5);
    REQUIRE(r != NULL);
    CHECK_RC(wxm_config_set_event_handler(NULL, evrec_fn, r, evrec_free,
                                          WXM_LEVEL_DEBUG), WXM_E_INVALID_ARG);
    CHECK(evfrees(5) == 1, "NULL config: free_fn ran %d times", evfrees(5));

    /* A parallel download outlives its client, which outlives its config:
     * events keep coming (from worker threads), and the finalizer waits
     * for the last transfer. */
    r = evrec_new(6);
    REQUIRE(r != NULL);
    cfg = event_config(r, 4);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_client_new(cfg, &a), WXM_OK);
    wxm_config_free(cfg);
    REQUIRE(a != NULL);
    d = wxm_download_new(a, "cb-ev");
    wxm_client_free(a);
    REQUIRE(d != NULL);
    CHECK(evfrees(6) == 0, "freed while a transfer holds the client");
    CHECK_RC(run_download(d, 51), WXM_OK);
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    CHECK_RC(wxm_download_counters(d, &c), WXM_OK);
    pthread_mutex_lock(&r->lock);
    CHECK(r->bad == 0, "%d malformed or leaking events", r->bad);
    CHECK(r->kinds[WXM_EVENT_TRANSFER_STARTED] == 1 &&
              r->kinds[WXM_EVENT_TRANSFER_FINISHED] == 1,
          "transfer events %d / %d", r->kinds[WXM_EVENT_TRANSFER_STARTED],
          r->kinds[WXM_EVENT_TRANSFER_FINISHED]);
    n = r->kinds[WXM_EVENT_REQUEST_STARTED];
    CHECK(n >= 5 && n == r->kinds[WXM_EVENT_REQUEST_FINISHED] &&
              (uint64_t)n == c.requests,
          "requests: %d started, %d finished, %llu counted", n,
          r->kinds[WXM_EVENT_REQUEST_FINISHED], (unsigned long long)c.requests);
    CHECK(r->transfer == c.transfer_id && c.transfer_id != 0,
          "transfer_id %llu in events, %llu in counters",
          (unsigned long long)r->transfer, (unsigned long long)c.transfer_id);
    CHECK(r->finished_errcode_plus1 == 1, "finished with errcode %lld",
          (long long)r->finished_errcode_plus1 - 1);
    CHECK(c.bytes_received == 300 * KiB && c.elapsed_us > 0,
          "bytes %llu, elapsed %llu", (unsigned long long)c.bytes_received,
          (unsigned long long)c.elapsed_us);
    pthread_mutex_unlock(&r->lock);
    CHECK(evfrees(6) == 0, "freed while a transfer holds the client");
    /* A second run on the same handle: counted anew, events still come. */
    CHECK_RC(run_download(d, 51), WXM_OK);
    pthread_mutex_lock(&r->lock);
    CHECK(r->kinds[WXM_EVENT_TRANSFER_FINISHED] == 2, "second run: %d",
          r->kinds[WXM_EVENT_TRANSFER_FINISHED]);
    pthread_mutex_unlock(&r->lock);
    wxm_download_free(d);
    CHECK(evfrees(6) == 1, "last transfer freed: free_fn ran %d times",
          evfrees(6));

    /* No finalizer: nothing to call, nothing breaks. */
    r = evrec_new(7);
    REQUIRE(r != NULL);
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    REQUIRE(cfg != NULL);
    CHECK_RC(wxm_config_set_event_handler(cfg, evrec_fn, r, NULL,
                                          WXM_LEVEL_DEBUG), WXM_OK);
    wxm_config_free(cfg);
    CHECK(evfrees(7) == 0, "a NULL free_fn was called");
    evrec_free(r);
}

/* A handler that cancels the transfer it reports on (the one wxm_* call
 * the header allows it on that transfer): the run ends WXM_E_CANCELLED,
 * and says so in its TRANSFER_FINISHED. */
static void cb_event_handler_cancels_its_transfer(void)
{
    uint32_t parallelism;
    REQUIRE(admin_media_gen("cb-evc", 600 * KiB, 52, NULL, NULL));
    for (parallelism = 1; parallelism <= 4; parallelism += 3) {
        wxm_client *client = NULL;
        wxm_config *cfg;
        wxm_download *d;
        evrec *r = evrec_new(8);
        int32_t rc;
        REQUIRE(r != NULL);
        cfg = event_config(r, parallelism);
        REQUIRE(cfg != NULL);
        CHECK_RC(wxm_client_new(cfg, &client), WXM_OK);
        wxm_config_free(cfg);
        REQUIRE(client != NULL);
        d = wxm_download_new(client, "cb-evc");
        REQUIRE(d != NULL);
        pthread_mutex_lock(&r->lock);
        r->cancel = d;
        pthread_mutex_unlock(&r->lock);
        rc = run_download(d, 52);
        CHECK_RC(rc, WXM_E_CANCELLED);
        pthread_mutex_lock(&r->lock);
        r->cancel = NULL;
        CHECK(r->bad == 0, "%d malformed or leaking events", r->bad);
        CHECK(r->finished_errcode_plus1 == (uint64_t)(int64_t)WXM_E_CANCELLED + 1,
              "parallelism %u: finished with errcode %lld", parallelism,
              (long long)r->finished_errcode_plus1 - 1);
        CHECK(r->kinds[WXM_EVENT_REQUEST_STARTED] ==
                  r->kinds[WXM_EVENT_REQUEST_FINISHED],
              "%d started, %d finished", r->kinds[WXM_EVENT_REQUEST_STARTED],
              r->kinds[WXM_EVENT_REQUEST_FINISHED]);
        pthread_mutex_unlock(&r->lock);
        wxm_download_free(d);
        wxm_client_free(client);
        CHECK(evfrees(8) == 1, "free_fn ran %d times", evfrees(8));
    }
}

/* The check every test_client's events get can fail: a token in the
 * message or endpoint, a NULL string, a wrong size are each flagged. */
static void cb_event_check_can_fail(void)
{
    wxm_event ev;
    char first[512];
    memset(&ev, 0, sizeof ev);
    ev.size = sizeof ev;
    ev.kind = WXM_EVENT_REQUEST_STARTED;
    ev.level = WXM_LEVEL_DEBUG;
    ev.endpoint = "cgi-bin/media/get";
    ev.message = "GET cgi-bin/media/get bytes=0-15";
    ev.method = "GET";
    check_event(NULL, &ev);
    CHECK(bad_events_take(NULL, 0) == 0, "a clean event flagged");
    ev.message = "GET ?access_token=" TEST_TOKEN;
    check_event(NULL, &ev);
    ev.message = "x";
    ev.endpoint = "cgi-bin/wxmtok3_abc";
    check_event(NULL, &ev);
    ev.endpoint = NULL;
    check_event(NULL, &ev);
    ev.endpoint = "e";
    ev.size = sizeof ev - 8;
    check_event(NULL, &ev);
    CHECK(bad_events_take(first, sizeof first) == 4, "not every bad event flagged");
    CHECK(strstr(first, "a secret") != NULL, "first: %s", first);
}

const test_case callback_tests[] = {
    {"callbacks_event_check_can_fail", cb_event_check_can_fail, 0},
    {"callbacks_provider_finalizer", cb_provider_finalizer, 1},
    {"callbacks_reentry_is_refused", cb_reentry_is_refused, 0},
    {"callbacks_event_handler_finalizer", cb_event_handler_finalizer, 1},
    {"callbacks_event_handler_cancels_its_transfer",
     cb_event_handler_cancels_its_transfer, 1},
    {NULL, NULL, 0}};

/*
 * One client shared by many pthreads, and handle lifetimes: a transfer
 * keeps its client alive.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define KiB 1024ULL
#define NDL 8
#define NUP 4

typedef struct {
    wxm_client *client;
    int index;
    char media_id[32];
    uint64_t seed, size;
    int to_path;
    int32_t rc;
    int ok_bytes;
} dl_job;

static void *dl_worker(void *arg)
{
    dl_job *j = (dl_job *)arg;
    wxm_download *d = wxm_download_new(j->client, j->media_id);
    if (d == NULL) {
        j->rc = WXM_E_INVALID_ARG;
        return NULL;
    }
    if (j->to_path) {
        char path[300];
        tmp_path(path, sizeof path, j->media_id);
        j->rc = wxm_download_to_path(d, path);
        j->ok_bytes = j->rc == WXM_OK && file_matches_gen(path, j->seed, j->size);
    } else {
        vsink s;
        vsink_init(&s, j->seed, 0);
        j->rc = wxm_download_to_sink(d, vsink_fn, &s);
        j->ok_bytes = j->rc == WXM_OK && s.bytes == j->size && s.first == 0 &&
                      !s.mismatch && !s.out_of_order && !s.wrong_thread;
        vsink_done(&s);
    }
    if (wxm_download_size(d) != j->size) j->ok_bytes = 0;
    wxm_download_free(d);
    return NULL;
}

/* 8 pthreads download 8 different media through one client (2 of them to
 * files), at the same time. */
static void threads_shared_client_downloads(void)
{
    dl_job jobs[NDL];
    pthread_t th[NDL];
    wxm_client *client;
    uint64_t maxc = 0;
    int i, started[NDL];
    client = test_client(64 * KiB, 2, 0);
    REQUIRE(client != NULL);
    for (i = 0; i < NDL; i++) {
        dl_job *j = &jobs[i];
        memset(j, 0, sizeof *j);
        j->client = client;
        j->index = i;
        sprintf(j->media_id, "th-dl-%d", i);
        j->seed = 100 + (uint64_t)i;
        j->size = 200 * KiB * (uint64_t)(i + 1) + 7 * (uint64_t)i;
        j->to_path = i >= NDL - 2;
        j->rc = 1;
        REQUIRE(admin_media_gen(j->media_id, j->size, j->seed, NULL, NULL));
    }
    /* 4 MB/s per connection, so that the transfers overlap in time. */
    REQUIRE(admin_fault("\"kind\":\"throttle\",\"bytes_per_sec\":4000000,"
                        "\"count\":100000"));
    for (i = 0; i < NDL; i++)
        started[i] = pthread_create(&th[i], NULL, dl_worker, &jobs[i]) == 0;
    for (i = 0; i < NDL; i++) {
        CHECK(started[i], "pthread_create %d", i);
        if (started[i]) pthread_join(th[i], NULL);
    }
    for (i = 0; i < NDL; i++) {
        CHECK_RC(jobs[i].rc, WXM_OK);
        CHECK(jobs[i].ok_bytes, "thread %d (%s, %s): wrong bytes or size", i,
              jobs[i].media_id, jobs[i].to_path ? "path" : "sink");
    }
    CHECK(stats_u64("max_concurrent_connections", &maxc) && maxc >= 4,
          "8 threads on one client, yet at most %llu connections at once",
          (unsigned long long)maxc);
    wxm_client_free(client);
}

typedef struct {
    wxm_client *client;
    uint8_t *data;
    size_t len;
    char path[300];
    char media_id[128];
    int32_t rc;
} up_job;

static void *up_worker(void *arg)
{
    up_job *j = (up_job *)arg;
    wxm_upload *u = wxm_upload_new(j->client, "file");
    if (u == NULL) {
        j->rc = WXM_E_INVALID_ARG;
        return NULL;
    }
    j->rc = wxm_upload_set_path(u, j->path);
    if (j->rc == WXM_OK) j->rc = wxm_upload_run(u);
    if (j->rc == WXM_OK && wxm_upload_media_id(u) != NULL)
        snprintf(j->media_id, sizeof j->media_id, "%s", wxm_upload_media_id(u));
    wxm_upload_free(u);
    return NULL;
}

/* 4 pthreads upload 4 different files through one client. */
static void threads_shared_client_uploads(void)
{
    up_job jobs[NUP];
    pthread_t th[NUP];
    wxm_client *client;
    int i, started[NUP];
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);
    for (i = 0; i < NUP; i++) {
        up_job *j = &jobs[i];
        char name[32];
        memset(j, 0, sizeof *j);
        j->client = client;
        j->len = 100000 + 12345 * (size_t)i;
        j->data = (uint8_t *)malloc(j->len);
        REQUIRE(j->data != NULL);
        gen_fill(200 + (uint64_t)i, 0, j->data, j->len);
        sprintf(name, "th-up-%d.bin", i);
        tmp_path(j->path, sizeof j->path, name);
        REQUIRE(write_file(j->path, j->data, j->len));
        j->rc = 1;
    }
    for (i = 0; i < NUP; i++)
        started[i] = pthread_create(&th[i], NULL, up_worker, &jobs[i]) == 0;
    for (i = 0; i < NUP; i++)
        if (started[i]) pthread_join(th[i], NULL);
    for (i = 0; i < NUP; i++) {
        up_job *j = &jobs[i];
        CHECK_RC(j->rc, WXM_OK);
        if (j->rc == WXM_OK) {
            char path[256], want[65];
            jv *m;
            snprintf(path, sizeof path, "/__admin/media/%s", j->media_id);
            m = admin_get_json(path);
            sha256_hex(j->data, j->len, want);
            CHECK(m != NULL && jv_str(jv_get(m, "sha256")) != NULL &&
                      strcmp(jv_str(jv_get(m, "sha256")), want) == 0,
                  "upload %d arrived different", i);
            jv_free(m);
        }
        free(j->data);
    }
    wxm_client_free(client);
}

/* Freeing the client before its transfers run is safe: each transfer holds
 * its own reference. */
static void threads_client_freed_first(void)
{
    const size_t len = 50000;
    uint8_t *data = (uint8_t *)malloc(len);
    char path[300];
    wxm_client *client;
    wxm_download *d;
    wxm_upload *u;
    vsink s;
    REQUIRE(data != NULL);
    gen_fill(81, 0, data, len);
    tmp_path(path, sizeof path, "freed-first.bin");
    CHECK(write_file(path, data, len));
    free(data);
    REQUIRE(admin_media_gen("th-freed", 300 * KiB, 82, NULL, NULL));
    client = test_client(64 * KiB, 2, 0);
    REQUIRE(client != NULL);
    d = wxm_download_new(client, "th-freed");
    u = wxm_upload_new(client, "file");
    wxm_client_free(client);
    REQUIRE(d != NULL && u != NULL);
    vsink_init(&s, 82, 0);
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_OK);
    CHECK(s.bytes == 300 * KiB && !s.mismatch, "bytes after the client was freed");
    CHECK_RC(wxm_upload_set_path(u, path), WXM_OK);
    CHECK_RC(wxm_upload_run(u), WXM_OK);
    vsink_done(&s);
    wxm_download_free(d);
    wxm_upload_free(u);
}

const test_case thread_tests[] = {
    {"threads_shared_client_downloads", threads_shared_client_downloads, 0},
    {"threads_shared_client_uploads", threads_shared_client_uploads, 0},
    {"threads_client_freed_first", threads_client_freed_first, 1},
    {NULL, NULL, 0}};

/*
 * Downloads through a sink and to a path, against the emulator.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KiB 1024ULL
#define MiB (1024ULL * 1024ULL)

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Download media_id through a verifying sink and check what every host
 * relies on: all bytes, in order, on the calling thread, with coherent
 * progress and getters.  Returns the result code. */
static int32_t sink_download(wxm_client *client, const char *media_id,
                             uint64_t seed, uint64_t size)
{
    wxm_download *d = wxm_download_new(client, media_id);
    vsink s;
    vprogress p;
    int32_t rc;
    if (d == NULL) {
        t_fail(__FILE__, __LINE__, "wxm_download_new", "(%s) = NULL: %s", media_id,
               wxm_last_errmsg());
        return WXM_E_INVALID_ARG;
    }
    vsink_init(&s, seed, 0);
    vprogress_init(&p);
    CHECK_RC(wxm_download_set_progress(d, vprogress_fn, &p), WXM_OK);
    rc = wxm_download_to_sink(d, vsink_fn, &s);
    if (rc == WXM_OK) {
        CHECK(s.bytes == size, "%s: sink got %llu bytes, expected %llu",
              media_id, (unsigned long long)s.bytes, (unsigned long long)size);
        CHECK(s.first == 0, "%s: first sink offset %llu", media_id,
              (unsigned long long)s.first);
        CHECK(!s.out_of_order, "%s: sink offsets were not contiguous", media_id);
        CHECK(!s.mismatch, "%s: sink bytes differ from the media", media_id);
        CHECK(!s.wrong_thread, "%s: sink called on another thread", media_id);
        CHECK(wxm_download_size(d) == size, "%s: wxm_download_size = %llu",
              media_id, (unsigned long long)wxm_download_size(d));
        CHECK(p.calls > 0, "%s: progress never called", media_id);
        CHECK(!p.backwards && !p.total_changed && !p.over_total,
              "%s: incoherent progress", media_id);
        CHECK(p.last_done == size && p.last_total == size,
              "%s: last progress %llu/%llu", media_id,
              (unsigned long long)p.last_done, (unsigned long long)p.last_total);
        CHECK(!p.wrong_thread, "%s: progress called on another thread",
              media_id);
    }
    vsink_done(&s);
    wxm_download_free(d);
    return rc;
}

/* 1 MiB + 123 bytes, 64 KiB chunks, one connection. */
static void dl_sink_sequential(void)
{
    const uint64_t size = MiB + 123, chunk = 64 * KiB;
    wxm_client *client;
    wxm_download *d;
    vsink s;
    long n;
    REQUIRE(admin_media_gen("dl-seq", size, 11, "report-1.bin",
                            "application/pdf"));
    client = test_client(chunk, 1, 0);
    REQUIRE(client != NULL);
    CHECK_RC(sink_download(client, "dl-seq", 11, size), WXM_OK);

    n = check_ranges("dl-seq", chunk, size, NULL);
    CHECK(n >= (long)((size + chunk - 1) / chunk) &&
              n <= (long)((size + chunk - 1) / chunk) + 1,
          "%ld Range requests for %llu chunks", n,
          (unsigned long long)((size + chunk - 1) / chunk));

    /* The getters, on a fresh handle. */
    d = wxm_download_new(client, "dl-seq");
    REQUIRE(d != NULL);
    CHECK(wxm_download_size(d) == 0, "size before the run must be 0");
    vsink_init(&s, 11, 0);
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_OK);
    CHECK(wxm_download_filename(d) != NULL &&
              strcmp(wxm_download_filename(d), "report-1.bin") == 0,
          "filename = %s", wxm_download_filename(d));
    CHECK(wxm_download_content_type(d) != NULL &&
              strcmp(wxm_download_content_type(d), "application/pdf") == 0,
          "content_type = %s", wxm_download_content_type(d));
    CHECK(wxm_download_video_url(d) == NULL ||
              wxm_download_video_url(d)[0] == '\0',
          "a file has no video_url, got %s", wxm_download_video_url(d));
    vsink_done(&s);
    wxm_download_free(d);
    wxm_client_free(client);
}

/* 3 MiB + 7 bytes, 64 KiB chunks, 4 connections: the sink still sees the
 * bytes in order, and the connections really overlap. */
static void dl_sink_parallel(void)
{
    const uint64_t size = 3 * MiB + 7, chunk = 64 * KiB;
    wxm_client *client;
    uint64_t maxc = 0;
    long n;
    REQUIRE(admin_media_gen("dl-par", size, 12, NULL, NULL));
    /* Every answer waits 20 ms before its head, so the 4 connections'
     * requests overlap (about 0.25 s in all). A throttle would not do it:
     * the emulator sends the first rate/20 bytes of a body at once, and at
     * 8 MB/s that is a whole 64 KiB chunk, so the workers could happen to
     * take turns on one connection. */
    REQUIRE(admin_fault("\"kind\":\"slow_headers\",\"media_id\":\"dl-par\","
                        "\"ms\":20,\"count\":10000"));
    client = test_client(chunk, 4, 0);
    REQUIRE(client != NULL);
    CHECK_RC(sink_download(client, "dl-par", 12, size), WXM_OK);
    n = check_ranges("dl-par", chunk, size, NULL);
    CHECK(n >= (long)((size + chunk - 1) / chunk), "%ld Range requests", n);
    CHECK(stats_u64("max_concurrent_connections", &maxc) && maxc >= 3,
          "parallelism 4 but at most %llu connections at once",
          (unsigned long long)maxc);
    wxm_client_free(client);
}

/* Sizes around the edges of chunks and of the 16-byte alignment. */
static void dl_sink_edge_sizes(void)
{
    static const uint64_t sizes[] = {6, 16, 17, 64 * KiB - 1, 64 * KiB,
                                     64 * KiB + 1, 128 * KiB};
    wxm_client *client = test_client(64 * KiB, 2, 0);
    size_t i;
    REQUIRE(client != NULL);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char id[32];
        sprintf(id, "dl-edge-%lu", (unsigned long)i);
        if (!admin_media_gen(id, sizes[i], 40 + i, NULL, NULL)) {
            t_fail(__FILE__, __LINE__, "admin_media_gen", "cannot register %s", id);
            continue;
        }
        CHECK_RC(sink_download(client, id, 40 + i, sizes[i]), WXM_OK);
        CHECK(check_ranges(id, 64 * KiB, sizes[i], NULL) >= 1, "%s", id);
    }
    wxm_client_free(client);
}

/* Library defaults (20 MiB chunks): a 2 MiB media in one request. */
static void dl_sink_defaults(void)
{
    const uint64_t size = 2 * MiB + 3;
    wxm_client *client;
    long n;
    REQUIRE(admin_media_gen("dl-default", size, 13, NULL, NULL));
    client = test_client(0, 0, 0);
    REQUIRE(client != NULL);
    CHECK_RC(sink_download(client, "dl-default", 13, size), WXM_OK);
    n = check_ranges("dl-default", 20 * MiB, size, NULL);
    CHECK(n == 1, "%ld requests for a media smaller than one chunk", n);
    wxm_client_free(client);
}

/* Host-managed resume: an unaligned start is fetched from the aligned floor,
 * and the sink sees offsets from the start on. */
static void dl_start_offset(void)
{
    const uint64_t size = 200000, start = 1003;
    wxm_client *client;
    wxm_download *d;
    vsink s;
    uint64_t min_start = 0;
    REQUIRE(admin_media_gen("dl-start", size, 14, NULL, NULL));
    client = test_client(64 * KiB, 1, 0);
    REQUIRE(client != NULL);
    d = wxm_download_new(client, "dl-start");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_set_start(d, start), WXM_OK);
    vsink_init(&s, 14, start);
    CHECK_RC(wxm_download_to_sink(d, vsink_fn, &s), WXM_OK);
    CHECK(s.first == start, "first sink offset %llu, expected %llu",
          (unsigned long long)s.first, (unsigned long long)start);
    CHECK(!s.out_of_order && !s.mismatch, "sink content or order wrong");
    CHECK(s.next == size, "sink ended at %llu", (unsigned long long)s.next);
    CHECK(wxm_download_size(d) == size, "size %llu",
          (unsigned long long)wxm_download_size(d));
    CHECK(check_ranges("dl-start", 64 * KiB, size, &min_start) >= 1);
    CHECK(min_start == start / 16 * 16, "first Range starts at %llu",
          (unsigned long long)min_start);
    vsink_done(&s);
    wxm_download_free(d);
    wxm_client_free(client);
}

/* To a file; a failed download never damages an existing file. */
static void dl_path(void)
{
    const uint64_t size = MiB + 5;
    char path[300], bad[300];
    wxm_client *client;
    wxm_download *d;
    vprogress p;
    REQUIRE(admin_media_gen("dl-path", size, 21, "path.bin", NULL));
    client = test_client(64 * KiB, 2, 0);
    REQUIRE(client != NULL);
    tmp_path(path, sizeof path, "dl-path.bin");

    d = wxm_download_new(client, "dl-path");
    REQUIRE(d != NULL);
    vprogress_init(&p);
    CHECK_RC(wxm_download_set_progress(d, vprogress_fn, &p), WXM_OK);
    CHECK_RC(wxm_download_to_path(d, path), WXM_OK);
    CHECK(file_matches_gen(path, 21, size), "downloaded file content");
    CHECK(wxm_download_size(d) == size, "size %llu",
          (unsigned long long)wxm_download_size(d));
    CHECK(p.last_done == size && !p.backwards, "progress %llu",
          (unsigned long long)p.last_done);
    {
        char part[320];
        snprintf(part, sizeof part, "%s.wxmpart", path);
        CHECK(!exists(part), "%s left after success", part);
    }
    wxm_download_free(d);

    /* Again onto the existing file: replaced, same content. */
    d = wxm_download_new(client, "dl-path");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_to_path(d, path), WXM_OK);
    CHECK(file_matches_gen(path, 21, size), "file after a second download");
    wxm_download_free(d);

    /* An unknown media onto the existing file: 40007, the file untouched. */
    d = wxm_download_new(client, "no-such-media");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_to_path(d, path), 40007);
    CHECK(file_matches_gen(path, 21, size), "a failed download damaged the file");
    wxm_download_free(d);

    /* A directory that does not exist: a local I/O error. */
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.bin", g_tmpdir);
    d = wxm_download_new(client, "dl-path");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_to_path(d, bad), WXM_E_IO);
    wxm_download_free(d);
    wxm_client_free(client);
}

typedef struct {
    vprogress p;
    wxm_download *d;
    uint64_t cancel_at;
} cancel_progress;

/* Cancels its own download (from the calling thread) half-way. */
static int32_t cancel_half_way(void *user_data, uint64_t done, uint64_t total)
{
    cancel_progress *c = (cancel_progress *)user_data;
    if (done >= c->cancel_at) wxm_download_cancel(c->d);
    return vprogress_fn(&c->p, done, total);
}

/* An interrupted to_path resumes from its temporary file on the next call
 * for the same media_id. */
static void dl_path_resume(void)
{
    const uint64_t size = 2 * MiB, chunk = 64 * KiB;
    char path[300], part[320], record[340];
    wxm_client *client;
    wxm_download *d;
    cancel_progress cp;
    uint64_t min_start = 0;
    REQUIRE(admin_media_gen("dl-resume", size, 22, NULL, NULL));
    client = test_client(chunk, 1, 0);
    REQUIRE(client != NULL);
    tmp_path(path, sizeof path, "dl-resume.bin");
    snprintf(part, sizeof part, "%s.wxmpart", path);
    snprintf(record, sizeof record, "%s.wxmpart.json", path);

    d = wxm_download_new(client, "dl-resume");
    REQUIRE(d != NULL);
    vprogress_init(&cp.p);
    cp.d = d;
    cp.cancel_at = MiB; /* stop half-way */
    CHECK_RC(wxm_download_set_progress(d, cancel_half_way, &cp), WXM_OK);
    CHECK_RC(wxm_download_to_path(d, path), WXM_E_CANCELLED);
    CHECK(!exists(path), "a cancelled download created the target");
    CHECK(exists(part), "no %s after the cancel", part);
    wxm_download_free(d);

    REQUIRE(admin_reset());
    d = wxm_download_new(client, "dl-resume");
    REQUIRE(d != NULL);
    CHECK_RC(wxm_download_to_path(d, path), WXM_OK);
    CHECK(file_matches_gen(path, 22, size), "resumed file content");
    CHECK(check_ranges("dl-resume", chunk, size, &min_start) >= 1);
    CHECK(min_start > 0 && min_start != UINT64_MAX,
          "the second call started again at byte %llu instead of resuming",
          (unsigned long long)min_start);
    CHECK(!exists(part) && !exists(record), "temporary files left after success");
    wxm_download_free(d);
    wxm_client_free(client);
}

/* Connection resets and a 503 in the middle are retried transparently. */
static void dl_retries(void)
{
    const uint64_t size = 600 * KiB;
    wxm_client *client;
    uint64_t fired = 0;
    REQUIRE(admin_media_gen("dl-retry", size, 23, NULL, NULL));
    REQUIRE(admin_fault("\"kind\":\"reset\",\"media_id\":\"dl-retry\","
                        "\"after_bytes\":10000,\"count\":2"));
    REQUIRE(admin_fault("\"kind\":\"http_status\",\"media_id\":\"dl-retry\","
                        "\"status\":503,\"count\":1"));
    client = test_client(64 * KiB, 1, 6);
    REQUIRE(client != NULL);
    CHECK_RC(sink_download(client, "dl-retry", 23, size), WXM_OK);
    CHECK(stats_u64("faults_fired", &fired) && fired == 3,
          "faults fired: %llu, expected 3", (unsigned long long)fired);
    wxm_client_free(client);
}

const test_case download_tests[] = {
    {"download_sink_sequential", dl_sink_sequential, 1},
    {"download_sink_parallel", dl_sink_parallel, 0},
    {"download_sink_edge_sizes", dl_sink_edge_sizes, 0},
    {"download_sink_defaults", dl_sink_defaults, 0},
    {"download_start_offset", dl_start_offset, 0},
    {"download_path", dl_path, 1},
    {"download_path_resume", dl_path_resume, 0},
    {"download_retries", dl_retries, 0},
    {NULL, NULL, 0}};

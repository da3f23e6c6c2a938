/*
 * bench_wx (C host): time one wxmedia transfer and print one line.
 *
 *   bench_wx -m MODE -b BASE_URL -k TOKEN [-i MEDIA_ID] [-o OUT] [-f FILE]
 *            [-p PARALLELISM] [-c CHUNK] [-n COUNT] [-t TYPE] [-a CAFILE]
 *            [-e MIN_LEVEL] [-s S3_ENDPOINT] [-S PART_SIZE]
 *
 *   MODE  path    download MEDIA_ID to OUT (wxm_download_to_path)
 *         sink    download MEDIA_ID into a sink that discards the bytes
 *         upload  upload FILE as TYPE (default "file") from its path
 *         object  download MEDIA_ID into object storage (wxm_download_to_object),
 *                 OUT being s3://BUCKET/KEY, at S3_ENDPOINT (path style);
 *                 the credentials from AWS_ACCESS_KEY_ID and
 *                 AWS_SECRET_ACCESS_KEY, as the library reads them
 *         small   COUNT downloads of MEDIA_ID on one client, each kept in
 *                 memory (copied into one reused buffer), as the Go host
 *                 (bytes.Buffer) and the Python host (download_bytes) do
 *   CAFILE  a PEM file of CAs to trust for https (the bench's test CA),
 *           through wxm_config_set_ca_file
 *   MIN_LEVEL  sets an event handler (wxm_config_set_event_handler) that
 *           counts the events of that WXM_LEVEL_* and above (10: every
 *           request's too), as cheap a handler as a host can have: what the
 *           bench weighs is the library's side of the call
 *
 * Output (stdout), the same from every host's driver:
 *   BENCH ok=1 host=c mode=MODE bytes=N secs=S n=COUNT [media_id=ID] [events=E]
 *   BENCH ok=0 host=c mode=MODE rc=CODE msg=...      (exit status 1)
 * `secs` covers the transfer(s) only (handle creation to completion), not
 * process start-up or client creation.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wxmedia.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Discards the bytes; counts them so the orchestrator can check the size. */
static int32_t discard(void *user_data, uint64_t offset, const uint8_t *data, size_t len)
{
    uint64_t *count = (uint64_t *)user_data;
    (void)offset;
    (void)data;
    *count += len;
    return 0;
}

/* Keeps the media in memory: the buffer grows as needed and is reused by
 * the next download, like a Go bytes.Buffer after Reset. */
struct keep {
    uint8_t *data;
    size_t len, cap;
};

static int32_t keep_bytes(void *user_data, uint64_t offset, const uint8_t *data, size_t len)
{
    struct keep *k = (struct keep *)user_data;
    (void)offset;
    if (k->len + len > k->cap) {
        size_t cap = k->cap ? k->cap : 64 * 1024;
        uint8_t *grown;
        while (cap < k->len + len) cap *= 2;
        grown = (uint8_t *)realloc(k->data, cap);
        if (!grown) return 1;
        k->data = grown;
        k->cap = cap;
    }
    memcpy(k->data + k->len, data, len);
    k->len += len;
    return 0;
}

/* The event handler: it may run on the library's worker threads (parallel
 * downloads), hence the atomic add. */
static void count_event(void *user_data, const wxm_event *event)
{
    (void)event;
    __atomic_fetch_add((uint64_t *)user_data, 1, __ATOMIC_RELAXED);
}

static int fail(const char *mode, int32_t rc, const char *msg)
{
    printf("BENCH ok=0 host=c mode=%s rc=%d msg=%s (%s)\n", mode, (int)rc,
           wxm_strerror(rc), msg ? msg : "");
    return 1;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -m path|sink|upload|small|object -b BASE_URL -k TOKEN [-i MEDIA_ID]\n"
            "          [-o OUT] [-f FILE] [-p PARALLELISM] [-c CHUNK] [-n COUNT] [-t TYPE]\n"
            "          [-a CAFILE] [-e MIN_LEVEL] [-s S3_ENDPOINT] [-S PART_SIZE]\n",
            argv0);
}

/* Mode object: one wxm_download_to_object of MEDIA_ID to s3://BUCKET/KEY. */
static int to_object(wxm_client *client, const char *media, const char *out,
                     const char *endpoint, unsigned long long part_size)
{
    char bucket[256];
    const char *key;
    size_t blen;
    wxm_objstore *store;
    wxm_download *dl;
    int32_t rc;
    double t0, t1;
    uint64_t size;

    if (!media || !out || !endpoint || strncmp(out, "s3://", 5) != 0) return -1;
    key = strchr(out + 5, '/');
    if (!key || key == out + 5 || !key[1]) return -1;
    blen = (size_t)(key - (out + 5));
    if (blen >= sizeof bucket) return -1;
    memcpy(bucket, out + 5, blen);
    bucket[blen] = '\0';
    key++;

    store = wxm_objstore_new();
    if (!store) return fail("object", WXM_E_INVALID_ARG, wxm_last_errmsg());
    rc = wxm_objstore_set_endpoint(store, endpoint);
    if (rc == WXM_OK) rc = wxm_objstore_set_path_style(store, 1);
    if (rc == WXM_OK && part_size) rc = wxm_objstore_set_part_size(store, part_size);
    if (rc != WXM_OK) {
        wxm_objstore_free(store);
        return fail("object", rc, wxm_last_errmsg());
    }
    t0 = now();
    dl = wxm_download_new(client, media);
    if (!dl) {
        wxm_objstore_free(store);
        return fail("object", WXM_E_INVALID_ARG, wxm_last_errmsg());
    }
    rc = wxm_download_to_object(dl, store, bucket, key);
    t1 = now();
    wxm_objstore_free(store);
    if (rc != WXM_OK) {
        int r = fail("object", rc, wxm_download_errmsg(dl));
        wxm_download_free(dl);
        return r;
    }
    size = wxm_download_size(dl);
    {
        wxm_counters counted;
        memset(&counted, 0, sizeof counted);
        counted.size = sizeof counted;
        (void)wxm_download_counters(dl, &counted);
        printf("BENCH ok=1 host=c mode=object bytes=%llu secs=%.6f n=1 resumed=%llu\n",
               (unsigned long long)size, t1 - t0, (unsigned long long)counted.resumed_from);
    }
    wxm_download_free(dl);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *base = NULL, *token = NULL, *media = NULL, *out = NULL;
    const char *file = NULL, *type = "file", *ca_file = NULL, *s3_endpoint = NULL;
    unsigned long long part_size = 0;
    unsigned long parallelism = 0, count = 1;
    unsigned long long chunk = 0;
    wxm_config *cfg;
    wxm_client *client = NULL;
    int32_t rc = WXM_OK;
    int opt;
    double t0, t1;
    uint64_t bytes = 0;
    struct keep kept = {NULL, 0, 0};
    long min_level = 0; /* 0: no event handler */
    uint64_t events = 0;

    while ((opt = getopt(argc, argv, "m:b:k:i:o:f:p:c:n:t:a:e:s:S:")) != -1) {
        switch (opt) {
        case 'm': mode = optarg; break;
        case 'b': base = optarg; break;
        case 'k': token = optarg; break;
        case 'i': media = optarg; break;
        case 'o': out = optarg; break;
        case 'f': file = optarg; break;
        case 'p': parallelism = strtoul(optarg, NULL, 10); break;
        case 'c': chunk = strtoull(optarg, NULL, 10); break;
        case 'n': count = strtoul(optarg, NULL, 10); break;
        case 't': type = optarg; break;
        case 'a': ca_file = optarg; break;
        case 'e': min_level = strtol(optarg, NULL, 10); break;
        case 's': s3_endpoint = optarg; break;
        case 'S': part_size = strtoull(optarg, NULL, 10); break;
        default: usage(argv[0]); return 2;
        }
    }
    if (!mode || !base || !token) { usage(argv[0]); return 2; }

    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (!cfg) return fail(mode, WXM_E_INVALID_ARG, wxm_last_errmsg());
    rc = wxm_config_set_base_url(cfg, base);
    if (rc == WXM_OK) rc = wxm_config_set_access_token(cfg, token);
    if (rc == WXM_OK && ca_file) rc = wxm_config_set_ca_file(cfg, ca_file);
    if (rc == WXM_OK && chunk) rc = wxm_config_set_chunk_size(cfg, chunk);
    if (rc == WXM_OK && min_level)
        rc = wxm_config_set_event_handler(cfg, count_event, &events, NULL, (int32_t)min_level);
    if (rc == WXM_OK && parallelism) rc = wxm_config_set_parallelism(cfg, (uint32_t)parallelism);
    /* Large uploads on the emulator run with raised limits (--limit file=...). */
    if (rc == WXM_OK && strcmp(mode, "upload") == 0)
        rc = wxm_config_set_limit(cfg, type, (uint64_t)1 << 40);
    if (rc == WXM_OK) rc = wxm_client_new(cfg, &client);
    wxm_config_free(cfg);
    if (rc != WXM_OK) return fail(mode, rc, wxm_last_errmsg());

    if (strcmp(mode, "path") == 0 || strcmp(mode, "sink") == 0 || strcmp(mode, "small") == 0) {
        /* COUNT transfers in one process (steady state; small downloads). */
        unsigned long i, n = count ? count : 1;
        if (!media || (strcmp(mode, "path") == 0 && !out)) { usage(argv[0]); return 2; }
        t0 = now();
        for (i = 0; i < n; i++) {
            wxm_download *dl = wxm_download_new(client, media);
            if (!dl) return fail(mode, WXM_E_INVALID_ARG, wxm_last_errmsg());
            if (strcmp(mode, "path") == 0) {
                rc = wxm_download_to_path(dl, out);
                if (rc == WXM_OK) bytes += wxm_download_size(dl);
            } else if (strcmp(mode, "small") == 0) {
                kept.len = 0;
                rc = wxm_download_to_sink(dl, keep_bytes, &kept);
                bytes += kept.len;
            } else {
                rc = wxm_download_to_sink(dl, discard, &bytes);
            }
            if (rc != WXM_OK) {
                int r = fail(mode, rc, wxm_download_errmsg(dl));
                wxm_download_free(dl);
                wxm_client_free(client);
                return r;
            }
            wxm_download_free(dl);
        }
        t1 = now();
        printf("BENCH ok=1 host=c mode=%s bytes=%llu secs=%.6f n=%lu", mode,
               (unsigned long long)bytes, t1 - t0, n);
        if (min_level)
            printf(" events=%llu", (unsigned long long)__atomic_load_n(&events, __ATOMIC_RELAXED));
        printf("\n");
    } else if (strcmp(mode, "object") == 0) {
        int r = to_object(client, media, out, s3_endpoint, part_size);
        if (r < 0) usage(argv[0]);
        wxm_client_free(client);
        return r < 0 ? 2 : r;
    } else if (strcmp(mode, "upload") == 0) {
        wxm_upload *up;
        if (!file) { usage(argv[0]); return 2; }
        t0 = now();
        up = wxm_upload_new(client, type);
        if (!up) return fail(mode, WXM_E_INVALID_ARG, wxm_last_errmsg());
        rc = wxm_upload_set_path(up, file);
        if (rc == WXM_OK) rc = wxm_upload_run(up);
        t1 = now();
        if (rc != WXM_OK) {
            int r = fail(mode, rc, wxm_upload_errmsg(up));
            wxm_upload_free(up);
            wxm_client_free(client);
            return r;
        }
        {
            FILE *f = fopen(file, "rb");
            long long size = -1;
            if (f && fseeko(f, 0, SEEK_END) == 0) size = (long long)ftello(f);
            if (f) fclose(f);
            printf("BENCH ok=1 host=c mode=upload bytes=%lld secs=%.6f n=1 media_id=%s\n",
                   size, t1 - t0, wxm_upload_media_id(up));
        }
        wxm_upload_free(up);
    } else {
        usage(argv[0]);
        wxm_client_free(client);
        return 2;
    }
    wxm_client_free(client);
    free(kept.data);
    return 0;
}

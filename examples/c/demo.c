/*
 * demo: the whole job in one program.
 *
 *   demo [BASE_URL [ACCESS_TOKEN]]      (or $WXMEDIA_BASE_URL, $WXMEDIA_ACCESS_TOKEN)
 *
 * 1. makes a real file of 3 MiB + 7 bytes,
 * 2. uploads it as a `file` media (streaming multipart),
 * 3. downloads it back in 64 KiB Range chunks, two at a time:
 *    a. to a path (temporary file, verified, renamed into place),
 *    b. through a sink callback into memory,
 * 4. checks that both copies equal the original byte for byte,
 * and prints a short summary.  Exits non-zero on any failure.
 *
 * `make c-demo` runs it against the bundled emulator.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wxmedia.h"

#define FILE_SIZE (3u * 1024u * 1024u + 7u)
#define CHUNK_SIZE (64u * 1024u)
#define PARALLELISM 2u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Deterministic pseudo-random content (xorshift), so the file is not all
 * one byte and a misplaced chunk would show. */
static void make_content(uint8_t *buf, size_t len)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    size_t i;
    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (f == NULL) return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* Compare a file with a buffer. */
static int file_equals(const char *path, const uint8_t *want, size_t len)
{
    FILE *f = fopen(path, "rb");
    uint8_t block[65536];
    size_t pos = 0, n;
    int same = 1;
    if (f == NULL) return 0;
    while (same && (n = fread(block, 1, sizeof block, f)) > 0) {
        same = pos + n <= len && memcmp(block, want + pos, n) == 0;
        pos += n;
    }
    fclose(f);
    return same && pos == len;
}

/* A sink that appends into a preallocated buffer.  Offsets arrive
 * contiguous and in order, whatever the parallelism. */
typedef struct {
    uint8_t *data;
    size_t cap, len;
    unsigned calls;
} memory_sink;

static int32_t sink_to_memory(void *user_data, uint64_t offset,
                              const uint8_t *data, size_t len)
{
    memory_sink *m = (memory_sink *)user_data;
    if (offset != m->len || len > m->cap - m->len) return 1; /* stop */
    memcpy(m->data + m->len, data, len);
    m->len += len;
    m->calls++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *base_url = argc > 1 ? argv[1] : getenv("WXMEDIA_BASE_URL");
    const char *token = argc > 2 ? argv[2] : getenv("WXMEDIA_ACCESS_TOKEN");
    char dir[] = "/tmp/wxmedia-demo-XXXXXX", src[64], dst[64], media_id[256];
    uint8_t *original = NULL;
    memory_sink mem = {NULL, 0, 0, 0};
    wxm_config *cfg = NULL;
    wxm_client *client = NULL;
    wxm_upload *up = NULL;
    wxm_download *dl = NULL;
    double t0, t_up, t_path, t_sink;
    int32_t rc = WXM_OK;
    int ok = 0;

    if (token == NULL || token[0] == '\0') {
        fprintf(stderr, "usage: %s [BASE_URL [ACCESS_TOKEN]] "
                        "(or set WXMEDIA_BASE_URL and WXMEDIA_ACCESS_TOKEN)\n",
                argv[0]);
        return 2;
    }

    /* 1. A real file. */
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(src, sizeof src, "%s/demo-upload.bin", dir);
    snprintf(dst, sizeof dst, "%s/demo-download.bin", dir);
    original = (uint8_t *)malloc(FILE_SIZE);
    mem.data = (uint8_t *)malloc(FILE_SIZE);
    mem.cap = FILE_SIZE;
    if (original == NULL || mem.data == NULL) goto done;
    make_content(original, FILE_SIZE);
    if (!write_file(src, original, FILE_SIZE)) {
        perror(src);
        goto done;
    }

    /* A client: 64 KiB Range chunks, two connections. */
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (cfg == NULL) goto fail;
    if (base_url != NULL && base_url[0] != '\0' &&
        (rc = wxm_config_set_base_url(cfg, base_url)) != WXM_OK)
        goto fail;
    if ((rc = wxm_config_set_access_token(cfg, token)) != WXM_OK) goto fail;
    if ((rc = wxm_config_set_chunk_size(cfg, CHUNK_SIZE)) != WXM_OK) goto fail;
    if ((rc = wxm_config_set_parallelism(cfg, PARALLELISM)) != WXM_OK) goto fail;
    if ((rc = wxm_client_new(cfg, &client)) != WXM_OK) goto fail;

    /* 2. Upload. */
    t0 = now();
    up = wxm_upload_new(client, "file");
    if (up == NULL) goto fail;
    if ((rc = wxm_upload_set_path(up, src)) != WXM_OK ||
        (rc = wxm_upload_run(up)) != WXM_OK) {
        fprintf(stderr, "upload failed: %d (%s): %s\n", (int)rc,
                wxm_strerror(rc), wxm_upload_errmsg(up));
        goto done;
    }
    t_up = now() - t0;
    snprintf(media_id, sizeof media_id, "%s", wxm_upload_media_id(up));
    printf("uploaded   %u bytes as media_id %s (%.3f s)\n", FILE_SIZE, media_id,
           t_up);

    /* 3a. Download to a path. */
    t0 = now();
    dl = wxm_download_new(client, media_id);
    if (dl == NULL) goto fail;
    if ((rc = wxm_download_to_path(dl, dst)) != WXM_OK) {
        fprintf(stderr, "download to path failed: %d (%s): %s\n", (int)rc,
                wxm_strerror(rc), wxm_download_errmsg(dl));
        goto done;
    }
    t_path = now() - t0;
    printf("downloaded %llu bytes to %s, filename %s (%.3f s)\n",
           (unsigned long long)wxm_download_size(dl), dst,
           wxm_download_filename(dl) ? wxm_download_filename(dl) : "-", t_path);
    wxm_download_free(dl);

    /* 3b. Download through a sink. */
    t0 = now();
    dl = wxm_download_new(client, media_id);
    if (dl == NULL) goto fail;
    if ((rc = wxm_download_to_sink(dl, sink_to_memory, &mem)) != WXM_OK) {
        fprintf(stderr, "download to sink failed: %d (%s): %s\n", (int)rc,
                wxm_strerror(rc), wxm_download_errmsg(dl));
        goto done;
    }
    t_sink = now() - t0;
    printf("downloaded %lu bytes through a sink in %u calls (%.3f s)\n",
           (unsigned long)mem.len, mem.calls, t_sink);

    /* 4. Verify. */
    if (!file_equals(dst, original, FILE_SIZE)) {
        fprintf(stderr, "MISMATCH: %s differs from the uploaded file\n", dst);
        goto done;
    }
    if (mem.len != FILE_SIZE || memcmp(mem.data, original, FILE_SIZE) != 0) {
        fprintf(stderr, "MISMATCH: the sink's bytes differ from the uploaded file\n");
        goto done;
    }
    printf("verified   both copies equal the original: %u bytes, %u chunks of "
           "at most %u KiB, %u at a time\n",
           FILE_SIZE, (FILE_SIZE + CHUNK_SIZE - 1) / CHUNK_SIZE, CHUNK_SIZE / 1024,
           PARALLELISM);
    ok = 1;
    goto done;

fail:
    /* A setter's code, or NULL from a *_new: the detail is thread-local. */
    fprintf(stderr, "failed: %d (%s): %s\n", (int)rc, wxm_strerror(rc),
            wxm_last_errmsg() ? wxm_last_errmsg() : "-");
done:
    wxm_download_free(dl);
    wxm_upload_free(up);
    wxm_client_free(client);
    wxm_config_free(cfg);
    free(original);
    free(mem.data);
    remove(src);
    remove(dst);
    rmdir(dir);
    printf("demo: %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}

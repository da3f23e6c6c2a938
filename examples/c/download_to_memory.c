/*
 * download_to_memory: fetch one temporary media into a memory buffer
 * through a sink callback.
 *
 *   download_to_memory MEDIA_ID [BASE_URL [ACCESS_TOKEN]]
 *
 * BASE_URL and ACCESS_TOKEN default to $WXMEDIA_BASE_URL and
 * $WXMEDIA_ACCESS_TOKEN.
 *
 * The sink is called on the thread that called wxm_download_to_sink, never
 * concurrently, with contiguous, strictly increasing offsets, even when the
 * library fetches several Range chunks in parallel.  So a sink can simply
 * append.  The same pattern streams into a socket, a hash or a decoder.
 *
 * Build:  cc download_to_memory.c $(pkg-config --cflags --libs wxmedia)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wxmedia.h"

typedef struct {
    uint8_t *data;
    size_t len, cap;
} buffer;

/* Return 0 to go on; anything else stops the download with WXM_E_ABORTED. */
static int32_t append_to_buffer(void *user_data, uint64_t offset,
                                const uint8_t *data, size_t len)
{
    buffer *b = (buffer *)user_data;
    if (offset != b->len) return 1; /* cannot happen: offsets are contiguous */
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 65536;
        uint8_t *grown;
        while (cap - b->len < len) cap *= 2;
        grown = (uint8_t *)realloc(b->data, cap);
        if (grown == NULL) return 1; /* out of memory: stop the transfer */
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int main(int argc, char **argv)
{
    const char *base_url, *token, *name;
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_download *dl;
    buffer buf = {NULL, 0, 0};
    uint32_t hash = 2166136261u; /* FNV-1a, to print something checkable */
    size_t i;
    int32_t rc;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s MEDIA_ID [BASE_URL [ACCESS_TOKEN]]\n", argv[0]);
        return 2;
    }
    base_url = argc > 2 ? argv[2] : getenv("WXMEDIA_BASE_URL");
    token = argc > 3 ? argv[3] : getenv("WXMEDIA_ACCESS_TOKEN");
    if (token == NULL || token[0] == '\0') {
        fprintf(stderr, "no access token: set WXMEDIA_ACCESS_TOKEN\n");
        return 2;
    }

    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (cfg == NULL) return 1;
    rc = WXM_OK;
    if (base_url != NULL && base_url[0] != '\0')
        rc = wxm_config_set_base_url(cfg, base_url);
    if (rc == WXM_OK) rc = wxm_config_set_access_token(cfg, token);
    /* Fetch in 1 MiB Range chunks (a multiple of 16, at most 20 MiB), two
     * at a time.  The defaults are 20 MiB chunks, one at a time. */
    if (rc == WXM_OK) rc = wxm_config_set_chunk_size(cfg, 1024 * 1024);
    if (rc == WXM_OK) rc = wxm_config_set_parallelism(cfg, 2);
    if (rc == WXM_OK) rc = wxm_client_new(cfg, &client);
    wxm_config_free(cfg);
    if (rc != WXM_OK) {
        fprintf(stderr, "configuration: %s: %s\n", wxm_strerror(rc),
                wxm_last_errmsg());
        return 1;
    }

    dl = wxm_download_new(client, argv[1]);
    if (dl == NULL) {
        fprintf(stderr, "wxm_download_new: %s\n", wxm_last_errmsg());
        wxm_client_free(client);
        return 1;
    }
    rc = wxm_download_to_sink(dl, append_to_buffer, &buf);
    if (rc == WXM_OK) {
        for (i = 0; i < buf.len; i++) hash = (hash ^ buf.data[i]) * 16777619u;
        name = wxm_download_filename(dl);
        printf("%lu bytes in memory, fnv1a %08x, filename %s\n",
               (unsigned long)buf.len, (unsigned)hash, name ? name : "-");
        /* Official Account videos come as a URL that the library follows;
         * it is reported too. */
        if (wxm_download_video_url(dl) != NULL && wxm_download_video_url(dl)[0])
            printf("video_url: %s\n", wxm_download_video_url(dl));
    } else {
        fprintf(stderr, "download failed: %d (%s): %s\n", (int)rc,
                wxm_strerror(rc), wxm_download_errmsg(dl));
    }
    free(buf.data);
    wxm_download_free(dl);
    wxm_client_free(client);
    return rc == WXM_OK ? 0 : 1;
}

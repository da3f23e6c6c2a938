/*
 * upload_from_reader: upload data that the host produces itself, through a
 * read callback, and print the media_id.
 *
 *   upload_from_reader TYPE SOURCE_FILE NAME [BASE_URL [ACCESS_TOKEN]]
 *
 * Here the reader reads an open FILE*, but it can be any source (a socket,
 * a decompressor, a buffer) as long as the total length is known before
 * the upload starts: the multipart body is sent with an exact
 * Content-Length.  NAME is the filename WeChat records.  BASE_URL and
 * ACCESS_TOKEN default to $WXMEDIA_BASE_URL and $WXMEDIA_ACCESS_TOKEN.
 *
 * Build:  cc upload_from_reader.c $(pkg-config --cflags --libs wxmedia)
 */
#define _XOPEN_SOURCE 700 /* fseeko, ftello */
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include "wxmedia.h"

/* Fill buf with up to cap bytes; return how many, 0 at the end, or a
 * negative number to stop the upload (it then fails with WXM_E_ABORTED).
 * Called only on the thread running wxm_upload_run, one call at a time.
 * Without a way to rewind the source, an upload whose bytes were already
 * read is not retried. */
static int64_t read_from_file(void *user_data, uint8_t *buf, size_t cap)
{
    FILE *f = (FILE *)user_data;
    size_t n = fread(buf, 1, cap, f);
    if (n == 0 && ferror(f)) return -1;
    return (int64_t)n;
}

int main(int argc, char **argv)
{
    const char *base_url, *token;
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_upload *up;
    FILE *src;
    off_t length;
    int32_t rc;

    if (argc < 4 || argc > 6) {
        fprintf(stderr,
                "usage: %s TYPE SOURCE_FILE NAME [BASE_URL [ACCESS_TOKEN]]\n",
                argv[0]);
        return 2;
    }
    base_url = argc > 4 ? argv[4] : getenv("WXMEDIA_BASE_URL");
    token = argc > 5 ? argv[5] : getenv("WXMEDIA_ACCESS_TOKEN");
    if (token == NULL || token[0] == '\0') {
        fprintf(stderr, "no access token: set WXMEDIA_ACCESS_TOKEN\n");
        return 2;
    }

    /* The source and its length. */
    src = fopen(argv[2], "rb");
    if (src == NULL || fseeko(src, 0, SEEK_END) != 0 ||
        (length = ftello(src)) < 0 || fseeko(src, 0, SEEK_SET) != 0) {
        perror(argv[2]);
        if (src != NULL) fclose(src);
        return 1;
    }

    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (cfg == NULL) {
        fclose(src);
        return 1;
    }
    rc = WXM_OK;
    if (base_url != NULL && base_url[0] != '\0')
        rc = wxm_config_set_base_url(cfg, base_url);
    if (rc == WXM_OK) rc = wxm_config_set_access_token(cfg, token);
    if (rc == WXM_OK) rc = wxm_client_new(cfg, &client);
    wxm_config_free(cfg);
    if (rc != WXM_OK) {
        fprintf(stderr, "configuration: %s: %s\n", wxm_strerror(rc),
                wxm_last_errmsg());
        fclose(src);
        return 1;
    }

    up = wxm_upload_new(client, argv[1]);
    if (up == NULL) {
        fprintf(stderr, "wxm_upload_new: %s\n", wxm_last_errmsg());
        wxm_client_free(client);
        fclose(src);
        return 1;
    }
    /* The reader and its user_data are borrowed until the handle is freed. */
    rc = wxm_upload_set_reader(up, read_from_file, src, (uint64_t)length);
    if (rc == WXM_OK) rc = wxm_upload_set_filename(up, argv[3]);
    if (rc == WXM_OK) rc = wxm_upload_run(up);

    if (rc == WXM_OK) {
        printf("media_id %s\ntype %s\ncreated_at %lld\n", wxm_upload_media_id(up),
               wxm_upload_type(up), (long long)wxm_upload_created_at(up));
    } else {
        fprintf(stderr, "upload failed: %d (%s): %s\n", (int)rc, wxm_strerror(rc),
                wxm_upload_errmsg(up));
    }
    wxm_upload_free(up);
    wxm_client_free(client);
    fclose(src);
    return rc == WXM_OK ? 0 : 1;
}

/*
 * download_to_path: save one temporary media (临时素材) to a file.
 *
 *   download_to_path MEDIA_ID OUT_PATH [BASE_URL [ACCESS_TOKEN]]
 *
 * BASE_URL and ACCESS_TOKEN default to $WXMEDIA_BASE_URL and
 * $WXMEDIA_ACCESS_TOKEN (prefer the environment for the token: argv is
 * visible to every user of the machine).  Without a base URL the platform's
 * API host is used (https://qyapi.weixin.qq.com for WeCom).
 *
 * wxm_download_to_path writes into a temporary file next to OUT_PATH and
 * renames it into place only once every byte has been checked, so OUT_PATH
 * is either the complete media or untouched.  Run it again after an
 * interruption and it resumes where it stopped.
 *
 * Build:  cc download_to_path.c $(pkg-config --cflags --libs wxmedia)
 */
#include <stdio.h>
#include <stdlib.h>

#include "wxmedia.h"

/* Called on this thread as bytes arrive; total is 0 until the size is known.
 * Returning non-zero would stop the transfer with WXM_E_ABORTED. */
static int32_t on_progress(void *user_data, uint64_t done, uint64_t total)
{
    (void)user_data;
    if (total > 0)
        fprintf(stderr, "\r%llu / %llu bytes", (unsigned long long)done,
                (unsigned long long)total);
    return 0;
}

int main(int argc, char **argv)
{
    const char *base_url, *token;
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_download *dl;
    int32_t rc;

    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s MEDIA_ID OUT_PATH [BASE_URL [ACCESS_TOKEN]]\n",
                argv[0]);
        return 2;
    }
    base_url = argc > 3 ? argv[3] : getenv("WXMEDIA_BASE_URL");
    token = argc > 4 ? argv[4] : getenv("WXMEDIA_ACCESS_TOKEN");
    if (token == NULL || token[0] == '\0') {
        fprintf(stderr, "no access token: set WXMEDIA_ACCESS_TOKEN\n");
        return 2;
    }

    /* 1. A configuration: the platform, where to connect, which token. */
    cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    if (cfg == NULL) {
        fprintf(stderr, "wxm_config_new: %s\n", wxm_last_errmsg());
        return 1;
    }
    rc = WXM_OK;
    if (base_url != NULL && base_url[0] != '\0')
        rc = wxm_config_set_base_url(cfg, base_url);
    if (rc == WXM_OK) rc = wxm_config_set_access_token(cfg, token);

    /* 2. A client: thread-safe, meant to be created once and shared. */
    if (rc == WXM_OK) rc = wxm_client_new(cfg, &client);
    wxm_config_free(cfg); /* the client copied what it needs */
    if (rc != WXM_OK) {
        fprintf(stderr, "configuration: %s (%d): %s\n", wxm_strerror(rc), (int)rc,
                wxm_last_errmsg());
        return 1;
    }

    /* 3. One download handle per transfer. */
    dl = wxm_download_new(client, argv[1]);
    if (dl == NULL) {
        fprintf(stderr, "wxm_download_new: %s\n", wxm_last_errmsg());
        wxm_client_free(client);
        return 1;
    }
    wxm_download_set_progress(dl, on_progress, NULL);
    rc = wxm_download_to_path(dl, argv[2]);
    fputc('\n', stderr);

    if (rc == WXM_OK) {
        /* Strings from getters belong to the handle: copy them to keep them. */
        const char *name = wxm_download_filename(dl);
        const char *type = wxm_download_content_type(dl);
        printf("saved %llu bytes to %s (server filename: %s, type: %s)\n",
               (unsigned long long)wxm_download_size(dl), argv[2],
               name ? name : "-", type ? type : "-");
    } else {
        /* Positive codes (and -1) are WeChat's errcodes, e.g. 40007 for an
         * invalid media_id; WXM_E_* (<= -1001) are the library's own. */
        fprintf(stderr, "download failed: %d (%s): %s\n", (int)rc,
                wxm_strerror(rc), wxm_download_errmsg(dl));
    }
    wxm_download_free(dl);
    wxm_client_free(client);
    return rc == WXM_OK ? 0 : 1;
}

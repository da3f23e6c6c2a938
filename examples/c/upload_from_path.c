/*
 * upload_from_path: upload a local file as a temporary media and print its
 * media_id.
 *
 *   upload_from_path TYPE PATH [BASE_URL [ACCESS_TOKEN]]
 *
 * TYPE is "image", "voice", "video", "file" (or "thumb" on an Official
 * Account).  BASE_URL and ACCESS_TOKEN default to $WXMEDIA_BASE_URL and
 * $WXMEDIA_ACCESS_TOKEN.
 *
 * The file is streamed as multipart/form-data, never read whole into
 * memory.  Size and format limits are checked before any byte is sent, and
 * such a local rejection answers the code WeChat itself would have answered
 * (e.g. 40006 for a file of 5 bytes or less, 40004 for an unknown type).
 *
 * Build:  cc upload_from_path.c $(pkg-config --cflags --libs wxmedia)
 */
#include <stdio.h>
#include <stdlib.h>

#include "wxmedia.h"

int main(int argc, char **argv)
{
    const char *base_url, *token;
    wxm_config *cfg;
    wxm_client *client = NULL;
    wxm_upload *up;
    int32_t rc;

    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s TYPE PATH [BASE_URL [ACCESS_TOKEN]]\n", argv[0]);
        return 2;
    }
    base_url = argc > 3 ? argv[3] : getenv("WXMEDIA_BASE_URL");
    token = argc > 4 ? argv[4] : getenv("WXMEDIA_ACCESS_TOKEN");
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
    if (rc == WXM_OK) rc = wxm_client_new(cfg, &client);
    wxm_config_free(cfg);
    if (rc != WXM_OK) {
        fprintf(stderr, "configuration: %s: %s\n", wxm_strerror(rc),
                wxm_last_errmsg());
        return 1;
    }

    /* One upload handle per transfer.  The type is judged when it runs. */
    up = wxm_upload_new(client, argv[1]);
    if (up == NULL) {
        fprintf(stderr, "wxm_upload_new: %s\n", wxm_last_errmsg());
        wxm_client_free(client);
        return 1;
    }
    /* The filename sent to WeChat defaults to the path's last component;
     * wxm_upload_set_filename(up, "name.ext") would override it. */
    rc = wxm_upload_set_path(up, argv[2]);
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
    return rc == WXM_OK ? 0 : 1;
}

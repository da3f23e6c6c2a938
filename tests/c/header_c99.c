/*
 * The header as a strict C compiler sees it: this file is built with
 * -std=c99 (and -std=c11) -Wall -Wextra -Werror -pedantic -Wstrict-prototypes
 * and run.  It only touches calls that need no server.
 */
#include "wxmedia.h"
#include "wxmedia.h" /* the include guard works */

#include <stdio.h>
#include <string.h>

static int32_t sink(void *user_data, uint64_t offset, const uint8_t *data,
                    size_t len)
{
    (void)user_data;
    (void)offset;
    (void)data;
    (void)len;
    return 0;
}

static int32_t progress(void *user_data, uint64_t done, uint64_t total)
{
    (void)user_data;
    (void)done;
    (void)total;
    return 0;
}

static int64_t reader(void *user_data, uint8_t *buf, size_t cap)
{
    (void)user_data;
    (void)buf;
    (void)cap;
    return 0;
}

int main(void)
{
    /* The callback typedefs accept ordinary C functions. */
    wxm_sink_fn s = sink;
    wxm_progress_fn p = progress;
    wxm_read_fn r = reader;
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    wxm_client *client = NULL;
    int32_t codes[] = {WXM_OK,          WXM_E_INVALID_ARG, WXM_E_IO,
                       WXM_E_NETWORK,   WXM_E_TIMEOUT,     WXM_E_TLS,
                       WXM_E_HTTP_STATUS, WXM_E_PROTOCOL,  WXM_E_ABORTED,
                       WXM_E_CANCELLED, WXM_E_NO_TOKEN,    WXM_E_PANIC,
                       WXM_E_STATE,     WXM_E_TOKEN_STORE, WXM_E_OUTCOME_UNKNOWN};
    int32_t platforms[] = {WXM_PLATFORM_WECOM, WXM_PLATFORM_KF,
                           WXM_PLATFORM_OFFICIAL, WXM_PLATFORM_MINIPROGRAM};
    size_t i;
    int failures = 0;

    (void)s;
    (void)p;
    (void)r;
    if (cfg == NULL) return 1;
    if (wxm_config_set_access_token(cfg, "t") != WXM_OK) failures++;
    if (wxm_client_new(cfg, &client) != WXM_OK || client == NULL) failures++;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *t = wxm_strerror(codes[i]);
        if (t == NULL || t[0] == '\0') failures++;
    }
    for (i = 0; i < sizeof platforms / sizeof platforms[0]; i++) {
        wxm_config *c = wxm_config_new(platforms[i]);
        if (c == NULL) failures++;
        wxm_config_free(c);
    }
    printf("wxmedia %s from C (%ld): %s\n", wxm_version(), (long)__STDC_VERSION__,
           failures ? "FAILED" : "ok");
    wxm_client_free(client);
    wxm_config_free(cfg);
    return failures != 0;
}

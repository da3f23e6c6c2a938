/* PROVISIONAL: written by hand from DESIGN.md + CONTRACT.md until the
 * generated include/wxmedia.h exists; `make go-lib` replaces it. */
#ifndef WXMEDIA_H
#define WXMEDIA_H
#include <stdint.h>
#include <stddef.h>

#define WXM_PLATFORM_WECOM 1
#define WXM_PLATFORM_KF 2
#define WXM_PLATFORM_OFFICIAL 3
#define WXM_PLATFORM_MINIPROGRAM 4
#define WXM_OK 0
#define WXM_E_INVALID_ARG -1001
#define WXM_E_IO -1002
#define WXM_E_NETWORK -1003
#define WXM_E_TIMEOUT -1004
#define WXM_E_TLS -1005
#define WXM_E_HTTP_STATUS -1006
#define WXM_E_PROTOCOL -1007
#define WXM_E_ABORTED -1008
#define WXM_E_CANCELLED -1009
#define WXM_E_NO_TOKEN -1010
#define WXM_E_PANIC -1011
#define WXM_E_STATE -1012

typedef struct wxm_config wxm_config;
typedef struct wxm_client wxm_client;
typedef struct wxm_download wxm_download;
typedef struct wxm_upload wxm_upload;

typedef int32_t (*wxm_sink_fn)(void *user_data, uint64_t offset, const uint8_t *data, size_t len);
typedef int32_t (*wxm_progress_fn)(void *user_data, uint64_t done, uint64_t total);
typedef int64_t (*wxm_read_fn)(void *user_data, uint8_t *buf, size_t cap);

wxm_config *wxm_config_new(int32_t platform);
int32_t wxm_config_set_base_url(wxm_config *, const char *url);
int32_t wxm_config_set_access_token(wxm_config *, const char *token);
int32_t wxm_config_set_credentials(wxm_config *, const char *id, const char *secret);
int32_t wxm_config_set_chunk_size(wxm_config *, uint64_t bytes);
int32_t wxm_config_set_parallelism(wxm_config *, uint32_t connections);
int32_t wxm_config_set_timeouts(wxm_config *, uint32_t connect_ms, uint32_t io_ms);
int32_t wxm_config_set_retries(wxm_config *, uint32_t max_attempts, uint32_t backoff_ms);
int32_t wxm_config_set_limit(wxm_config *, const char *type, uint64_t max_bytes);
int32_t wxm_config_set_ca_file(wxm_config *, const char *pem_path);
void    wxm_config_free(wxm_config *);
int32_t wxm_client_new(const wxm_config *, wxm_client **out);
int32_t wxm_client_set_access_token(wxm_client *, const char *token);
void    wxm_client_free(wxm_client *);

wxm_download *wxm_download_new(wxm_client *, const char *media_id);
int32_t wxm_download_set_start(wxm_download *, uint64_t offset);
int32_t wxm_download_set_progress(wxm_download *, wxm_progress_fn, void *user_data);
int32_t wxm_download_to_sink(wxm_download *, wxm_sink_fn, void *user_data);
int32_t wxm_download_to_path(wxm_download *, const char *path);
void    wxm_download_cancel(const wxm_download *);
uint64_t    wxm_download_size(const wxm_download *);
const char *wxm_download_content_type(const wxm_download *);
const char *wxm_download_filename(const wxm_download *);
const char *wxm_download_video_url(const wxm_download *);
const char *wxm_download_errmsg(const wxm_download *);
void    wxm_download_free(wxm_download *);

wxm_upload *wxm_upload_new(wxm_client *, const char *type);
int32_t wxm_upload_set_path(wxm_upload *, const char *path);
int32_t wxm_upload_set_reader(wxm_upload *, wxm_read_fn, void *user_data, uint64_t length);
int32_t wxm_upload_set_filename(wxm_upload *, const char *filename);
int32_t wxm_upload_set_progress(wxm_upload *, wxm_progress_fn, void *user_data);
int32_t wxm_upload_run(wxm_upload *);
void    wxm_upload_cancel(const wxm_upload *);
const char *wxm_upload_media_id(const wxm_upload *);
const char *wxm_upload_type(const wxm_upload *);
int64_t     wxm_upload_created_at(const wxm_upload *);
const char *wxm_upload_errmsg(const wxm_upload *);
void    wxm_upload_free(wxm_upload *);

const char *wxm_strerror(int32_t errcode);
const char *wxm_last_errmsg(void);
const char *wxm_version(void);
#endif

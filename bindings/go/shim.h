/* C side of the Go callbacks: the trampolines in shim.c hand the library a
 * plain C function and pass the transfer's handle (handles.go) or the
 * TokenProvider's runtime/cgo.Handle through user_data as an integer, so C
 * never holds a Go pointer. The library deletes the TokenProvider's handle
 * (and the event sink's) itself, through its free_fn, once it can call the
 * provider (the event handler) no more. */
#ifndef WXMEDIA_GO_SHIM_H
#define WXMEDIA_GO_SHIM_H
#include <stdint.h>
#include "wxmedia.h"

/* Scheduler passes (see sched.go): a transfer passes through the Go
 * scheduler when this long has gone by on its thread since the last pass,
 * at its start or in a callback. */
#define WXMGO_PASS_START_NS 4000000
#define WXMGO_PASS_CALLBACK_NS 6000000

int32_t wxmgo_pass_due(int64_t every_ns);

int32_t wxmgo_config_set_token_provider(wxm_config *cfg, uintptr_t handle);
int32_t wxmgo_config_set_event_handler(wxm_config *cfg, uintptr_t handle, int32_t min_level);

/* A download in as few cgo calls as the handle allows: create it from a
 * media_id given as bytes and a length (no C.CString), run it with its
 * options in one call, read its results in one call. The run goes to the
 * object store when store is not NULL, else to path when that is not NULL,
 * else to the Go writer. */
wxm_download *wxmgo_download_new(const wxm_client *c, const char *media_id, size_t len);
int32_t wxmgo_download_run(wxm_download *d, uintptr_t handle, uint64_t start, int32_t hd_voice,
                           int32_t progress, const char *path, const wxm_objstore *store,
                           const char *bucket, const char *key);

typedef struct {
	uint64_t size;
	const char *content_type, *filename, *video_url;
	size_t content_type_len, filename_len, video_url_len;
	wxm_counters counters;
} wxmgo_download_info;

wxmgo_download_info wxmgo_download_get_info(const wxm_download *d);

int32_t wxmgo_upload_set_progress(wxm_upload *u, uintptr_t handle);
int32_t wxmgo_upload_set_reader(wxm_upload *u, uintptr_t handle, uint64_t length);

/* A transfer's counters, by value (no Go pointer handed to C). */
wxm_counters wxmgo_upload_counters(const wxm_upload *u);
wxm_counters wxmgo_url_upload_counters(const wxm_url_upload *u);

#endif

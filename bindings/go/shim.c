#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "_cgo_export.h"
#include "shim.h"

/* When a transfer last passed through the Go scheduler on this thread
 * (CLOCK_MONOTONIC, ns; 0 before the thread's first transfer). */
static __thread int64_t wxmgo_last_pass;

int32_t wxmgo_pass_due(int64_t every_ns) {
	struct timespec ts;
	int64_t now;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (wxmgo_last_pass == 0) {
		/* A thread's first transfer starts the clock: a short program's
		 * one download never pays for a pass (which may start a thread). */
		wxmgo_last_pass = now;
		return 0;
	}
	if (now - wxmgo_last_pass < every_ns) {
		return 0;
	}
	wxmgo_last_pass = now;
	return 1;
}

static int32_t wxmgo_sink(void *user_data, uint64_t offset, const uint8_t *data, size_t len) {
	return wxmgoSink((uintptr_t)user_data, offset, (uint8_t *)data, len,
	                 wxmgo_pass_due(WXMGO_PASS_CALLBACK_NS));
}

static int32_t wxmgo_progress(void *user_data, uint64_t done, uint64_t total) {
	return wxmgoProgress((uintptr_t)user_data, done, total, wxmgo_pass_due(WXMGO_PASS_CALLBACK_NS));
}

static int64_t wxmgo_read(void *user_data, uint8_t *buf, size_t cap) {
	return wxmgoRead((uintptr_t)user_data, buf, cap, wxmgo_pass_due(WXMGO_PASS_CALLBACK_NS));
}

/* The token provider may run on any thread, the library's workers
 * included: it makes no scheduler pass. */
static int32_t wxmgo_token(void *user_data, int32_t force_refresh, char *buf, size_t cap, size_t *len) {
	return wxmgoToken((uintptr_t)user_data, force_refresh, buf, cap, len);
}

static void wxmgo_token_free(void *user_data) {
	wxmgoTokenFree((uintptr_t)user_data);
}

/* From this call on the library owns the handle: wxmgo_token_free deletes it. */
int32_t wxmgo_config_set_token_provider(wxm_config *cfg, uintptr_t handle) {
	return wxm_config_set_token_provider(cfg, wxmgo_token, (void *)handle, wxmgo_token_free);
}

/* Events come on any thread too, the library's workers included. The event
 * is copied into a struct of this header's size first: fields a library
 * older than this header (linked with wxmedia_custom) does not fill stay 0,
 * and a newer library's added fields are left out. */
static void wxmgo_event(void *user_data, const wxm_event *event) {
	wxm_event ev;
	memset(&ev, 0, sizeof ev);
	memcpy(&ev, event, event->size < sizeof ev ? event->size : sizeof ev);
	wxmgoEvent((uintptr_t)user_data, &ev);
}

static void wxmgo_event_free(void *user_data) {
	wxmgoEventFree((uintptr_t)user_data);
}

/* From this call on the library owns the handle: wxmgo_event_free deletes it. */
int32_t wxmgo_config_set_event_handler(wxm_config *cfg, uintptr_t handle, int32_t min_level) {
	return wxm_config_set_event_handler(cfg, wxmgo_event, (void *)handle, wxmgo_event_free, min_level);
}

wxm_download *wxmgo_download_new(const wxm_client *c, const char *media_id, size_t len) {
	char buf[256];
	char *id = len < sizeof buf ? buf : malloc(len + 1);
	wxm_download *d;
	if (id == NULL) {
		return NULL; /* the caller retries the plain way */
	}
	if (len > 0) {
		memcpy(id, media_id, len);
	}
	id[len] = 0;
	d = wxm_download_new(c, id);
	if (id != buf) {
		free(id);
	}
	return d;
}

/* Sets the options that differ from the defaults and runs the download:
 * into the object store, else to path, else into the Go writer. */
int32_t wxmgo_download_run(wxm_download *d, uintptr_t handle, uint64_t start, int32_t hd_voice,
                           int32_t progress, const char *path, const wxm_objstore *store,
                           const char *bucket, const char *key) {
	int32_t rc;
	if (start != 0 && (rc = wxm_download_set_start(d, start)) != 0) {
		return rc;
	}
	if (hd_voice && (rc = wxm_download_set_hd_voice(d, 1)) != 0) {
		return rc;
	}
	if (progress && (rc = wxm_download_set_progress(d, wxmgo_progress, (void *)handle)) != 0) {
		return rc;
	}
	if (store != NULL) {
		return wxm_download_to_object(d, store, bucket, key);
	}
	if (path != NULL) {
		return wxm_download_to_path(d, path);
	}
	return wxm_download_to_sink(d, wxmgo_sink, (void *)handle);
}

static const char *with_len(const char *s, size_t *len) {
	*len = s != NULL ? strlen(s) : 0;
	return s;
}

wxmgo_download_info wxmgo_download_get_info(const wxm_download *d) {
	wxmgo_download_info info;
	info.size = wxm_download_size(d);
	info.content_type = with_len(wxm_download_content_type(d), &info.content_type_len);
	info.filename = with_len(wxm_download_filename(d), &info.filename_len);
	info.video_url = with_len(wxm_download_video_url(d), &info.video_url_len);
	memset(&info.counters, 0, sizeof info.counters);
	info.counters.size = sizeof info.counters;
	wxm_download_counters(d, &info.counters);
	return info;
}

int32_t wxmgo_upload_set_progress(wxm_upload *u, uintptr_t handle) {
	return wxm_upload_set_progress(u, wxmgo_progress, (void *)handle);
}

int32_t wxmgo_upload_set_reader(wxm_upload *u, uintptr_t handle, uint64_t length) {
	return wxm_upload_set_reader(u, wxmgo_read, (void *)handle, length);
}

wxm_counters wxmgo_upload_counters(const wxm_upload *u) {
	wxm_counters c;
	memset(&c, 0, sizeof c);
	c.size = sizeof c;
	wxm_upload_counters(u, &c);
	return c;
}

wxm_counters wxmgo_url_upload_counters(const wxm_url_upload *u) {
	wxm_counters c;
	memset(&c, 0, sizeof c);
	c.size = sizeof c;
	wxm_url_upload_counters(u, &c);
	return c;
}

#include "_cgo_export.h"
#include "shim.h"

static int32_t wxmgo_sink(void *user_data, uint64_t offset, const uint8_t *data, size_t len) {
	return wxmgoSink((uintptr_t)user_data, offset, (uint8_t *)data, len);
}

static int32_t wxmgo_progress(void *user_data, uint64_t done, uint64_t total) {
	return wxmgoProgress((uintptr_t)user_data, done, total);
}

static int64_t wxmgo_read(void *user_data, uint8_t *buf, size_t cap) {
	return wxmgoRead((uintptr_t)user_data, buf, cap);
}

static int32_t wxmgo_token(void *user_data, int32_t force_refresh, char *buf, size_t cap, size_t *len) {
	return wxmgoToken((uintptr_t)user_data, force_refresh, buf, cap, len);
}

int32_t wxmgo_config_set_token_provider(wxm_config *cfg, uintptr_t handle) {
	return wxm_config_set_token_provider(cfg, wxmgo_token, (void *)handle);
}

int32_t wxmgo_download_set_progress(wxm_download *d, uintptr_t handle) {
	return wxm_download_set_progress(d, wxmgo_progress, (void *)handle);
}

int32_t wxmgo_download_to_sink(wxm_download *d, uintptr_t handle) {
	return wxm_download_to_sink(d, wxmgo_sink, (void *)handle);
}

int32_t wxmgo_upload_set_progress(wxm_upload *u, uintptr_t handle) {
	return wxm_upload_set_progress(u, wxmgo_progress, (void *)handle);
}

int32_t wxmgo_upload_set_reader(wxm_upload *u, uintptr_t handle, uint64_t length) {
	return wxm_upload_set_reader(u, wxmgo_read, (void *)handle, length);
}

/* C side of the Go callbacks: the trampolines in shim.c hand the library a
 * plain C function and pass the transfer's runtime/cgo.Handle through
 * user_data as an integer, so C never holds a Go pointer. */
#ifndef WXMEDIA_GO_SHIM_H
#define WXMEDIA_GO_SHIM_H
#include <stdint.h>
#include "wxmedia.h"

int32_t wxmgo_config_set_token_provider(wxm_config *cfg, uintptr_t handle);
int32_t wxmgo_download_set_progress(wxm_download *d, uintptr_t handle);
int32_t wxmgo_download_to_sink(wxm_download *d, uintptr_t handle);
int32_t wxmgo_upload_set_progress(wxm_upload *u, uintptr_t handle);
int32_t wxmgo_upload_set_reader(wxm_upload *u, uintptr_t handle, uint64_t length);

#endif

/* C side of the Go callbacks: the trampolines in shim.c hand the library a
 * plain C function and pass the transfer's runtime/cgo.Handle through
 * user_data as an integer, so C never holds a Go pointer. */
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
int32_t wxmgo_download_set_progress(wxm_download *d, uintptr_t handle);
int32_t wxmgo_download_to_sink(wxm_download *d, uintptr_t handle);
int32_t wxmgo_upload_set_progress(wxm_upload *u, uintptr_t handle);
int32_t wxmgo_upload_set_reader(wxm_upload *u, uintptr_t handle, uint64_t length);

#endif

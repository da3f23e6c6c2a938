// The header from C++ (built with -std=c++11 and -std=c++17, -Wall -Wextra
// -Werror -pedantic) and run: extern "C" linkage, the constants and the
// callback typedefs used from C++ code.
#include "wxmedia.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

namespace {

struct ConfigDeleter {
    void operator()(wxm_config *c) const { wxm_config_free(c); }
};
struct ClientDeleter {
    void operator()(wxm_client *c) const { wxm_client_free(c); }
};

extern "C" int32_t sink(void *user_data, uint64_t, const uint8_t *data,
                        size_t len)
{
    static_cast<std::string *>(user_data)->append(
        reinterpret_cast<const char *>(data), len);
    return 0;
}

} // namespace

int main()
{
    std::unique_ptr<wxm_config, ConfigDeleter> cfg(
        wxm_config_new(WXM_PLATFORM_OFFICIAL));
    if (!cfg) return 1;
    if (wxm_config_set_access_token(cfg.get(), "t") != WXM_OK) return 1;
    wxm_client *raw = nullptr;
    if (wxm_client_new(cfg.get(), &raw) != WXM_OK) return 1;
    std::unique_ptr<wxm_client, ClientDeleter> client(raw);

    wxm_sink_fn s = sink;
    // A capture-less lambda converts to the callback type too.
    wxm_progress_fn p = [](void *, uint64_t, uint64_t) -> int32_t { return 0; };
    (void)s;
    (void)p;

    // NULL handles are answered with codes, from C++ as from C.
    int32_t rc = wxm_download_to_sink(nullptr, s, nullptr);
    std::string text = wxm_strerror(rc);
    bool ok = rc == WXM_E_INVALID_ARG && !text.empty() &&
              std::strlen(wxm_version()) > 0;
    std::printf("wxmedia %s from C++ (%ld): %s\n", wxm_version(),
                static_cast<long>(__cplusplus), ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

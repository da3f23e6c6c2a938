/*
 * wxmedia.hpp: a header-only C++17 wrapper over the C API in wxmedia.h.
 *
 *   wxmedia::Client client(wxmedia::Config(WXM_PLATFORM_WECOM)
 *                              .access_token("TOKEN").parallelism(4));
 *   wxmedia::Download dl(client, "MEDIA_ID");
 *   dl.to_path("/data/media.bin");                      // or dl.to_sink(lambda)
 *   wxmedia::Upload up(client, "image");
 *   std::string media_id = up.path("/data/a.png").run();
 *
 * Handles are RAII (move-only; freed by their destructors). A failing call
 * throws wxmedia::Error, whose code() is the errcode the C function returned
 * (WeChat's own, or WXM_E_*) and whose what() is the handle's message (never
 * a token or secret). Sinks, readers and progress are std::function; an
 * exception thrown by one stops the transfer and is rethrown from the call
 * that ran it (it never crosses the C library).
 *
 * Link as for C: -lwxmedia (or wxmedia::wxmedia in CMake).
 */
#ifndef WXMEDIA_HPP
#define WXMEDIA_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "wxmedia.h"

namespace wxmedia {

/** A failed call: code() is the errcode (WeChat's, or WXM_E_*). */
class Error : public std::runtime_error {
public:
    Error(int32_t code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    int32_t code() const noexcept { return code_; }

private:
    int32_t code_;
};

namespace detail {
inline std::string message(int32_t code, const char *detail) {
    std::string m = std::to_string(code) + " " + wxm_strerror(code);
    if (detail != nullptr && *detail != '\0') m += ": " + std::string(detail);
    return m;
}
inline void check(int32_t code, const char *detail = nullptr) {
    if (code != 0) throw Error(code, message(code, detail != nullptr ? detail : wxm_last_errmsg()));
}
inline std::optional<std::string> opt(const char *s) {
    return s != nullptr ? std::optional<std::string>(s) : std::nullopt;
}

/* A callback's exception, kept until the C call returns. */
struct Pending {
    std::exception_ptr error;
    void rethrow() {
        if (error) std::rethrow_exception(std::exchange(error, nullptr));
    }
};
} // namespace detail

/** Returns the library's version, e.g. "0.1.0". */
inline std::string version() { return wxm_version(); }

/** Bytes done, total (0 while unknown); return false to stop (WXM_E_ABORTED). */
using Progress = std::function<bool(uint64_t done, uint64_t total)>;
/** Receives bytes in order from `offset`; return false to stop (WXM_E_ABORTED). */
using Sink = std::function<bool(uint64_t offset, const uint8_t *data, size_t len)>;
/** Fills up to `cap` bytes, returns how many, 0 at the end. */
using Reader = std::function<size_t(uint8_t *buf, size_t cap)>;

/** Settings for a Client (copied by Client's constructor). */
class Config {
public:
    explicit Config(int32_t platform = WXM_PLATFORM_WECOM) : cfg_(wxm_config_new(platform)) {
        if (cfg_ == nullptr) throw Error(WXM_E_INVALID_ARG, detail::message(WXM_E_INVALID_ARG, wxm_last_errmsg()));
    }
    ~Config() { wxm_config_free(cfg_); }
    Config(Config &&o) noexcept : cfg_(std::exchange(o.cfg_, nullptr)) {}
    Config &operator=(Config &&o) noexcept {
        if (this != &o) {
            wxm_config_free(cfg_);
            cfg_ = std::exchange(o.cfg_, nullptr);
        }
        return *this;
    }
    Config(const Config &) = delete;
    Config &operator=(const Config &) = delete;

    Config &base_url(const std::string &url) { return set(wxm_config_set_base_url(cfg_, url.c_str())); }
    Config &access_token(const std::string &t) { return set(wxm_config_set_access_token(cfg_, t.c_str())); }
    Config &credentials(const std::string &id, const std::string &secret) {
        return set(wxm_config_set_credentials(cfg_, id.c_str(), secret.c_str()));
    }
    Config &chunk_size(uint64_t bytes) { return set(wxm_config_set_chunk_size(cfg_, bytes)); }
    Config &parallelism(uint32_t n) { return set(wxm_config_set_parallelism(cfg_, n)); }
    Config &timeouts(uint32_t connect_ms, uint32_t io_ms) {
        return set(wxm_config_set_timeouts(cfg_, connect_ms, io_ms));
    }
    Config &retries(uint32_t max_attempts, uint32_t backoff_ms) {
        return set(wxm_config_set_retries(cfg_, max_attempts, backoff_ms));
    }
    Config &limit(const std::string &type, uint64_t max_bytes) {
        return set(wxm_config_set_limit(cfg_, type.c_str(), max_bytes));
    }
    Config &ca_file(const std::string &pem_path) { return set(wxm_config_set_ca_file(cfg_, pem_path.c_str())); }
    Config &token_store(const std::string &redis_url) {
        return set(wxm_config_set_token_store(cfg_, redis_url.c_str()));
    }

    const wxm_config *get() const noexcept { return cfg_; }

private:
    Config &set(int32_t rc) {
        detail::check(rc);
        return *this;
    }
    wxm_config *cfg_;
};

/** A client: thread-safe, share one per process and token. */
class Client {
public:
    explicit Client(const Config &cfg) { detail::check(wxm_client_new(cfg.get(), &client_)); }
    ~Client() { wxm_client_free(client_); }
    Client(Client &&o) noexcept : client_(std::exchange(o.client_, nullptr)) {}
    Client &operator=(Client &&o) noexcept {
        if (this != &o) {
            wxm_client_free(client_);
            client_ = std::exchange(o.client_, nullptr);
        }
        return *this;
    }
    Client(const Client &) = delete;
    Client &operator=(const Client &) = delete;

    /** Replaces the static access_token (hosts that rotate it themselves). */
    void set_access_token(const std::string &token) {
        detail::check(wxm_client_set_access_token(client_, token.c_str()));
    }
    const wxm_client *get() const noexcept { return client_; }

private:
    wxm_client *client_ = nullptr;
};

/** One download of a media_id; run it once with to_path or to_sink. */
class Download {
public:
    Download(const Client &client, const std::string &media_id)
        : dl_(wxm_download_new(client.get(), media_id.c_str())) {
        if (dl_ == nullptr) throw Error(WXM_E_INVALID_ARG, detail::message(WXM_E_INVALID_ARG, wxm_last_errmsg()));
    }
    ~Download() { wxm_download_free(dl_); }
    Download(const Download &) = delete;
    Download &operator=(const Download &) = delete;
    /* Not movable: the library holds a pointer to this object while it runs. */
    Download(Download &&) = delete;
    Download &operator=(Download &&) = delete;

    Download &start(uint64_t offset) { return set(wxm_download_set_start(dl_, offset)); }
    Download &hd_voice(bool enable) { return set(wxm_download_set_hd_voice(dl_, enable ? 1 : 0)); }
    Download &progress(Progress fn) {
        progress_ = std::move(fn);
        return set(progress_ ? wxm_download_set_progress(dl_, &Download::on_progress, this)
                             : wxm_download_set_progress(dl_, nullptr, nullptr));
    }

    /** Downloads to a file: atomic (temporary file + rename) and resumable. */
    void to_path(const std::string &path) { finish(wxm_download_to_path(dl_, path.c_str())); }
    /** Streams the bytes, in order, to `sink`. */
    void to_sink(Sink sink) {
        sink_ = std::move(sink);
        finish(wxm_download_to_sink(dl_, &Download::on_sink, this));
    }
    /** Stops a running transfer from another thread (it fails WXM_E_CANCELLED). */
    void cancel() const noexcept { wxm_download_cancel(dl_); }

    uint64_t size() const { return wxm_download_size(dl_); }
    std::optional<std::string> content_type() const { return detail::opt(wxm_download_content_type(dl_)); }
    std::optional<std::string> filename() const { return detail::opt(wxm_download_filename(dl_)); }
    std::optional<std::string> video_url() const { return detail::opt(wxm_download_video_url(dl_)); }

private:
    Download &set(int32_t rc) {
        detail::check(rc, wxm_download_errmsg(dl_));
        return *this;
    }
    void finish(int32_t rc) {
        pending_.rethrow();
        detail::check(rc, wxm_download_errmsg(dl_));
    }
    static int32_t on_progress(void *self, uint64_t done, uint64_t total) {
        auto *d = static_cast<Download *>(self);
        try {
            return d->progress_(done, total) ? 0 : 1;
        } catch (...) {
            d->pending_.error = std::current_exception();
            return 1;
        }
    }
    static int32_t on_sink(void *self, uint64_t offset, const uint8_t *data, size_t len) {
        auto *d = static_cast<Download *>(self);
        try {
            return d->sink_(offset, data, len) ? 0 : 1;
        } catch (...) {
            d->pending_.error = std::current_exception();
            return 1;
        }
    }
    wxm_download *dl_;
    Progress progress_;
    Sink sink_;
    detail::Pending pending_;
};

/** One upload of a temporary media ("image", "voice", "video", "file",
 *  "thumb", or "uploadimg" for a permanent image URL). */
class Upload {
public:
    Upload(const Client &client, const std::string &type) : up_(wxm_upload_new(client.get(), type.c_str())) {
        if (up_ == nullptr) throw Error(WXM_E_INVALID_ARG, detail::message(WXM_E_INVALID_ARG, wxm_last_errmsg()));
    }
    ~Upload() { wxm_upload_free(up_); }
    Upload(const Upload &) = delete;
    Upload &operator=(const Upload &) = delete;
    Upload(Upload &&) = delete;
    Upload &operator=(Upload &&) = delete;

    Upload &path(const std::string &p) { return set(wxm_upload_set_path(up_, p.c_str())); }
    /** Bytes from `reader`, exactly `length` of them. */
    Upload &reader(Reader fn, uint64_t length) {
        reader_ = std::move(fn);
        return set(wxm_upload_set_reader(up_, &Upload::on_read, this, length));
    }
    Upload &filename(const std::string &name) { return set(wxm_upload_set_filename(up_, name.c_str())); }
    Upload &progress(Progress fn) {
        progress_ = std::move(fn);
        return set(progress_ ? wxm_upload_set_progress(up_, &Upload::on_progress, this)
                             : wxm_upload_set_progress(up_, nullptr, nullptr));
    }

    /** Uploads; returns the media_id (empty for "uploadimg": see url()). */
    std::string run() {
        int32_t rc = wxm_upload_run(up_);
        pending_.rethrow();
        detail::check(rc, wxm_upload_errmsg(up_));
        return detail::opt(wxm_upload_media_id(up_)).value_or(std::string());
    }
    void cancel() const noexcept { wxm_upload_cancel(up_); }
    std::optional<std::string> media_id() const { return detail::opt(wxm_upload_media_id(up_)); }
    std::optional<std::string> url() const { return detail::opt(wxm_upload_url(up_)); }
    std::optional<std::string> type() const { return detail::opt(wxm_upload_type(up_)); }

private:
    Upload &set(int32_t rc) {
        detail::check(rc, wxm_upload_errmsg(up_));
        return *this;
    }
    static int64_t on_read(void *self, uint8_t *buf, size_t cap) {
        auto *u = static_cast<Upload *>(self);
        try {
            return static_cast<int64_t>(u->reader_(buf, cap));
        } catch (...) {
            u->pending_.error = std::current_exception();
            return -1;
        }
    }
    static int32_t on_progress(void *self, uint64_t done, uint64_t total) {
        auto *u = static_cast<Upload *>(self);
        try {
            return u->progress_(done, total) ? 0 : 1;
        } catch (...) {
            u->pending_.error = std::current_exception();
            return 1;
        }
    }
    wxm_upload *up_;
    Reader reader_;
    Progress progress_;
    detail::Pending pending_;
};

} // namespace wxmedia

#endif /* WXMEDIA_HPP */

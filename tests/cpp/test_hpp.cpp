// Tests of include/wxmedia.hpp against a real emulator (make cpp-test runs
// it under ASan/UBSan through examples/c/with-emulator.sh, which exports
// WXMEDIA_BASE_URL and WXMEDIA_ACCESS_TOKEN).
#include "wxmedia.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                               \
        }                                                                             \
    } while (0)

static std::string env(const char *name) {
    const char *v = std::getenv(name);
    if (v == nullptr) {
        std::fprintf(stderr, "%s is not set (run under examples/c/with-emulator.sh)\n", name);
        std::exit(2);
    }
    return v;
}

static wxmedia::Client make_client(uint64_t chunk) {
    return wxmedia::Client(wxmedia::Config(WXM_PLATFORM_WECOM)
                               .base_url(env("WXMEDIA_BASE_URL"))
                               .access_token(env("WXMEDIA_ACCESS_TOKEN"))
                               .chunk_size(chunk)
                               .parallelism(2));
}

static std::vector<uint8_t> pattern(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + (i >> 11));
    return v;
}

// Upload from a reader (std::function), download through a sink with progress.
static void test_reader_upload_sink_download(const wxmedia::Client &client) {
    const std::vector<uint8_t> data = pattern(300 * 1024 + 5);
    size_t pos = 0;
    uint64_t up_done = 0;
    wxmedia::Upload up(client, "file");
    up.reader(
          [&](uint8_t *buf, size_t cap) {
              size_t n = std::min(cap, data.size() - pos);
              std::memcpy(buf, data.data() + pos, n);
              pos += n;
              return n;
          },
          data.size())
        .filename("data.bin")
        .progress([&](uint64_t done, uint64_t) {
            up_done = done;
            return true;
        });
    std::string media_id = up.run();
    CHECK(!media_id.empty());
    CHECK(up.media_id().value_or("") == media_id);
    CHECK(up_done == data.size());

    std::vector<uint8_t> got;
    uint64_t last_total = 0;
    wxmedia::Download dl(client, media_id);
    dl.progress([&](uint64_t, uint64_t total) {
        last_total = total;
        return true;
    });
    dl.to_sink([&](uint64_t offset, const uint8_t *p, size_t len) {
        CHECK(offset == got.size());
        got.insert(got.end(), p, p + len);
        return true;
    });
    CHECK(got == data);
    CHECK(dl.size() == data.size());
    CHECK(last_total == data.size());
    CHECK(dl.filename().value_or("") == "data.bin");
}

// Upload from a path, download to a path.
static void test_paths(const wxmedia::Client &client, const std::string &dir) {
    const std::vector<uint8_t> data = pattern(100 * 1024 + 3);
    const std::string src = dir + "/src.bin", dst = dir + "/dst.bin";
    {
        std::ofstream f(src, std::ios::binary);
        f.write(reinterpret_cast<const char *>(data.data()), static_cast<std::streamsize>(data.size()));
    }
    wxmedia::Upload up(client, "file");
    std::string media_id = up.path(src).run();
    wxmedia::Download dl(client, media_id);
    dl.to_path(dst);
    std::ifstream in(dst, std::ios::binary);
    std::vector<uint8_t> got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(got == data);
    std::remove(src.c_str());
    std::remove(dst.c_str());
}

// Errors carry the errcode: WeChat's own, and the library's.
static void test_errors(const wxmedia::Client &client) {
    try {
        wxmedia::Download dl(client, "no-such-media");
        dl.to_sink([](uint64_t, const uint8_t *, size_t) { return true; });
        CHECK(!"unknown media_id did not throw");
    } catch (const wxmedia::Error &e) {
        CHECK(e.code() == 40007);
        CHECK(std::strstr(e.what(), "40007") != nullptr);
        CHECK(std::strstr(e.what(), env("WXMEDIA_ACCESS_TOKEN").c_str()) == nullptr);
    }
    try {
        wxmedia::Config cfg(WXM_PLATFORM_WECOM);
        cfg.chunk_size(17);  // not a multiple of 16
        CHECK(!"a bad chunk size did not throw");
    } catch (const wxmedia::Error &e) {
        CHECK(e.code() == WXM_E_INVALID_ARG);
    }
}

// A sink that says stop, and one that throws: the transfer stops, and the
// host's own exception comes back out of to_sink.
static void test_stop_and_throw(const wxmedia::Client &client) {
    const std::vector<uint8_t> data = pattern(200 * 1024);
    size_t pos = 0;
    wxmedia::Upload up(client, "file");
    up.reader(
        [&](uint8_t *buf, size_t cap) {
            size_t n = std::min(cap, data.size() - pos);
            std::memcpy(buf, data.data() + pos, n);
            pos += n;
            return n;
        },
        data.size());
    std::string media_id = up.run();
    try {
        wxmedia::Download dl(client, media_id);
        dl.to_sink([](uint64_t, const uint8_t *, size_t) { return false; });
        CHECK(!"a refusing sink did not throw");
    } catch (const wxmedia::Error &e) {
        CHECK(e.code() == WXM_E_ABORTED);
    }
    try {
        wxmedia::Download dl(client, media_id);
        dl.to_sink([](uint64_t, const uint8_t *, size_t) -> bool { throw std::logic_error("host says no"); });
        CHECK(!"a throwing sink did not throw");
    } catch (const wxmedia::Error &) {
        CHECK(!"the host's exception became an Error");
    } catch (const std::logic_error &e) {
        CHECK(std::strcmp(e.what(), "host says no") == 0);
    }
    try {
        size_t n = 0;
        wxmedia::Upload bad(client, "file");
        bad.reader(
            [&](uint8_t *, size_t) -> size_t {
                if (++n > 1) throw std::runtime_error("reader broke");
                return 0;
            },
            10);
        bad.run();
        CHECK(!"a short reader did not throw");
    } catch (const wxmedia::Error &e) {
        CHECK(e.code() == WXM_E_IO);  // fewer bytes than announced
    } catch (const std::runtime_error &e) {
        CHECK(std::strcmp(e.what(), "reader broke") == 0);
    }
}

// Handles move; a moved-from handle is freed harmlessly.
static void test_moves() {
    wxmedia::Client a = make_client(64 * 1024);
    wxmedia::Client b(std::move(a));
    a = make_client(32 * 1024);
    b = std::move(a);
    wxmedia::Config c1(WXM_PLATFORM_OFFICIAL);
    wxmedia::Config c2(std::move(c1));
    c2.access_token("t");
    CHECK(!wxmedia::version().empty());
    CHECK(wxmedia::version() == WXM_VERSION_STRING);
}

int main() {
    char tmpl[] = "/tmp/wxm-hpp-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return 2;
    try {
        wxmedia::Client client = make_client(64 * 1024);
        test_reader_upload_sink_download(client);
        test_paths(client, tmpl);
        test_errors(client);
        test_stop_and_throw(client);
        test_moves();
    } catch (const std::exception &e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        ++failures;
    }
    rmdir(tmpl);
    std::printf("wxmedia.hpp: %s\n", failures == 0 ? "all checks passed" : "FAILED");
    return failures == 0 ? 0 : 1;
}

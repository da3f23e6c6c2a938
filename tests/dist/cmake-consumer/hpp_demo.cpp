// C++17 through wxmedia.hpp from the tarball: upload, then download back.
//   hpp_demo BASE_URL TOKEN
#include <wxmedia.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    try {
        wxmedia::Client client(wxmedia::Config(WXM_PLATFORM_WECOM).base_url(argv[1]).access_token(argv[2]).chunk_size(4096));
        std::vector<uint8_t> data(100000);
        for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i % 251);
        size_t pos = 0;
        wxmedia::Upload up(client, "file");
        up.reader([&](uint8_t *buf, size_t cap) {
              size_t n = cap < data.size() - pos ? cap : data.size() - pos;
              std::copy(data.begin() + pos, data.begin() + pos + n, buf);
              pos += n;
              return n;
          }, data.size()).filename("hpp.bin");
        std::vector<uint8_t> got;
        wxmedia::Download dl(client, up.run());
        dl.to_sink([&](uint64_t, const uint8_t *p, size_t len) {
            got.insert(got.end(), p, p + len);
            return true;
        });
        if (got != data) {
            std::fprintf(stderr, "hpp_demo: bytes differ\n");
            return 1;
        }
        std::printf("hpp_demo: %zu bytes up and down with wxmedia %s\n", got.size(), wxmedia::version().c_str());
    } catch (const wxmedia::Error &e) {
        std::fprintf(stderr, "hpp_demo: %d %s\n", e.code(), e.what());
        return 1;
    }
    return 0;
}

/*
 * The wxmedia C test runner: emulator process, admin HTTP client, JSON
 * reader, SHA-256, generated content, and main().  See harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char g_base_url[160];
char g_tmpdir[256];

static char g_admin_host[32] = "127.0.0.1";
static int g_admin_port;
static pid_t g_emulator_pid = -1;

/* ---- results ------------------------------------------------------------ */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_cur_failed;
static const char *volatile g_cur_name;
static int g_passed, g_failed;
static double g_timeout_scale = 1.0;

void t_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_lock);
    g_cur_failed = 1;
    fprintf(stdout, "    %s:%d: %s%s%s\n", file, line, cond, msg[0] ? ": " : "",
            msg);
    fflush(stdout);
    pthread_mutex_unlock(&g_lock);
}

int t_failed(void)
{
    int f;
    pthread_mutex_lock(&g_lock);
    f = g_cur_failed;
    pthread_mutex_unlock(&g_lock);
    return f;
}

void t_note(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&g_lock);
    fputs("    # ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&g_lock);
}

void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_tmpdir, name);
}

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int leaks_secret(const char *s)
{
    if (s == NULL) return 0;
    return strstr(s, TEST_TOKEN) != NULL || strstr(s, TEST_SECRET) != NULL ||
           strstr(s, "bad-secret-Q9") != NULL;
}

/* ---- files ------------------------------------------------------------------ */

int write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (f == NULL) return 0;
    ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0) ok = 0;
    return ok;
}

int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (f == NULL) return 0;
    for (;;) {
        size_t got;
        if (cap - n < 65536) {
            uint8_t *nb = (uint8_t *)realloc(buf, cap * 2 + 65536);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return 0;
            }
            buf = nb;
            cap = cap * 2 + 65536;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *data = buf;
    *len = n;
    return 1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- generated content and SHA-256 ---------------------------------------- */

static uint64_t splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void gen_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t k = offset + i;
        uint64_t word = splitmix64(seed + k / 8);
        unsigned b;
        for (b = (unsigned)(k % 8); b < 8 && i < len; b++, i++) {
            buf[i] = (uint8_t)(word >> (8 * b));
        }
    }
}

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p)
{
    uint32_t w[64], a, b, d, e, f, g, h, cc;
    int i;
    for (i = 0; i < 16; i++) {
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    }
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3];
    e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (i = 0; i < 64; i++) {
        uint32_t s1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + s1 + ch + K256[i] + w[i];
        uint32_t s0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = s0 + maj;
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

void sha256_init(sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->bytes = 0;
    c->fill = 0;
}

void sha256_update(sha256_ctx *c, const uint8_t *data, size_t len)
{
    c->bytes += len;
    while (len > 0) {
        size_t take = 64 - c->fill;
        if (take > len) take = len;
        memcpy(c->block + c->fill, data, take);
        c->fill += take;
        data += take;
        len -= take;
        if (c->fill == 64) {
            sha256_block(c, c->block);
            c->fill = 0;
        }
    }
}

void sha256_final_hex(sha256_ctx *c, char out[65])
{
    uint64_t bits = c->bytes * 8;
    uint8_t pad = 0x80, zero = 0, len8[8];
    int i;
    sha256_update(c, &pad, 1);
    while (c->fill != 56) sha256_update(c, &zero, 1);
    for (i = 0; i < 8; i++) len8[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len8, 8);
    for (i = 0; i < 8; i++) sprintf(out + 8 * i, "%08x", (unsigned)c->h[i]);
    out[64] = '\0';
}

void sha256_hex(const uint8_t *data, size_t len, char out[65])
{
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final_hex(&c, out);
}

/* ---- a minimal HTTP/1.1 client for the admin API ----------------------------- */

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

/* Decode a chunked body in place; returns the new length. */
static size_t dechunk(char *b, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        char *end;
        unsigned long sz = strtoul(b + in, &end, 16);
        char *nl = strstr(b + in, "\r\n");
        if (nl == NULL || end == b + in) break;
        in = (size_t)(nl - b) + 2;
        if (sz == 0 || in + sz > n) break;
        memmove(b + out, b + in, sz);
        out += sz;
        in += sz + 2;
    }
    b[out] = '\0';
    return out;
}

int http_request(const char *method, const char *path, const char *json_body,
                 char **body)
{
    struct sockaddr_in sa;
    struct timeval tv;
    char head[512];
    char *buf = NULL, *sep;
    size_t n = 0, cap = 0, blen = json_body ? strlen(json_body) : 0;
    int fd, status = -1;

    *body = NULL;
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    tv.tv_sec = (time_t)(30 * g_timeout_scale);
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_admin_port);
    inet_pton(AF_INET, g_admin_host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    snprintf(head, sizeof head,
             "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: %lu\r\n\r\n",
             method, path, g_admin_host, g_admin_port, (unsigned long)blen);
    if (!send_all(fd, head, strlen(head)) ||
        (blen && !send_all(fd, json_body, blen))) {
        close(fd);
        return -1;
    }
    for (;;) {
        ssize_t r;
        if (cap - n < 4097) {
            char *nb = (char *)realloc(buf, cap * 2 + 8192);
            if (nb == NULL) break;
            buf = nb;
            cap = cap * 2 + 8192;
        }
        r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (buf == NULL) return -1;
    buf[n] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) status = -1;
    sep = strstr(buf, "\r\n\r\n");
    if (sep != NULL) {
        size_t hl = (size_t)(sep - buf) + 4, i;
        int chunked = 0;
        for (i = 0; i + 26 < hl; i++) {
            if ((buf[i] == '\n') &&
                strncasecmp(buf + i + 1, "transfer-encoding: chunked", 26) == 0) {
                chunked = 1;
            }
        }
        memmove(buf, buf + hl, n - hl + 1);
        if (chunked) dechunk(buf, n - hl);
    } else {
        buf[0] = '\0';
    }
    *body = buf;
    return status;
}

static int admin_vpost(const char *path, const char *fmt, va_list ap)
{
    char json[4096], *body = NULL;
    int st;
    vsnprintf(json, sizeof json, fmt, ap);
    st = http_request("POST", path, json, &body);
    if (st < 200 || st > 299) {
        t_note("admin POST %s %s -> %d %s", path, json, st, body ? body : "");
    }
    free(body);
    return st >= 200 && st <= 299;
}

int admin_post(const char *path, const char *json_fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, json_fmt);
    r = admin_vpost(path, json_fmt, ap);
    va_end(ap);
    return r;
}

int admin_fault(const char *json_fmt, ...)
{
    char inner[2048];
    va_list ap;
    va_start(ap, json_fmt);
    vsnprintf(inner, sizeof inner, json_fmt, ap);
    va_end(ap);
    return admin_post("/__admin/faults", "{%s}", inner);
}

int admin_reset(void)
{
    return admin_post("/__admin/reset", "{}");
}

int admin_media_gen(const char *media_id, uint64_t size, uint64_t seed,
                    const char *filename, const char *content_type)
{
    char json[1024], *body = NULL, want[65];
    int st, ok = 0;
    jv *v;
    snprintf(json, sizeof json,
             "{\"media_id\":\"%s\",\"size\":%llu,\"seed\":%llu,"
             "\"filename\":\"%s\",\"content_type\":\"%s\"}",
             media_id, (unsigned long long)size, (unsigned long long)seed,
             filename ? filename : media_id,
             content_type ? content_type : "application/octet-stream");
    st = http_request("POST", "/__admin/media", json, &body);
    if (st < 200 || st > 299) {
        t_note("register media %s -> %d %s", media_id, st, body ? body : "");
        free(body);
        return 0;
    }
    v = jv_parse(body);
    if (v != NULL) {
        uint64_t got = 0;
        const char *sha = jv_str(jv_get(v, "sha256"));
        ok = jv_u64(jv_get(v, "size"), &got) && got == size;
        /* Cross-check our generator with the emulator's (small sizes only:
         * the check reads the whole content). */
        if (ok && sha != NULL && size <= (8u << 20)) {
            uint8_t *data = (uint8_t *)malloc(size ? size : 1);
            if (data != NULL) {
                gen_fill(seed, 0, data, (size_t)size);
                sha256_hex(data, (size_t)size, want);
                free(data);
                if (strcmp(want, sha) != 0) {
                    t_note("generated content differs from the emulator's "
                           "(sha256 %s vs %s)", want, sha);
                    ok = 0;
                }
            }
        }
        jv_free(v);
    }
    if (!ok) t_note("register media %s: unexpected answer %s", media_id, body);
    free(body);
    return ok;
}

jv *admin_get_json(const char *path)
{
    char *body = NULL;
    int st = http_request("GET", path, NULL, &body);
    jv *v = NULL;
    if (st >= 200 && st <= 299) v = jv_parse(body);
    free(body);
    return v;
}

/* ---- JSON ------------------------------------------------------------------ */

typedef struct {
    const char *p;
    int err;
} jparser;

static void jskip(jparser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static void put_utf8(char **o, unsigned cp)
{
    char *q = *o;
    if (cp < 0x80) {
        *q++ = (char)cp;
    } else if (cp < 0x800) {
        *q++ = (char)(0xC0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

static char *jstring(jparser *ps)
{
    const char *s = ps->p + 1;
    size_t n = 0;
    char *out, *o;
    while (s[n] != '"' && s[n] != '\0') n += (s[n] == '\\' && s[n + 1]) ? 2 : 1;
    if (s[n] != '"') {
        ps->err = 1;
        return NULL;
    }
    out = o = (char *)malloc(n * 2 + 1);
    if (out == NULL) {
        ps->err = 1;
        return NULL;
    }
    while (*s != '"') {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'n': *o++ = '\n'; s++; break;
        case 't': *o++ = '\t'; s++; break;
        case 'r': *o++ = '\r'; s++; break;
        case 'b': *o++ = '\b'; s++; break;
        case 'f': *o++ = '\f'; s++; break;
        case 'u': {
            unsigned cp = 0;
            if (sscanf(s + 1, "%4x", &cp) != 1) {
                ps->err = 1;
                free(out);
                return NULL;
            }
            s += 5;
            if (cp >= 0xD800 && cp < 0xDC00 && s[0] == '\\' && s[1] == 'u') {
                unsigned lo = 0;
                if (sscanf(s + 2, "%4x", &lo) == 1) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
            }
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = *s++; break;
        }
    }
    *o = '\0';
    ps->p = s + 1;
    return out;
}

static jv *jvalue(jparser *ps);

static jv *jnew(jv_type t)
{
    jv *v = (jv *)calloc(1, sizeof *v);
    if (v != NULL) v->type = t;
    return v;
}

static jv *jcontainer(jparser *ps, jv_type t, char close)
{
    jv *v = jnew(t), **tail;
    if (v == NULL) {
        ps->err = 1;
        return NULL;
    }
    tail = &v->child;
    ps->p++;
    jskip(ps);
    if (*ps->p == close) {
        ps->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        jv *item;
        jskip(ps);
        if (t == JV_OBJ) {
            if (*ps->p != '"') break;
            key = jstring(ps);
            if (key == NULL) break;
            jskip(ps);
            if (*ps->p != ':') {
                free(key);
                break;
            }
            ps->p++;
        }
        item = jvalue(ps);
        if (item == NULL) {
            free(key);
            break;
        }
        item->key = key;
        *tail = item;
        tail = &item->next;
        jskip(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return v;
        }
        break;
    }
    ps->err = 1;
    jv_free(v);
    return NULL;
}

static jv *jvalue(jparser *ps)
{
    jv *v;
    jskip(ps);
    switch (*ps->p) {
    case '{': return jcontainer(ps, JV_OBJ, '}');
    case '[': return jcontainer(ps, JV_ARR, ']');
    case '"':
        v = jnew(JV_STR);
        if (v == NULL) return NULL;
        v->str = jstring(ps);
        if (v->str == NULL) {
            free(v);
            return NULL;
        }
        return v;
    case 't':
    case 'f':
    case 'n': {
        const char *w = *ps->p == 't' ? "true" : *ps->p == 'f' ? "false" : "null";
        if (strncmp(ps->p, w, strlen(w)) != 0) return NULL;
        v = jnew(*w == 'n' ? JV_NULL : JV_BOOL);
        if (v == NULL) return NULL;
        v->boolean = *w == 't';
        ps->p += strlen(w);
        return v;
    }
    default: {
        const char *s = ps->p;
        size_t n;
        while (*s == '-' || *s == '+' || *s == '.' || *s == 'e' || *s == 'E' ||
               (*s >= '0' && *s <= '9'))
            s++;
        n = (size_t)(s - ps->p);
        if (n == 0) return NULL;
        v = jnew(JV_NUM);
        if (v == NULL) return NULL;
        v->str = (char *)malloc(n + 1);
        if (v->str == NULL) {
            free(v);
            return NULL;
        }
        memcpy(v->str, ps->p, n);
        v->str[n] = '\0';
        ps->p = s;
        return v;
    }
    }
}

jv *jv_parse(const char *text)
{
    jparser ps;
    jv *v;
    if (text == NULL) return NULL;
    ps.p = text;
    ps.err = 0;
    v = jvalue(&ps);
    if (v == NULL || ps.err) {
        jv_free(v);
        return NULL;
    }
    return v;
}

void jv_free(jv *v)
{
    while (v != NULL) {
        jv *next = v->next;
        jv_free(v->child);
        free(v->key);
        free(v->str);
        free(v);
        v = next;
    }
}

const jv *jv_get(const jv *obj, const char *key)
{
    const jv *c;
    if (obj == NULL || obj->type != JV_OBJ) return NULL;
    for (c = obj->child; c != NULL; c = c->next)
        if (c->key != NULL && strcmp(c->key, key) == 0) return c;
    return NULL;
}

const char *jv_str(const jv *v)
{
    return (v != NULL && v->type == JV_STR) ? v->str : NULL;
}

int jv_i64(const jv *v, int64_t *out)
{
    char *end;
    long long x;
    if (v == NULL) return 0;
    if (v->type == JV_STR) { /* WeCom sends some numbers as strings */
        if (v->str[0] == '\0') return 0;
    } else if (v->type != JV_NUM) {
        return 0;
    }
    errno = 0;
    x = strtoll(v->str, &end, 10);
    if (*end != '\0' || errno != 0) return 0;
    *out = (int64_t)x;
    return 1;
}

int jv_u64(const jv *v, uint64_t *out)
{
    char *end;
    unsigned long long x;
    if (v == NULL || v->type != JV_NUM || v->str[0] == '-') return 0;
    errno = 0;
    x = strtoull(v->str, &end, 10);
    if (*end != '\0' || errno != 0) return 0;
    *out = (uint64_t)x;
    return 1;
}

/* ---- clients ---------------------------------------------------------------- */

/* ---- every event of every test_client ------------------------------------ */

/* Clients made by test_client send every event (DEBUG and up) here: each
 * is checked for a secret and malformed fields, and the runner fails the
 * test that saw a bad one.  Worker threads call it: guarded. */
static pthread_mutex_t g_ev_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long g_ev_bad;
static char g_ev_first_bad[512];

void check_event(void *user_data, const wxm_event *ev)
{
    const char *why = NULL;
    (void)user_data;
    if (ev->size != sizeof(wxm_event)) why = "size is not sizeof(wxm_event)";
    else if (ev->endpoint == NULL || ev->message == NULL || ev->method == NULL)
        why = "a NULL string";
    else if ((ev->kind == WXM_EVENT_REQUEST_STARTED || ev->kind == WXM_EVENT_REQUEST_FINISHED) !=
             (ev->method[0] != '\0'))
        why = "a method on other than a request, or a request without one";
    else if (ev->kind < WXM_EVENT_TRANSFER_STARTED || ev->kind > WXM_EVENT_FALLBACK)
        why = "an unknown kind";
    else if (ev->level != WXM_LEVEL_DEBUG && ev->level != WXM_LEVEL_INFO &&
             ev->level != WXM_LEVEL_WARNING && ev->level != WXM_LEVEL_ERROR)
        why = "an unknown level";
    else if (leaks_secret(ev->endpoint) || leaks_secret(ev->message) ||
             strstr(ev->endpoint, "wxmtok") != NULL ||
             strstr(ev->message, "wxmtok") != NULL)
        why = "a secret";
    if (why == NULL) return;
    pthread_mutex_lock(&g_ev_lock);
    if (g_ev_bad++ == 0)
        snprintf(g_ev_first_bad, sizeof g_ev_first_bad, "kind %d: %s: \"%s\" \"%s\"",
                 (int)ev->kind, why, ev->endpoint ? ev->endpoint : "(null)",
                 ev->message ? ev->message : "(null)");
    pthread_mutex_unlock(&g_ev_lock);
}

unsigned long bad_events_take(char *first, size_t cap)
{
    unsigned long bad;
    pthread_mutex_lock(&g_ev_lock);
    bad = g_ev_bad;
    if (first != NULL && cap > 0) snprintf(first, cap, "%s", g_ev_first_bad);
    g_ev_bad = 0;
    g_ev_first_bad[0] = '\0';
    pthread_mutex_unlock(&g_ev_lock);
    return bad;
}

/* Fails the current test if one of its events was bad; starts afresh. */
static void check_events_of_test(void)
{
    char first[sizeof g_ev_first_bad];
    unsigned long bad = bad_events_take(first, sizeof first);
    if (bad > 0)
        t_fail(__FILE__, __LINE__, "events", "%lu bad events, the first: %s", bad,
               first);
}

wxm_client *test_client_token(const char *token, uint64_t chunk,
                              uint32_t parallelism, uint32_t max_attempts)
{
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    wxm_client *client = NULL;
    int32_t rc;
    if (cfg == NULL) {
        t_note("wxm_config_new: %s", wxm_last_errmsg());
        return NULL;
    }
    rc = wxm_config_set_base_url(cfg, g_base_url);
    if (rc == 0)
        rc = wxm_config_set_event_handler(cfg, check_event, NULL, NULL,
                                          WXM_LEVEL_DEBUG);
    if (rc == 0 && token != NULL) rc = wxm_config_set_access_token(cfg, token);
    if (rc == 0 && chunk != 0) rc = wxm_config_set_chunk_size(cfg, chunk);
    if (rc == 0 && parallelism != 0)
        rc = wxm_config_set_parallelism(cfg, parallelism);
    /* Short backoff so that tests of retries stay fast. */
    if (rc == 0 && max_attempts != 0)
        rc = wxm_config_set_retries(cfg, max_attempts, 20);
    if (rc == 0) rc = wxm_client_new(cfg, &client);
    if (rc != 0) {
        t_note("configuring a client failed: %d %s", (int)rc, wxm_last_errmsg());
        client = NULL;
    }
    wxm_config_free(cfg);
    return client;
}

wxm_client *test_client(uint64_t chunk, uint32_t parallelism,
                        uint32_t max_attempts)
{
    return test_client_token(TEST_TOKEN, chunk, parallelism, max_attempts);
}

/* ---- the emulator process --------------------------------------------------- */

static int start_emulator(const char *exe)
{
    char out_path[300], err_path[300], token_arg[] = TEST_TOKEN;
    char *argv[10];
    posix_spawn_file_actions_t fa;
    double deadline;
    int rc;

    tmp_path(out_path, sizeof out_path, "emulator.stdout");
    tmp_path(err_path, sizeof err_path, "emulator.stderr");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    argv[0] = (char *)exe;
    argv[1] = (char *)"--listen";
    argv[2] = (char *)"127.0.0.1:0";
    argv[3] = (char *)"--access-token";
    argv[4] = token_arg;
    argv[5] = (char *)"--platform";
    argv[6] = (char *)"wecom";
    argv[7] = NULL;
    rc = posix_spawn(&g_emulator_pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot start the emulator %s: %s\n", exe, strerror(rc));
        g_emulator_pid = -1;
        return 0;
    }
    deadline = now_s() + 20.0 * g_timeout_scale;
    while (now_s() < deadline) {
        FILE *f = fopen(out_path, "r");
        char line[128];
        int status;
        if (f != NULL) {
            if (fgets(line, sizeof line, f) != NULL && strchr(line, '\n')) {
                fclose(f);
                line[strcspn(line, "\r\n")] = '\0';
                if (sscanf(line, "127.0.0.1:%d", &g_admin_port) != 1 ||
                    g_admin_port <= 0) {
                    fprintf(stderr, "emulator printed '%s', not 127.0.0.1:PORT\n",
                            line);
                    return 0;
                }
                snprintf(g_base_url, sizeof g_base_url, "http://%s", line);
                return 1;
            }
            fclose(f);
        }
        if (waitpid(g_emulator_pid, &status, WNOHANG) == g_emulator_pid) {
            fprintf(stderr, "the emulator exited before printing its address "
                            "(see %s)\n", err_path);
            g_emulator_pid = -1;
            return 0;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "the emulator printed no address within 20 s\n");
    return 0;
}

static void stop_emulator(void)
{
    int status;
    if (g_emulator_pid <= 0) return;
    kill(g_emulator_pid, SIGTERM);
    if (waitpid(g_emulator_pid, &status, 0) == g_emulator_pid &&
        !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        printf("# note: the emulator did not exit 0 on SIGTERM (status %d)\n",
               status);
    }
    g_emulator_pid = -1;
}

/* ---- watchdog: a hung test fails the run instead of hanging it ----------- */

static double volatile g_deadline;

static void *watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        double d;
        sleep_ms(100);
        pthread_mutex_lock(&g_lock);
        d = g_deadline;
        pthread_mutex_unlock(&g_lock);
        if (d > 0 && now_s() > d) {
            printf("FAIL - %s (timed out: hung)\n", g_cur_name ? g_cur_name : "?");
            printf("%d passed, %d failed\n", g_passed, g_failed + 1);
            fflush(stdout);
            if (g_emulator_pid > 0) kill(g_emulator_pid, SIGKILL);
            _exit(3);
        }
    }
    return NULL;
}

/* ---- leak canary: proves LeakSanitizer sees the library's allocations ---- */

static int leak_canary(void)
{
    /* Leaked on purpose: a config, a client made from it (which lives in
     * Rust's heap) and a download handle.  The runner expects LSan to report
     * these with frames inside libwxmedia and the process to fail. */
    wxm_config *cfg = wxm_config_new(WXM_PLATFORM_WECOM);
    wxm_client *client = NULL;
    wxm_download *d;
    if (cfg == NULL) return 2;
    wxm_config_set_base_url(cfg, "http://127.0.0.1:9");
    wxm_config_set_access_token(cfg, "canary");
    if (wxm_client_new(cfg, &client) != 0) return 2;
    d = wxm_download_new(client, "canary-media");
    printf("leaking %p %p %p on purpose\n", (void *)cfg, (void *)client,
           (void *)d);
    /* Forget the pointers, so that nothing on the stack keeps them alive. */
    cfg = NULL;
    client = NULL;
    d = NULL;
    (void)cfg;
    (void)client;
    (void)d;
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static const test_case *const g_suites[] = {args_tests,   download_tests,
                                            upload_tests, cancel_tests,
                                            error_tests,  thread_tests,
                                            callback_tests};

static int selected(const char *name, int argc, char **argv, int first)
{
    int i, any = 0;
    for (i = first; i < argc; i++) {
        any = 1;
        if (strstr(name, argv[i]) != NULL) return 1;
    }
    return !any;
}

static void usage(void)
{
    fputs("usage: wxm_ctest [--emulator PATH] [--valgrind-subset] [--list]\n"
          "                 [--leak-canary] [NAME-FILTER...]\n"
          "The emulator path may also come from $WXMEDIA_EMULATOR.\n",
          stderr);
}

int main(int argc, char **argv)
{
    const char *emulator = getenv("WXMEDIA_EMULATOR");
    const char *tmpbase = getenv("TMPDIR");
    int first = 1, valgrind_subset = 0, list = 0;
    size_t s;
    pthread_t wd;

    setvbuf(stdout, NULL, _IOLBF, 0);
    while (first < argc && strncmp(argv[first], "--", 2) == 0) {
        if (strcmp(argv[first], "--emulator") == 0 && first + 1 < argc) {
            emulator = argv[first + 1];
            first += 2;
        } else if (strcmp(argv[first], "--valgrind-subset") == 0) {
            valgrind_subset = 1;
            g_timeout_scale = 10.0;
            first++;
        } else if (strcmp(argv[first], "--list") == 0) {
            list = 1;
            first++;
        } else if (strcmp(argv[first], "--leak-canary") == 0) {
            return leak_canary();
        } else {
            usage();
            return 2;
        }
    }
    if (list) {
        for (s = 0; s < sizeof g_suites / sizeof g_suites[0]; s++) {
            const test_case *t;
            for (t = g_suites[s]; t->name != NULL; t++) puts(t->name);
        }
        return 0;
    }
    if (emulator == NULL || emulator[0] == '\0') {
        usage();
        return 2;
    }
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/wxm-ctest-XXXXXX",
             tmpbase && tmpbase[0] ? tmpbase : "/tmp");
    if (mkdtemp(g_tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    if (!start_emulator(emulator)) {
        stop_emulator();
        rm_rf(g_tmpdir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("# wxmedia %s, emulator at %s\n", wxm_version(), g_base_url);
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);

    for (s = 0; s < sizeof g_suites / sizeof g_suites[0]; s++) {
        const test_case *t;
        for (t = g_suites[s]; t->name != NULL; t++) {
            double t0;
            if (!selected(t->name, argc, argv, first)) continue;
            if (valgrind_subset && !t->valgrind) continue;
            pthread_mutex_lock(&g_lock);
            g_cur_name = t->name;
            g_cur_failed = 0;
            g_deadline = now_s() + 60.0 * g_timeout_scale;
            pthread_mutex_unlock(&g_lock);
            t0 = now_s();
            if (!admin_reset()) t_fail(__FILE__, __LINE__, "admin_reset()", "/__admin/reset failed");
            else t->fn();
            check_events_of_test();
            pthread_mutex_lock(&g_lock);
            g_deadline = 0;
            if (g_cur_failed) g_failed++;
            else g_passed++;
            printf("%s - %s (%.2f s)\n", g_cur_failed ? "FAIL" : "ok", t->name,
                   now_s() - t0);
            pthread_mutex_unlock(&g_lock);
        }
    }
    stop_emulator();
    rm_rf(g_tmpdir);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 && g_passed > 0 ? 0 : 1;
}

/* ---- callback recorders ------------------------------------------------------ */

void vsink_init(vsink *s, uint64_t seed, uint64_t start)
{
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->first = UINT64_MAX;
    s->next = start;
    s->thread = pthread_self();
}

void vsink_done(vsink *s)
{
    free(s->scratch);
    s->scratch = NULL;
    s->scratch_cap = 0;
}

int32_t vsink_fn(void *user_data, uint64_t offset, const uint8_t *data,
                 size_t len)
{
    vsink *s = (vsink *)user_data;
    if (s->abort_on_call != 0 && s->calls >= s->abort_on_call) {
        s->calls_after_abort++;
    }
    s->calls++;
    if (!pthread_equal(s->thread, pthread_self())) s->wrong_thread = 1;
    if (s->first == UINT64_MAX) s->first = offset;
    if (offset != s->next) s->out_of_order = 1;
    if (len == 0) s->empty_calls++;
    if (len > 0 && data == NULL) {
        s->mismatch = 1;
    } else if (len > 0) {
        if (s->scratch_cap < len) {
            free(s->scratch);
            s->scratch = (uint8_t *)malloc(len);
            s->scratch_cap = s->scratch ? len : 0;
        }
        if (s->scratch == NULL) return -1;
        gen_fill(s->seed, offset, s->scratch, len);
        if (memcmp(s->scratch, data, len) != 0) s->mismatch = 1;
    }
    s->next = offset + len;
    s->bytes += len;
    if (s->abort_on_call != 0 && s->calls == s->abort_on_call)
        return s->abort_value;
    return 0;
}

void vprogress_init(vprogress *p)
{
    memset(p, 0, sizeof *p);
    p->thread = pthread_self();
}

int32_t vprogress_fn(void *user_data, uint64_t done, uint64_t total)
{
    vprogress *p = (vprogress *)user_data;
    if (!pthread_equal(p->thread, pthread_self())) p->wrong_thread = 1;
    if (done < p->last_done) p->backwards = 1;
    if (p->last_total != 0 && total != p->last_total) p->total_changed = 1;
    if (total != 0 && done > total) p->over_total = 1;
    p->calls++;
    p->last_done = done;
    if (total != 0) p->last_total = total;
    if (p->abort_at != 0 && done >= p->abort_at) return 1;
    return 0;
}

long check_ranges(const char *media_id, uint64_t chunk, uint64_t size,
                  uint64_t *min_start)
{
    jv *stats = admin_get_json("/__admin/stats");
    const jv *ranges, *r;
    long n = 0;
    int bad = 0;
    if (min_start) *min_start = UINT64_MAX;
    if (stats == NULL) {
        t_note("cannot read /__admin/stats");
        return -2;
    }
    ranges = jv_get(stats, "ranges");
    if (ranges == NULL || ranges->type != JV_ARR) {
        t_note("stats have no ranges array");
        jv_free(stats);
        return -2;
    }
    for (r = ranges->child; r != NULL; r = r->next) {
        const char *id = jv_str(jv_get(r, "media_id"));
        const char *header = jv_str(jv_get(r, "header"));
        uint64_t start = 0, end = 0;
        if (id == NULL || strcmp(id, media_id) != 0) continue;
        n++;
        if (header == NULL || !jv_u64(jv_get(r, "start"), &start) ||
            !jv_u64(jv_get(r, "end"), &end)) {
            t_note("request %ld for %s had no usable Range (header %s)", n,
                   media_id, header ? header : "none");
            bad = 1;
            continue;
        }
        if (min_start && start < *min_start) *min_start = start;
        if (start % 16 != 0) {
            t_note("Range %s starts at %llu, not a multiple of 16", header,
                   (unsigned long long)start);
            bad = 1;
        }
        if (end < start || end - start + 1 > chunk) {
            t_note("Range %s asks for more than the chunk size %llu", header,
                   (unsigned long long)chunk);
            bad = 1;
        }
        /* Only the first request, made before the size is known, may ask
         * past the end. */
        if (end >= size && n > 1) {
            t_note("Range %s goes past the end (size %llu), after the size "
                   "was known", header, (unsigned long long)size);
            bad = 1;
        }
    }
    jv_free(stats);
    return bad ? -1 : n;
}

int stats_u64(const char *key, uint64_t *out)
{
    jv *stats = admin_get_json("/__admin/stats");
    int ok;
    if (stats == NULL) return 0;
    ok = jv_u64(jv_get(stats, key), out);
    jv_free(stats);
    return ok;
}

int file_matches_gen(const char *path, uint64_t seed, uint64_t size)
{
    uint8_t *data = NULL, *want;
    size_t len = 0;
    int ok;
    if (!read_file(path, &data, &len)) return 0;
    if (len != size) {
        t_note("%s has %lu bytes, expected %llu", path, (unsigned long)len,
               (unsigned long long)size);
        free(data);
        return 0;
    }
    want = (uint8_t *)malloc(len ? len : 1);
    if (want == NULL) {
        free(data);
        return 0;
    }
    gen_fill(seed, 0, want, len);
    ok = memcmp(want, data, len) == 0;
    if (!ok) t_note("%s differs from the generated content", path);
    free(want);
    free(data);
    return ok;
}

/* malloc_count: an LD_PRELOAD library that counts heap allocations, for
 * `scripts/bench --allocs` (allocations per request).
 *
 *     cc -shared -fPIC -O2 -o malloc_count.so tests/tools/malloc_count.c -ldl
 *     MALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=./malloc_count.so headroom -c ...
 *     kill -USR2 <pid>     # appends "<allocations> <frees>\n" to /tmp/counts
 *
 * Counted, each call once: malloc, calloc, realloc, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc (operator new goes through malloc in libstdc++, OpenSSL,
 * hiredis and libuv call malloc too). free is counted apart (the second figure).
 * The counters are atomic (relaxed); the SIGUSR2 handler is installed by a
 * constructor and uses only open/write/close, which are async-signal-safe. A
 * program that installs its own SIGUSR2 handler later replaces this one.
 *
 * dlsym may itself call calloc (glibc's dlerror buffer) before the real calloc is
 * known: those first calls are served from a small static buffer, never freed to
 * the real free.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong n_alloc;
static atomic_ulong n_free;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

/* the bootstrap arena: calloc calls made while dlsym runs */
static _Alignas(16) char boot_buf[8192];
static size_t boot_used;
static int resolving;

static int in_boot(const void *p)
{
    return (const char *)p >= boot_buf && (const char *)p < boot_buf + sizeof boot_buf;
}

static void *boot_alloc(size_t size)
{
    size = (size + 15) & ~(size_t)15;
    if (size > sizeof boot_buf - boot_used)
        return NULL;
    void *p = boot_buf + boot_used;
    boot_used += size;
    return p; /* static storage: already zero */
}

static void resolve(void)
{
    if (real_malloc || resolving)
        return;
    resolving = 1;
    real_calloc = dlsym(RTLD_NEXT, "calloc");
    real_malloc = dlsym(RTLD_NEXT, "malloc");
    real_realloc = dlsym(RTLD_NEXT, "realloc");
    real_free = dlsym(RTLD_NEXT, "free");
    real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
    real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
    real_memalign = dlsym(RTLD_NEXT, "memalign");
    real_valloc = dlsym(RTLD_NEXT, "valloc");
    real_pvalloc = dlsym(RTLD_NEXT, "pvalloc");
    resolving = 0;
}

static void count(void)
{
    atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
}

void *malloc(size_t size)
{
    if (!real_malloc) {
        if (resolving)
            return boot_alloc(size);
        resolve();
    }
    count();
    return real_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (!real_calloc) {
        if (resolving) {
            if (size && n > (size_t)-1 / size)
                return NULL;
            return boot_alloc(n * size);
        }
        resolve();
    }
    count();
    return real_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (!real_realloc) {
        if (resolving)
            return NULL;
        resolve();
    }
    count();
    if (in_boot(p)) { /* moved out of the bootstrap arena */
        void *q = real_malloc(size);
        if (q) {
            size_t avail = (size_t)(boot_buf + sizeof boot_buf - (char *)p);
            memcpy(q, p, size < avail ? size : avail);
        }
        return q;
    }
    return real_realloc(p, size);
}

void free(void *p)
{
    if (!p || in_boot(p))
        return;
    if (!real_free)
        resolve();
    atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
    real_free(p);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (!real_posix_memalign)
        resolve();
    count();
    return real_posix_memalign(out, align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (!real_aligned_alloc)
        resolve();
    count();
    return real_aligned_alloc(align, size);
}

void *memalign(size_t align, size_t size)
{
    if (!real_memalign)
        resolve();
    count();
    return real_memalign(align, size);
}

void *valloc(size_t size)
{
    if (!real_valloc)
        resolve();
    count();
    return real_valloc(size);
}

void *pvalloc(size_t size)
{
    if (!real_pvalloc)
        resolve();
    count();
    return real_pvalloc(size);
}

/* ------------------------------------------------------------------------- */

static char out_path[4096];

static char *put_ulong(char *p, unsigned long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static void on_usr2(int sig)
{
    (void)sig;
    int saved = errno;
    char line[64], *p = line;
    p = put_ulong(p, atomic_load_explicit(&n_alloc, memory_order_relaxed));
    *p++ = ' ';
    p = put_ulong(p, atomic_load_explicit(&n_free, memory_order_relaxed));
    *p++ = '\n';
    int fd = open(out_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        const char *q = line;
        while (q < p) {
            ssize_t w = write(fd, q, (size_t)(p - q));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            q += w;
        }
        close(fd);
    }
    errno = saved;
}

__attribute__((constructor)) static void malloc_count_init(void)
{
    resolve();
    const char *f = getenv("MALLOC_COUNT_FILE");
    if (!f || !*f)
        f = "malloc_count.out";
    size_t n = strlen(f);
    if (n >= sizeof out_path)
        n = sizeof out_path - 1;
    memcpy(out_path, f, n);
    out_path[n] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

/* Fuzz target: melt-agent --listen's request reader (agent/listen.c,
 * compiled here without its fork: `run` parses its argv and answers
 * "#exit 0"). The input is what a host sends on one connection; it must
 * never crash or hang the agent. push writes into a private temporary
 * folder, removed at exit. */
#define AGENT_LISTEN_NO_FORK 1
#include "../../agent/listen.c"

#include <dirent.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_wd[64];

static void cleanup(void)
{
    DIR *d = opendir(g_wd);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char p[sizeof g_wd + 300];
                snprintf(p, sizeof p, "%s/%s", g_wd, e->d_name);
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(g_wd);
}

static int no_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_wd[0]) {
        snprintf(g_wd, sizeof g_wd, "/tmp/melt-fuzz-listen-XXXXXX");
        if (!mkdtemp(g_wd)) abort();
        atexit(cleanup);
        signal(SIGPIPE, SIG_IGN);
    }
    if (size > 65536) return 0;   /* fits the socket buffers: no blocking */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    if (size && write_all(sv[0], data, size) != 0) abort();
    shutdown(sv[0], SHUT_WR);   /* the host is done: EOF after the input */
    serve(sv[1], g_wd, no_main);
    close(sv[1]);
    close(sv[0]);
    return 0;
}

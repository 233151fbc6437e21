/* melt-agent: writing event lines (agent/agent.h). */
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "melt/cpu.h"
#include "melt_version.h"

void agent_out_init(agent_out *o, int fd)
{
    memset(o, 0, sizeof *o);
    o->fd = fd;
    pthread_mutex_init(&o->lock, NULL);
}

void agent_out_destroy(agent_out *o)
{
    pthread_mutex_destroy(&o->lock);
}

int64_t agent_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

melt_event agent_event(enum melt_event_kind k, int64_t t_ns)
{
    melt_event ev;
    ev.kind = k;
    ev.t_ns = t_ns;
    ev.req = ev.i = ev.id = -1;
    ev.value = 0;
    ev.has_value = false;
    ev.name[0] = ev.key[0] = ev.unit[0] = ev.msg[0] = '\0';
    return ev;
}

void agent_emit(agent_out *o, const melt_event *ev)
{
    char buf[4096];   /* the longest line (every text field escaped) fits */
    size_t n = melt_event_format(ev, buf, sizeof buf);
    if (n >= sizeof buf) {   /* cannot happen with MELT_EVENT_TEXT_MAX text */
        n = sizeof buf - 1;
        buf[n - 1] = '\n';
    }
    pthread_mutex_lock(&o->lock);
    const char *p = buf;
    while (n && !o->failed) {
        const ssize_t w = write(o->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            o->failed = 1;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    o->lines++;
    pthread_mutex_unlock(&o->lock);
}

void agent_hello_details(melt_event *ev)
{
    char buf[256], num[24];
    struct utsname u;
    melt_event_hello_add(ev, "commit", MELT_GIT_COMMIT);
    if (uname(&u) == 0) {
        melt_event_hello_add(ev, "host", u.nodename);
        melt_event_hello_add(ev, "kernel", u.release);
        melt_event_hello_add(ev, "arch", u.machine);
    }
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (n_cpu > 0) {
        size_t i = sizeof num;
        num[--i] = '\0';
        do {
            num[--i] = (char)('0' + n_cpu % 10);
            n_cpu /= 10;
        } while (n_cpu);
        melt_event_hello_add(ev, "n_cpu", num + i);
    }
    melt_event_hello_add(ev, "cpu", melt_cpu_model_name(buf, sizeof buf));
    melt_event_hello_add(ev, "features", melt_cpu_features_str(melt_cpu_detect(), buf, sizeof buf));
}

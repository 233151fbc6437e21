/* melt-agent internals: the line writer and host facts for hello. */
#ifndef MELT_AGENT_H
#define MELT_AGENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "melt/event.h"

/* Where event lines go: one write() per line, whole lines only, from any
 * thread (the workload on the main thread, probe samples on the sampling
 * thread). After the first failed write (the host went away) every later
 * line is dropped and `failed` is set, which stops the workload. */
typedef struct agent_out {
    int fd;
    pthread_mutex_t lock;
    volatile int failed;
    uint64_t lines;
} agent_out;

void agent_out_init(agent_out *o, int fd);
void agent_out_destroy(agent_out *o);
/* Format ev (no malloc, no stdio) and write it as one line. */
void agent_emit(agent_out *o, const melt_event *ev);

/* CLOCK_MONOTONIC in ns. */
int64_t agent_now_ns(void);

/* An event of kind k stamped t_ns, every other field absent. */
melt_event agent_event(enum melt_event_kind k, int64_t t_ns);

/* Fill the hello event's details: commit, host, kernel, arch, cpu model,
 * CPU features, online CPUs. */
void agent_hello_details(melt_event *ev);

/* Modes chosen by the first flag (main dispatches): --echo (agent/echo.c),
 * --describe (agent/describe.c). Each returns the exit status. */
int agent_echo(int argc, char **argv);
int agent_describe(int argc, char **argv);

#endif

/* melt — clock sync: how far the device's CLOCK_MONOTONIC is from the
 * host's, estimated by echo rounds (docs/devices.md, "Clock sync").
 *
 * One round: the host reads its clock (t_send), asks the device for its
 * clock (device_ns), reads its clock again (t_recv). The device read its
 * clock somewhere in [t_send, t_recv], so host = device + offset holds
 * with offset = (t_send + t_recv) / 2 - device_ns to within half the
 * round trip, whatever the split between the two directions. Of several
 * rounds the one with the smallest round trip (the least queueing) wins
 * (the minimum round-trip rule, as NTP's clock filter and Cristian's
 * algorithm): its offset is the estimate and half its round trip the
 * uncertainty, a hard bound as long as neither clock jumped.
 *
 * The estimator is a pure function over two callbacks (the host clock and
 * the echo), so tests can inject any delays; melt_clock_sync_transport
 * drives it through a transport (agent `--echo`, or `echo` over tcp).
 */
#ifndef MELT_CLOCK_SYNC_H
#define MELT_CLOCK_SYNC_H

#include <stdint.h>

#include "melt/error.h"
#include "melt/store.h"
#include "melt/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MELT_CLOCK_SYNC_ROUNDS 32   /* the runner's default number of rounds */

/* The host's clock now, in ns. */
typedef int64_t (*melt_clock_now_fn)(void *user);
/* One echo: the device's clock in ns (0 or a negative error). */
typedef int (*melt_clock_echo_fn)(void *user, int64_t *device_ns, melt_error *err);

typedef struct melt_clock_estimate {
    int64_t offset_ns;        /* host = device + offset_ns */
    int64_t uncertainty_ns;   /* |error| <= this (half the best round trip) */
    int64_t rtt_ns;           /* the best round's round trip */
    int64_t host_ns;          /* host time of the best round's midpoint */
    int rounds;               /* rounds that answered */
} melt_clock_estimate;

/* Run `rounds` echo rounds (>= 1) and keep the one with the smallest round
 * trip. A round whose echo fails ends the estimate with that error; a
 * round trip below zero (host clock went back) is skipped. */
int melt_clock_estimate_offset(int rounds, melt_clock_now_fn now, melt_clock_echo_fn echo,
                               void *user, melt_clock_estimate *out, melt_error *err);

/* Host CLOCK_MONOTONIC in ns (the runner's clock). */
int64_t melt_clock_host_now_ns(void *user);

/* Estimate the offset of the device behind tops/state: opens the
 * transport's echo channel (the agent at agent_path with --echo; over tcp
 * the listening agent), runs `rounds` rounds, closes it. */
int melt_clock_sync_transport(const melt_transport_ops *tops, void *state,
                              const char *agent_path, int rounds, melt_clock_estimate *out,
                              melt_error *err);

/* Closing a channel: EOF to the device side, then the local child is
 * reaped (killed after a short wait). */
void melt_echo_chan_close(melt_echo_chan *ch);

/* A device time of a trial in host time (host = device + offset); the
 * device time unchanged when the trial has no clock. */
int64_t melt_clock_to_host_ns(const melt_trial_info *t, int64_t device_ns);

/* The offset at host time host_ns between two estimates (linear drift),
 * with the larger of their uncertainties; a alone when b is NULL. */
void melt_clock_interpolate(const melt_clock_estimate *a, const melt_clock_estimate *b,
                            int64_t host_ns, int64_t *offset_ns, int64_t *uncertainty_ns);

#ifdef __cplusplus
}
#endif
#endif

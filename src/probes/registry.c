/* The probe registry: adding a probe is one file in src/probes/ and one line
 * here. Nothing else in melt names a probe. */
#include <string.h>

#include "melt/probe.h"

extern const melt_probe_ops melt_probe_procfs;
extern const melt_probe_ops melt_probe_thermal;
extern const melt_probe_ops melt_probe_cpufreq;
extern const melt_probe_ops melt_probe_power_supply;
extern const melt_probe_ops melt_probe_hwmon;
extern const melt_probe_ops melt_probe_rapl;
extern const melt_probe_ops melt_probe_nvml;

const melt_probe_ops *const melt_probe_registry[] = {
    &melt_probe_procfs,
    &melt_probe_thermal,
    &melt_probe_cpufreq,
    &melt_probe_power_supply,
    &melt_probe_hwmon,
    &melt_probe_rapl,
    &melt_probe_nvml,
    NULL,
};

const melt_probe_ops *melt_probe_find(const char *name)
{
    for (const melt_probe_ops *const *p = melt_probe_registry; *p; p++)
        if (name && strcmp((*p)->name, name) == 0 && (*p)->version == MELT_PROBE_API_VERSION)
            return *p;
    return NULL;
}

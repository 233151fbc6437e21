/* melt devices [--json] [--agent PATH] [EXPERIMENT]: what melt can reach,
 * described through each device's transport (melt/devices.h). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "melt/devices.h"
#include "melt/experiment.h"

void usage_devices(FILE *out)
{
    fputs("usage: melt devices [--json] [--agent PATH] [EXPERIMENT]\n"
          "List the devices melt can reach: this machine, every device `adb devices -l`\n"
          "lists (when adb is installed), and the devices EXPERIMENT names (ssh hosts,\n"
          "tcp endpoints, adb serials). Each is opened through its transport and\n"
          "described by the agent (`melt-agent --describe`, copied to the device's\n"
          "work folder where needed): model, OS and kernel, architecture, cores,\n"
          "memory, governors, temperatures, Android and Jetson details.\n\n"
          "      --json        one JSON array (name, transport, where, reachable,\n"
          "                    reason, from_experiment, info)\n"
          "      --agent PATH  the melt-agent to describe devices with (default:\n"
          "                    $MELT_AGENT, else the melt-agent beside this melt; an\n"
          "                    Android phone or board needs one built for it, e.g.\n"
          "                    build/aarch64/melt-agent)\n"
          "  -h, --help        show this help\n\n"
          "Exit: 0 when every device EXPERIMENT names is reachable, 1 when one is not\n"
          "(or on an error), 2 usage.\n", out);
}

static const char *default_agent(char *buf, size_t n)
{
    const char *env = getenv("MELT_AGENT");
    if (env && *env)
        return env;
    ssize_t k = readlink("/proc/self/exe", buf, n - 16);
    if (k <= 0)
        return "melt-agent";
    buf[k] = '\0';
    char *slash = strrchr(buf, '/');
    snprintf(slash ? slash + 1 : buf, n - (size_t)(slash ? slash + 1 - buf : 0), "melt-agent");
    return buf;
}

static const char *s_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

static void print_temps(json_t *temps)
{
    const char *k, *hot = NULL;
    json_t *v;
    double max = -1e9;
    size_t n = 0;
    json_object_foreach(temps, k, v) {
        if (json_number_value(v) > max) {
            max = json_number_value(v);
            hot = k;
        }
        n++;
    }
    if (!n)
        return;
    printf("  temps     max %.1f C (%s) over %zu zone%s:", max, hot, n, n == 1 ? "" : "s");
    json_object_foreach(temps, k, v)
        printf(" %s %.1f", k, json_number_value(v));
    putchar('\n');
}

static void print_text(const melt_device_report *d)
{
    printf("%s (%s%s%s): %s%s%s\n", d->name, d->transport, d->where ? " " : "",
           d->where ? d->where : "", d->reachable ? "reachable" : "not reachable",
           d->reason ? ": " : "", d->reason ? d->reason : "");
    json_t *o = d->info_json ? json_loads(d->info_json, 0, NULL) : NULL;
    if (!o)
        return;
    const char *s;
    if ((s = s_of(o, "model")) || (s = s_of(o, "cpu")))
        printf("  model     %s%s%s\n", s, s_of(o, "model") && s_of(o, "cpu") ? "; " : "",
               s_of(o, "model") && s_of(o, "cpu") ? s_of(o, "cpu") : "");
    printf("  os        %s, kernel %s, %s\n", s_of(o, "os") ? s_of(o, "os") : "?",
           s_of(o, "kernel") ? s_of(o, "kernel") : "?", s_of(o, "arch") ? s_of(o, "arch") : "?");
    json_t *a = json_object_get(o, "android");
    if (json_is_object(a))
        printf("  android   %s (sdk %s), abi %s, battery %g%%, thermal status %g\n",
               s_of(a, "release") ? s_of(a, "release") : "?",
               s_of(a, "sdk") ? s_of(a, "sdk") : "?", s_of(a, "abi") ? s_of(a, "abi") : "?",
               json_number_value(json_object_get(a, "battery_level")),
               json_number_value(json_object_get(a, "thermal_status")));
    printf("  cores     %g\n", json_number_value(json_object_get(o, "cores")));
    double total = json_number_value(json_object_get(o, "mem_total_bytes"));
    double avail = json_number_value(json_object_get(o, "mem_available_bytes"));
    if (total > 0)
        printf("  memory    %.1f GiB (%.1f GiB available)\n", total / 1073741824.0,
               avail / 1073741824.0);
    json_t *g = json_object_get(o, "governor");
    if (json_object_size(g)) {
        const char *k;
        json_t *v;
        printf("  governor ");
        json_object_foreach(g, k, v)
            printf(" %s=%s", k, json_string_value(v) ? json_string_value(v) : "?");
        putchar('\n');
    }
    print_temps(json_object_get(o, "temps_c"));
    json_t *j = json_object_get(o, "jetson");
    if (json_is_object(j)) {
        printf("  jetson    L4T %s, nvpmodel %s", s_of(j, "l4t") ? s_of(j, "l4t") : "?",
               s_of(j, "nvpmodel") ? s_of(j, "nvpmodel") : "?");
        if (json_object_get(j, "nvpmodel_id"))
            printf(" (%g)", json_number_value(json_object_get(j, "nvpmodel_id")));
        printf(", jetson_clocks %s\n", s_of(j, "jetson_clocks") ? s_of(j, "jetson_clocks") : "?");
    }
    json_decref(o);
}

static int print_json(const melt_device_report *r, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(r[i].name));
        json_object_set_new(o, "transport", json_string(r[i].transport));
        json_object_set_new(o, "where", r[i].where ? json_string(r[i].where) : json_null());
        json_object_set_new(o, "reachable", json_boolean(r[i].reachable));
        json_object_set_new(o, "reason", r[i].reason ? json_string(r[i].reason) : json_null());
        json_object_set_new(o, "from_experiment", json_boolean(r[i].from_experiment));
        json_t *info = r[i].info_json ? json_loads(r[i].info_json, 0, NULL) : NULL;
        json_object_set_new(o, "info", info ? info : json_null());
        json_array_append_new(arr, o);
    }
    int rc = json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(arr);
    return rc;
}

enum { OPT_JSON = CLI_OPT_FREE, OPT_AGENT };

int cmd_devices(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"agent", required_argument, NULL, OPT_AGENT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, as_json = 0;
    const char *agent = NULL;
    cli_getopt_reset();
    while ((c = cli_getopt(argc, argv, ":h", opts, usage_devices)) != -1) {
        switch (c) {
        case OPT_JSON: as_json = 1; break;
        case OPT_AGENT: agent = optarg; break;
        case 'h': usage_devices(stdout); return CLI_OK;
        default: return CLI_USAGE;
        }
    }
    if (optind + 1 < argc)
        return cli_usage_error(usage_devices, "devices: unexpected argument '%s'",
                               argv[optind + 1]);
    char buf[PATH_MAX];
    if (!agent)
        agent = default_agent(buf, sizeof buf);
    melt_error err = {0};
    /* Every probe (this machine's first) runs or pushes this file: a missing
     * one is the user's error, not a "reachable but undescribed" device. */
    if (strchr(agent, '/') && access(agent, X_OK) != 0) {
        melt_errorf(&err, MELT_ENOTFOUND, "agent '%s' not found or not executable (build it with "
                    "'make', or give --agent PATH or MELT_AGENT)", agent);
        return cli_fail(&err);
    }
    melt_experiment *e = NULL;
    if (optind < argc && melt_experiment_load(argv[optind], &e, &err) < 0)
        return cli_fail(&err);
    melt_device_report *r = NULL;
    size_t n = 0;
    if (melt_devices_probe(e, agent, &r, &n, &err) < 0) {
        melt_experiment_free(e);
        return cli_fail(&err);
    }
    int rc = CLI_OK;
    if (as_json) {
        if (print_json(r, n) < 0)
            rc = CLI_ERROR;
    } else {
        for (size_t i = 0; i < n; i++)
            print_text(&r[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (r[i].from_experiment && !r[i].reachable) {
            const char *why = r[i].reason ? r[i].reason : "not reachable";
            if (strncmp(why, "device '", 8) == 0)   /* the transport named it already */
                fprintf(stderr, "melt: %s\n", why);
            else
                fprintf(stderr, "melt: device '%s': %s\n", r[i].name, why);
            rc = CLI_ERROR;
        }
    melt_devices_free(r, n);
    melt_experiment_free(e);
    return rc;
}

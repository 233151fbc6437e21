/* The adb transport's reading of a phone's state (adb.c's state script:
 * sections "#governor", "#thermalservice", "#battery", "#zones") into one
 * JSON object: governor {policyN: name}, thermal_status, battery_level,
 * battery_temp_c, usb_powered, temps_c {zone type: C}. The text comes from
 * the device, so anything goes: unknown lines are skipped, numbers that do
 * not parse read as 0 (fuzzed: tests/fuzz/fuzz_adb_state.c). */
#include "transport/adb_state.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* "  key: value" -> value when the trimmed line starts with key. */
static const char *after_key(const char *line, const char *key)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0)
        return NULL;
    line += k;
    while (*line == ' ' || *line == '\t')
        line++;
    return line;
}

char *melt_adb_state_json(const char *text)
{
    char *out = strdup(text ? text : "");
    if (!out)
        return NULL;
    json_t *o = json_object(), *gov = json_object(), *zones = json_object();
    const char *sec = "";
    for (char *l = out; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = '\0';
        const char *v;
        if (l[0] == '#') {
            sec = l + 1;
        } else if (strcmp(sec, "governor") == 0) {
            /* /sys/devices/system/cpu/cpufreq/policyN/scaling_governor NAME */
            char *sp = strrchr(l, ' ');
            char *pol = strstr(l, "/policy");
            if (sp && pol && pol < sp) {
                char *end = strchr(pol + 1, '/');
                if (end && end < sp) {
                    *end = '\0';
                    json_object_set_new(gov, pol + 1, json_string(sp + 1));
                }
            }
        } else if (strcmp(sec, "thermalservice") == 0 && (v = after_key(l, "Thermal Status:"))) {
            json_object_set_new(o, "thermal_status", json_integer(strtol(v, NULL, 10)));
        } else if (strcmp(sec, "battery") == 0 && (v = after_key(l, "level:"))) {
            json_object_set_new(o, "battery_level", json_integer(strtol(v, NULL, 10)));
        } else if (strcmp(sec, "battery") == 0 && (v = after_key(l, "temperature:"))) {
            json_object_set_new(o, "battery_temp_c", json_real(strtod(v, NULL) / 10.0));
        } else if (strcmp(sec, "battery") == 0 && (v = after_key(l, "USB powered:"))) {
            json_object_set_new(o, "usb_powered", json_boolean(strncmp(v, "true", 4) == 0));
        } else if (strcmp(sec, "zones") == 0) {
            char *sp = strrchr(l, ' ');
            if (sp && sp != l && sp[1]) {
                *sp = '\0';
                json_object_set_new(zones, l, json_real(strtod(sp + 1, NULL) / 1000.0));
            }
        }
        l = nl ? nl + 1 : NULL;
    }
    if (json_object_size(gov))
        json_object_set(o, "governor", gov);
    if (json_object_size(zones))
        json_object_set(o, "temps_c", zones);
    json_decref(gov);
    json_decref(zones);
    char *json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10));
    json_decref(o);
    free(out);
    return json;
}


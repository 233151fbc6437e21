/* Fuzz target: the adb transport's reading of what a phone prints about
 * its state (src/transport/adb_state.c: governors, dumpsys thermalservice
 * and battery, thermal zones). Whatever the device sends, the result is
 * NULL only on out-of-memory and otherwise a JSON object that reads back;
 * its numbers are finite where present. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/adb_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';   /* adb's output is text: an embedded NUL ends it */
    char *json = melt_adb_state_json(text);
    free(text);
    if (!json)
        return 0;
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o))
        abort();
    json_t *v = json_object_get(o, "battery_temp_c");
    if (v && !isfinite(json_number_value(v)))
        abort();
    json_decref(o);
    free(json);
    return 0;
}

/* The phone state the adb transport records around a cell (adb_state.c). */
#ifndef MELT_TRANSPORT_ADB_STATE_H
#define MELT_TRANSPORT_ADB_STATE_H

/* The state script's output (text) as a JSON object text (malloc'd), or
 * NULL when out of memory. */
char *melt_adb_state_json(const char *text);

#endif

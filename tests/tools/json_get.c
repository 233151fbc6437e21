/* json_get: print one value of a JSON document, for shell tests.
 *
 *   json_get FILE PATH          the value at PATH in FILE
 *   json_get --sse FILE PATH    every "data: {...}" event of an SSE stream
 *                               in FILE: the values at PATH joined (events
 *                               without it, or with null there, are skipped; "[DONE]" ends it)
 *
 * PATH is dot-separated keys and array indexes ("choices.0.text"; "" is
 * the root). A string prints raw (no quotes, no newline), anything else as
 * compact JSON. Exit 1 when FILE is not JSON or PATH is absent (in
 * --sse mode: when no event has it), 2 on bad usage. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *at_path(json_t *v, const char *path)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf; v && *p;) {
        char *dot = strchr(p, '.');
        if (dot) *dot = '\0';
        if (json_is_array(v)) {
            char *end;
            const long i = strtol(p, &end, 10);
            v = *end ? NULL : json_array_get(v, (size_t)i);
        } else {
            v = json_object_get(v, p);
        }
        if (!dot) break;
        p = dot + 1;
    }
    return v;
}

static void print_value(json_t *v)
{
    if (json_is_string(v)) {
        fwrite(json_string_value(v), 1, json_string_length(v), stdout);
    } else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        if (s) fputs(s, stdout);
        free(s);
    }
}

static int sse(const char *file, const char *path)
{
    FILE *f = fopen(file, "r");
    if (!f) return 1;
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "data: ", 6) != 0) continue;
        if (strncmp(line + 6, "[DONE]", 6) == 0) break;
        json_t *o = json_loads(line + 6, 0, NULL);
        if (!o) {
            free(line);
            fclose(f);
            fprintf(stderr, "json_get: %s: an event is not JSON\n", file);
            return 1;
        }
        json_t *v = at_path(o, path);
        if (v && !json_is_null(v)) {
            print_value(v);
            found = 1;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return found ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--sse") == 0) return sse(argv[2], argv[3]);
    if (argc != 3) {
        fprintf(stderr, "usage: json_get [--sse] FILE PATH\n");
        return 2;
    }
    json_error_t e;
    json_t *o = json_load_file(argv[1], JSON_DECODE_ANY, &e);
    if (!o) {
        fprintf(stderr, "json_get: %s: %s\n", argv[1], e.text);
        return 1;
    }
    json_t *v = at_path(o, argv[2]);
    if (v) print_value(v);
    json_decref(o);
    return v ? 0 : 1;
}

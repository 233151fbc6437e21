/* Corpus replay for any libFuzzer target: feeds every file named on the
 * command line, and every file under each directory named (recursively, in
 * name order), to LLVMFuzzerTestOneInput once. Linked with gcc in
 * `make test`, so each corpus file stays a regression test without clang.
 * Exit status: 0 when every input ran, 1 when a path could not be read or
 * nothing was found (a crash ends the process on its own). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path, unsigned long *n_files)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        return 1;
    }
    /* An exact-size copy, so ASan catches a read one past the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return 1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*n_files)++;
    return 0;
}

static int replay_path(const char *path, unsigned long *n_files);

static int replay_dir(const char *dir, unsigned long *n_files)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (name[0] != '.') {
            size_t len = strlen(dir) + strlen(name) + 2;
            char *child = malloc(len);
            if (child) {
                snprintf(child, len, "%s/%s", dir, name);
                bad |= replay_path(child, n_files);
                free(child);
            } else {
                bad = 1;
            }
        }
        free(names[i]);
    }
    free(names);
    return bad;
}

static int replay_path(const char *path, unsigned long *n_files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (S_ISDIR(st.st_mode))
        return replay_dir(path, n_files);
    return replay_file(path, n_files);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    unsigned long n_files = 0;
    int bad = 0;
    for (int i = 1; i < argc; i++)
        bad |= replay_path(argv[i], &n_files);
    printf("replayed %lu inputs\n", n_files);
    if (n_files == 0) {
        fprintf(stderr, "no inputs found\n");
        return 1;
    }
    return bad;
}

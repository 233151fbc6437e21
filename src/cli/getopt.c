/* Quiet getopt_long wrapper: one-line errors in melt's format. */
#include <string.h>

#include "cli/cli.h"

void cli_getopt_reset(void)
{
    optind = 0; /* glibc: 0 re-initializes completely */
    opterr = 0;
}

int cli_getopt(int argc, char **argv, const char *shortopts,
               const struct option *longopts, void (*usage)(FILE *))
{
    int c = getopt_long(argc, argv, shortopts, longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
    if (c == ':') {
        cli_usage_error(usage, "%s: option '%s' needs a value", argv[0], arg);
    } else if (optopt && !(arg[0] == '-' && arg[1] == '-')) {
        cli_usage_error(usage, "%s: unknown option '-%c'", argv[0], optopt);
    } else {
        cli_usage_error(usage, "%s: unknown option '%s'", argv[0], arg);
    }
    return '?';
}

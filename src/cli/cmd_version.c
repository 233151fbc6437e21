/* melt version / melt --version */
#include <stdio.h>

#include "cli/cli.h"
#include "melt/cpu.h"
#include "melt_version.h"

void usage_version(FILE *out)
{
    fputs("usage: melt version | melt --version\n"
          "Print melt's version, git commit, compiler, target and the CPU\n"
          "features detected on this machine.\n", out);
}

static const char *target_arch(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#elif defined(__arm__)
    return "arm";
#elif defined(__riscv)
    return "riscv";
#else
    return "unknown";
#endif
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1)
        return cli_usage_error(usage_version, "unexpected argument '%s'", argv[1]);
    char feats[256], model[256];
    printf("melt %s\n", MELT_VERSION);
    printf("commit:   %s\n", MELT_GIT_COMMIT);
#if defined(__clang__)
    printf("compiler: clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    printf("compiler: gcc %s\n", __VERSION__);
#else
    printf("compiler: unknown\n");
#endif
    printf("target:   %s\n", target_arch());
    printf("cpu:      %s\n", melt_cpu_model_name(model, sizeof model));
    printf("features: %s\n", melt_cpu_features_str(melt_cpu_detect(), feats, sizeof feats));
    return CLI_OK;
}

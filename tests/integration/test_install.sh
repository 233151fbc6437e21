# make install lays out binary, headers, library and pkg-config file, and a
# program can be built against the installed library with pkg-config.
. "$ROOT/tests/integration/lib.sh"
P="$T/prefix"
san=${MELT_SANITIZE:-}
check "install_runs" make -s -C "$ROOT" install BUILD="$BUILD" SANITIZE="$san" PREFIX="$P"
for f in bin/melt include/melt/gguf.h include/melt/quant.h include/melt/error.h \
    lib/libmelt.a lib/pkgconfig/melt.pc; do
    if [ -f "$P/$f" ]; then _report "install_has_$f" 1 ""; else _report "install_has_$f" 0 "missing $P/$f"; fi
done
check "installed_binary_runs" "$P/bin/melt" --version
cat >"$T/use.c" <<'C'
#include <stdio.h>
#include <melt/gguf.h>
#include <melt/types.h>
int main(int argc, char **argv)
{
    melt_error err = {0};
    melt_gguf *g = NULL;
    if (melt_gguf_open(argv[1], &g, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("%llu tensors, type12=%s\n", (unsigned long long)melt_gguf_n_tensors(g), melt_type_name(12));
    melt_gguf_close(g);
    return argc > 2;
}
C
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkgconfig_knows_melt" pkg-config --exists melt
flags=$(pkg-config --cflags --libs --static melt)
# A sanitizer build's library needs the sanitizer runtime at link time.
[ -z "$san" ] || flags="$flags -fsanitize=$san"
check "build_against_installed" cc -std=c11 -o "$T/use" "$T/use.c" $flags
check "program_uses_installed_lib" "$T/use" "$FIX/stories260K/stories260K.gguf"
expect "program_output" "$T/out" '^48 tensors, type12=q4_K$'
finish

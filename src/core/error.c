#include "melt/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int melt_errorf(melt_error *err, int code, const char *fmt, ...)
{
    if (err) {
        /* Format into a copy first: callers may pass err->msg itself as an
         * argument to add context ("device 'x': %s", err->msg). */
        char msg[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        memcpy(err->msg, msg, sizeof msg);
        err->code = code;
    }
    return code;
}

void melt_error_clear(melt_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *melt_status_str(int code)
{
    switch (code) {
    case MELT_OK: return "ok";
    case MELT_EIO: return "I/O error";
    case MELT_EFORMAT: return "format error";
    case MELT_ENOMEM: return "out of memory";
    case MELT_EINVAL: return "invalid argument";
    case MELT_EUNSUPPORTED: return "unsupported";
    case MELT_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}

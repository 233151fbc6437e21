/* SQLite backend internals exposed for tests (schema migrations). */
#ifndef MELT_STORE_SQLITE_INTERNAL_H
#define MELT_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store/store_internal.h"

/* Newest schema version this build knows. */
#define MELT_SQLITE_SCHEMA_LATEST MELT_STORE_SCHEMA_LATEST

/* Bring db to schema version target (1..MELT_SQLITE_SCHEMA_LATEST), applying
 * the migrations in order in one transaction; *version gets the version
 * found before. A db newer than this build is MELT_EUNSUPPORTED. */
int melt_sqlite_migrate(sqlite3 *db, const char *path, int target, int *version,
                        melt_error *err);

#endif

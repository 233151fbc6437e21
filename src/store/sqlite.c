/* The SQLite store backend: one file, WAL, ordered schema migrations,
 * events appended in one transaction per batch with a prepared statement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "melt_version.h"
#include "store/sqlite_internal.h"

typedef struct sq {
    sqlite3 *db;
    char *path;
    int version;
    sqlite3_stmt *ins_event;
} sq;

/* ---- migrations ------------------------------------------------------- */

/* Migration k brings the schema from version k-1 to k. Never edit one
 * that has shipped: add the next. */
static const struct { const char *what, *sql; } migrations[] = {
    {"runs, cells, trials, events",
     "CREATE TABLE runs ("
     "  id INTEGER PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  status TEXT NOT NULL DEFAULT 'running',"
     "  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
     "  finished_at TEXT,"
     "  melt_version TEXT, melt_commit TEXT, host TEXT,"
     "  experiment TEXT);"
     "CREATE TABLE cells ("
     "  id INTEGER PRIMARY KEY,"
     "  run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
     "  cell_id TEXT NOT NULL,"
     "  device TEXT, engine TEXT, model TEXT, workload TEXT,"
     "  device_model TEXT, kernel TEXT, governor TEXT, cpu_features TEXT, model_sha256 TEXT,"
     "  UNIQUE (run, cell_id));"
     "CREATE TABLE trials ("
     "  id INTEGER PRIMARY KEY,"
     "  cell INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,"
     "  repetition INTEGER NOT NULL,"
     "  warmup INTEGER NOT NULL DEFAULT 0,"
     "  status TEXT NOT NULL DEFAULT 'running'"
     "    CHECK (status IN ('running','ok','lost','interrupted','error')),"
     "  started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),"
     "  finished_at TEXT);"
     "CREATE INDEX trials_by_cell ON trials(cell, repetition);"
     "CREATE TABLE events ("
     "  trial INTEGER NOT NULL REFERENCES trials(id) ON DELETE CASCADE,"
     "  seq INTEGER NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  t_ns INTEGER NOT NULL,"
     "  req INTEGER, i INTEGER, id INTEGER, value REAL,"
     "  name TEXT, key TEXT, unit TEXT, msg TEXT,"
     "  PRIMARY KEY (trial, seq)) WITHOUT ROWID;"},
    {"summaries, samples view, trial clock alignment",
     "ALTER TABLE trials ADD COLUMN clock_offset_ns INTEGER;"
     "ALTER TABLE trials ADD COLUMN clock_rtt_ns INTEGER;"
     "CREATE TABLE summaries ("
     "  id INTEGER PRIMARY KEY,"
     "  run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
     "  cell INTEGER NOT NULL DEFAULT 0,"
     "  trial INTEGER NOT NULL DEFAULT 0,"
     "  metric TEXT NOT NULL, unit TEXT,"
     "  n INTEGER NOT NULL, mean REAL, stddev REAL, ci95 REAL,"
     "  min REAL, median REAL, max REAL,"
     "  UNIQUE (run, cell, trial, metric));"
     "CREATE VIEW samples AS"
     "  SELECT trial, seq, t_ns, name AS probe, key, value, unit"
     "  FROM events WHERE kind = 'sample';"},
    {"clock sync estimates before and after each cell",
     "CREATE TABLE clock_syncs ("
     "  id INTEGER PRIMARY KEY,"
     "  cell INTEGER NOT NULL REFERENCES cells(id) ON DELETE CASCADE,"
     "  at TEXT NOT NULL CHECK (at IN ('before','after')),"
     "  host_ns INTEGER NOT NULL, offset_ns INTEGER NOT NULL,"
     "  uncertainty_ns INTEGER NOT NULL, rtt_ns INTEGER NOT NULL,"
     "  rounds INTEGER NOT NULL);"
     "CREATE INDEX clock_syncs_by_cell ON clock_syncs(cell, id);"},
};

_Static_assert(sizeof migrations / sizeof migrations[0] == MELT_SQLITE_SCHEMA_LATEST,
               "one migration per schema version");

static int db_fail(sqlite3 *db, const char *path, melt_error *err, const char *what)
{
    const int code = sqlite3_errcode(db);
    if (code == SQLITE_NOTADB)
        return melt_errorf(err, MELT_EFORMAT, "%s: not a melt database (%s)", path,
                           sqlite3_errmsg(db));
    return melt_errorf(err, MELT_EIO, "%s: %s: %s", path, what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *path, const char *sql, melt_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        const bool notadb = sqlite3_errcode(db) == SQLITE_NOTADB;
        int rc = melt_errorf(err, notadb ? MELT_EFORMAT : MELT_EIO, "%s: %s%s", path,
                             notadb ? "not a melt database: " : "", msg ? msg : "sqlite error");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* One integer from a query, or def when it returns no row. */
static int query_int(sqlite3 *db, const char *sql, int64_t def, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL
           ? sqlite3_column_int64(st, 0) : def;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int melt_sqlite_migrate(sqlite3 *db, const char *path, int target, int *version, melt_error *err)
{
    int rc = exec(db, path, "BEGIN IMMEDIATE", err);
    if (rc < 0)
        return rc;
    int64_t have_table = 0, n_tables = 0, v = 0;
    if (query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_version'",
                  0, &have_table) != SQLITE_OK ||
        query_int(db, "SELECT count(*) FROM sqlite_master", 0, &n_tables) != SQLITE_OK) {
        rc = db_fail(db, path, err, "reading the schema");
        goto fail;
    }
    if (!have_table && n_tables > 0) {
        rc = melt_errorf(err, MELT_EFORMAT,
                         "%s: a SQLite database but not a melt store (no schema_version table)",
                         path);
        goto fail;
    }
    if (have_table && query_int(db, "SELECT max(version) FROM schema_version", 0, &v) != SQLITE_OK) {
        rc = db_fail(db, path, err, "reading schema_version");
        goto fail;
    }
    if (version)
        *version = (int)v;
    if (v > MELT_SQLITE_SCHEMA_LATEST) {
        rc = melt_errorf(err, MELT_EUNSUPPORTED,
                         "%s: schema version %lld was written by a newer melt (this one knows "
                         "up to %d); upgrade melt to read it", path, (long long)v,
                         MELT_SQLITE_SCHEMA_LATEST);
        goto fail;
    }
    if (!have_table &&
        (rc = exec(db, path, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
                   " description TEXT NOT NULL,"
                   " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
                   err)) < 0)
        goto fail;
    for (int k = (int)v + 1; k <= target && k <= MELT_SQLITE_SCHEMA_LATEST; k++) {
        if ((rc = exec(db, path, migrations[k - 1].sql, err)) < 0)
            goto fail;
        char *ins = sqlite3_mprintf("INSERT INTO schema_version(version, description) "
                                    "VALUES (%d, %Q)", k, migrations[k - 1].what);
        if (!ins) {
            rc = melt_errorf(err, MELT_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        rc = exec(db, path, ins, err);
        sqlite3_free(ins);
        if (rc < 0)
            goto fail;
    }
    return exec(db, path, "COMMIT", err);
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- open / close ----------------------------------------------------- */

static bool sq_accepts(const char *location)
{
    return strstr(location, "://") == NULL || strncmp(location, "file:", 5) == 0;
}

static void sq_close(void *impl)
{
    sq *s = impl;
    if (!s)
        return;
    sqlite3_finalize(s->ins_event);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

static int sq_open(const char *location, void **impl, melt_error *err)
{
    sq *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(location))) {
        free(s);
        return melt_errorf(err, MELT_ENOMEM, "store: out of memory");
    }
    int rc;
    if (sqlite3_open_v2(location, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        rc = melt_errorf(err, MELT_EIO, "%s: cannot open: %s", location,
                         s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if ((rc = exec(s->db, location, "PRAGMA foreign_keys=ON", err)) < 0)
        goto fail;
    if ((rc = melt_sqlite_migrate(s->db, location, MELT_SQLITE_SCHEMA_LATEST, NULL, err)) < 0)
        goto fail;
    /* WAL: readers do not block the writer; NORMAL sync is durable across
     * a process crash and loses at most the last commits on power loss. */
    if ((rc = exec(s->db, location, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL", err)) < 0)
        goto fail;
    s->version = MELT_SQLITE_SCHEMA_LATEST;
    if (sqlite3_prepare_v3(s->db,
                           "INSERT INTO events(trial, seq, kind, t_ns, req, i, id, value, name,"
                           " key, unit, msg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", -1,
                           SQLITE_PREPARE_PERSISTENT, &s->ins_event, NULL) != SQLITE_OK) {
        rc = db_fail(s->db, location, err, "preparing the event insert");
        goto fail;
    }
    *impl = s;
    return 0;
fail:
    sq_close(s);
    return rc;
}

static int sq_schema_version(const void *impl) { return ((const sq *)impl)->version; }

/* ---- statements ------------------------------------------------------- */

static int prep(sq *s, const char *sql, sqlite3_stmt **st, melt_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(s->db, s->path, err, "preparing a query");
    return 0;
}

static void bind_text(sqlite3_stmt *st, int k, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, k, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, k);
}

static void bind_real(sqlite3_stmt *st, int k, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, k, v);
    else
        sqlite3_bind_null(st, k);
}

/* Step a write statement to completion, finalize it. */
static int run_stmt(sq *s, sqlite3_stmt *st, const char *what, melt_error *err)
{
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(s->db, s->path, err, what);
    sqlite3_finalize(st);
    return out;
}

static int require_changed(sq *s, const char *what, int64_t id, melt_error *err)
{
    if (sqlite3_changes(s->db) == 0)
        return melt_errorf(err, MELT_ENOTFOUND, "%s: no %s with id %lld", s->path, what,
                           (long long)id);
    return 0;
}

/* ---- writing ---------------------------------------------------------- */

static int sq_begin_run(void *impl, const melt_run_meta *m, int64_t *run_id, melt_error *err)
{
    sq *s = impl;
    char host[256] = "";
    if (!m->host && gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO runs(name, melt_version, melt_commit, host, experiment)"
                  " VALUES (?,?,?,?,?)", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, m->name && *m->name ? m->name : "unnamed", -1, SQLITE_TRANSIENT);
    bind_text(st, 2, m->melt_version ? m->melt_version : MELT_VERSION);
    bind_text(st, 3, m->melt_commit ? m->melt_commit : MELT_GIT_COMMIT);
    bind_text(st, 4, m->host ? m->host : host);
    bind_text(st, 5, m->experiment);
    if ((rc = run_stmt(s, st, "adding a run", err)) < 0)
        return rc;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int sq_end_run(void *impl, int64_t run_id, const char *status, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "UPDATE runs SET status = ?, finished_at = "
                  "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run_id);
    if ((rc = run_stmt(s, st, "ending a run", err)) < 0)
        return rc;
    return require_changed(s, "run", run_id, err);
}

static int sq_add_cell(void *impl, int64_t run_id, const melt_cell_meta *c, int64_t *rowid,
                       melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO cells(run, cell_id, device, engine, model, workload,"
                  " device_model, kernel, governor, cpu_features, model_sha256)"
                  " VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)"
                  " ON CONFLICT(run, cell_id) DO UPDATE SET"
                  " device = coalesce(?3, device), engine = coalesce(?4, engine),"
                  " model = coalesce(?5, model), workload = coalesce(?6, workload),"
                  " device_model = coalesce(?7, device_model), kernel = coalesce(?8, kernel),"
                  " governor = coalesce(?9, governor),"
                  " cpu_features = coalesce(?10, cpu_features),"
                  " model_sha256 = coalesce(?11, model_sha256)"
                  " RETURNING id", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, c->cell_id, -1, SQLITE_TRANSIENT);
    const char *v[9] = {c->device_json, c->engine_json, c->model_json, c->workload_json,
                        c->device_model, c->kernel, c->governor, c->cpu_features,
                        c->model_sha256};
    for (int k = 0; k < 9; k++)
        bind_text(st, 3 + k, v[k]);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *rowid = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_finalize(st);
    if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
        return melt_errorf(err, MELT_ENOTFOUND, "%s: no run with id %lld", s->path,
                           (long long)run_id);
    return db_fail(s->db, s->path, err, "adding a cell");
}

static int sq_begin_trial(void *impl, int64_t cell, int repetition, bool warmup,
                          int64_t *trial_id, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO trials(cell, repetition, warmup) VALUES (?,?,?)", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, cell);
    sqlite3_bind_int(st, 2, repetition);
    sqlite3_bind_int(st, 3, warmup ? 1 : 0);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            return melt_errorf(err, MELT_ENOTFOUND, "%s: no cell with id %lld", s->path,
                               (long long)cell);
        return db_fail(s->db, s->path, err, "adding a trial");
    }
    *trial_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

static int sq_add_events(void *impl, int64_t trial, const melt_event *ev, size_t n,
                         melt_error *err)
{
    sq *s = impl;
    int64_t seq = 0;
    int rc = exec(s->db, s->path, "BEGIN IMMEDIATE", err);
    if (rc < 0)
        return rc;
    {
        sqlite3_stmt *q;
        if ((rc = prep(s, "SELECT (SELECT count(*) FROM trials WHERE id = ?1),"
                       " coalesce((SELECT max(seq) + 1 FROM events WHERE trial = ?1), 0)",
                       &q, err)) < 0)
            goto fail;
        sqlite3_bind_int64(q, 1, trial);
        int64_t exists = 0;
        if (sqlite3_step(q) == SQLITE_ROW) {
            exists = sqlite3_column_int64(q, 0);
            seq = sqlite3_column_int64(q, 1);
        }
        sqlite3_finalize(q);
        if (!exists) {
            rc = melt_errorf(err, MELT_ENOTFOUND, "%s: no trial with id %lld", s->path,
                             (long long)trial);
            goto fail;
        }
    }
    sqlite3_stmt *st = s->ins_event;
    for (size_t k = 0; k < n; k++, seq++) {
        const melt_event *e = &ev[k];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, trial);
        sqlite3_bind_int64(st, 2, seq);
        sqlite3_bind_text(st, 3, melt_event_kind_name(e->kind), -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, e->t_ns);
        if (e->req >= 0) sqlite3_bind_int(st, 5, e->req); else sqlite3_bind_null(st, 5);
        if (e->i >= 0) sqlite3_bind_int(st, 6, e->i); else sqlite3_bind_null(st, 6);
        if (e->id >= 0) sqlite3_bind_int(st, 7, e->id); else sqlite3_bind_null(st, 7);
        if (e->has_value) bind_real(st, 8, e->value); else sqlite3_bind_null(st, 8);
        /* The event outlives the step: no copies. Text fields are bounded
         * by their arrays even if a caller forgot the terminator. */
        const char *txt[4] = {e->name, e->key, e->unit, e->msg};
        const size_t cap[4] = {sizeof e->name, sizeof e->key, sizeof e->unit, sizeof e->msg};
        for (int f = 0; f < 4; f++) {
            const size_t len = strnlen(txt[f], cap[f]);
            if (len)
                sqlite3_bind_text(st, 9 + f, txt[f], (int)len, SQLITE_STATIC);
            else
                sqlite3_bind_null(st, 9 + f);
        }
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_fail(s->db, s->path, err, "storing events");
            sqlite3_reset(st);
            goto fail;
        }
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return exec(s->db, s->path, "COMMIT", err);
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_set_trial_clock(void *impl, int64_t trial, int64_t offset_ns, int64_t rtt_ns,
                              melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "UPDATE trials SET clock_offset_ns = ?, clock_rtt_ns = ? WHERE id = ?",
                  &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, offset_ns);
    sqlite3_bind_int64(st, 2, rtt_ns);
    sqlite3_bind_int64(st, 3, trial);
    if ((rc = run_stmt(s, st, "setting a trial's clock", err)) < 0)
        return rc;
    return require_changed(s, "trial", trial, err);
}

static int grow(void **v, size_t *cap, size_t n, size_t elem);
static void col_text_into(sqlite3_stmt *st, int k, char *dst, size_t cap);

static int sq_add_clock_sync(void *impl, const melt_clock_sync_row *row, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "INSERT INTO clock_syncs (cell, at, host_ns, offset_ns, uncertainty_ns,"
                  " rtt_ns, rounds) VALUES (?, ?, ?, ?, ?, ?, ?)", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, row->cell_rowid);
    sqlite3_bind_text(st, 2, row->at, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, row->host_ns);
    sqlite3_bind_int64(st, 4, row->offset_ns);
    sqlite3_bind_int64(st, 5, row->uncertainty_ns);
    sqlite3_bind_int64(st, 6, row->rtt_ns);
    sqlite3_bind_int(st, 7, row->rounds);
    return run_stmt(s, st, "storing a clock sync", err);
}

static int sq_list_clock_syncs(void *impl, int64_t cell, melt_clock_sync_row **rows, size_t *n,
                               melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT cell, at, host_ns, offset_ns, uncertainty_ns, rtt_ns, rounds"
                  " FROM clock_syncs WHERE cell = ? ORDER BY id", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, cell);
    melt_clock_sync_row *v = NULL;
    size_t cnt = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        melt_clock_sync_row *r = &v[cnt++];
        r->cell_rowid = sqlite3_column_int64(st, 0);
        col_text_into(st, 1, r->at, sizeof r->at);
        r->host_ns = sqlite3_column_int64(st, 2);
        r->offset_ns = sqlite3_column_int64(st, 3);
        r->uncertainty_ns = sqlite3_column_int64(st, 4);
        r->rtt_ns = sqlite3_column_int64(st, 5);
        r->rounds = sqlite3_column_int(st, 6);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return rc == SQLITE_NOMEM ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                                  : db_fail(s->db, s->path, err, "listing clock syncs");
    }
    *rows = v;
    *n = cnt;
    return 0;
}

static int sq_end_trial(void *impl, int64_t trial, enum melt_trial_status status,
                        melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "UPDATE trials SET status = ?, finished_at = "
                  "strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, melt_trial_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, trial);
    if ((rc = run_stmt(s, st, "ending a trial", err)) < 0)
        return rc;
    return require_changed(s, "trial", trial, err);
}

static int sq_put_summaries(void *impl, const melt_summary_row *rows, size_t n, melt_error *err)
{
    sq *s = impl;
    int rc = exec(s->db, s->path, "BEGIN IMMEDIATE", err);
    if (rc < 0)
        return rc;
    sqlite3_stmt *st;
    if ((rc = prep(s, "INSERT OR REPLACE INTO summaries(run, cell, trial, metric, unit, n,"
                   " mean, stddev, ci95, min, median, max) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   &st, err)) < 0)
        goto fail;
    for (size_t k = 0; k < n; k++) {
        const melt_summary_row *r = &rows[k];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, r->run_id);
        sqlite3_bind_int64(st, 2, r->cell_rowid > 0 ? r->cell_rowid : 0);
        sqlite3_bind_int64(st, 3, r->trial_id > 0 ? r->trial_id : 0);
        sqlite3_bind_text(st, 4, r->metric, -1, SQLITE_STATIC);
        bind_text(st, 5, r->unit);
        sqlite3_bind_int64(st, 6, r->n);
        const double v[6] = {r->mean, r->stddev, r->ci95, r->min, r->median, r->max};
        for (int f = 0; f < 6; f++)
            bind_real(st, 7 + f, v[f]);
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = db_fail(s->db, s->path, err, "storing summaries");
            sqlite3_finalize(st);
            goto fail;
        }
    }
    sqlite3_finalize(st);
    return exec(s->db, s->path, "COMMIT", err);
fail:
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- reading ---------------------------------------------------------- */

/* Column k's text into dst[cap] ("" for NULL), cut to fit. */
static void col_text_into(sqlite3_stmt *st, int k, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, k);
    if (!t) {
        dst[0] = '\0';
        return;
    }
    size_t len = (size_t)sqlite3_column_bytes(st, k);
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, t, len);
    dst[len] = '\0';
}

static char *col_dup(sqlite3_stmt *st, int k, bool *oom)
{
    const unsigned char *t = sqlite3_column_text(st, k);
    if (!t)
        return NULL;
    char *d = strdup((const char *)t);
    if (!d)
        *oom = true;
    return d;
}

/* Grow *v (of elem bytes) to hold n + 1 items. */
static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, c * elem);
    if (!p)
        return -1;
    memset((char *)p + *cap * elem, 0, (c - *cap) * elem);
    *v = p;
    *cap = c;
    return 0;
}

#define RUN_COLS \
    "SELECT r.id, r.name, r.status, r.started_at, coalesce(r.finished_at, ''),"            \
    " coalesce(r.melt_version, ''), coalesce(r.melt_commit, ''), coalesce(r.host, ''),"    \
    " (SELECT count(*) FROM cells c WHERE c.run = r.id),"                                   \
    " (SELECT count(*) FROM trials t JOIN cells c ON t.cell = c.id WHERE c.run = r.id"     \
    "   AND t.warmup = 0),"                                                                 \
    " (SELECT count(*) FROM trials t JOIN cells c ON t.cell = c.id WHERE c.run = r.id"     \
    "   AND t.warmup = 0 AND t.status = 'ok')"                                              \
    " FROM runs r "

static void read_run(sqlite3_stmt *st, melt_run_info *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(st, 0);
    col_text_into(st, 1, r->name, sizeof r->name);
    col_text_into(st, 2, r->status, sizeof r->status);
    col_text_into(st, 3, r->started, sizeof r->started);
    col_text_into(st, 4, r->finished, sizeof r->finished);
    col_text_into(st, 5, r->melt_version, sizeof r->melt_version);
    col_text_into(st, 6, r->melt_commit, sizeof r->melt_commit);
    col_text_into(st, 7, r->host, sizeof r->host);
    r->n_cells = sqlite3_column_int64(st, 8);
    r->n_trials = sqlite3_column_int64(st, 9);
    r->n_trials_ok = sqlite3_column_int64(st, 10);
}

static int sq_list_runs(void *impl, melt_run_info **runs, size_t *n, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, RUN_COLS "ORDER BY r.id", &st, err);
    if (rc < 0)
        return rc;
    melt_run_info *v = NULL;
    size_t cnt = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        read_run(st, &v[cnt++]);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return rc == SQLITE_NOMEM ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                                  : db_fail(s->db, s->path, err, "listing runs");
    }
    *runs = v;
    *n = cnt;
    return 0;
}

static int sq_find_run(void *impl, const char *spec, melt_run_info *run, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    char *end;
    const long long id = strtoll(spec, &end, 10);
    const bool numeric = *spec && *end == '\0';
    const bool last = !strcmp(spec, "last") || !strcmp(spec, "latest");
    int rc = prep(s, numeric ? RUN_COLS "WHERE r.id = ?"
                  : last ? RUN_COLS "ORDER BY r.id DESC LIMIT 1"
                  : RUN_COLS "WHERE r.name = ? ORDER BY r.id DESC LIMIT 1", &st, err);
    if (rc < 0)
        return rc;
    if (numeric)
        sqlite3_bind_int64(st, 1, id);
    else if (!last)
        sqlite3_bind_text(st, 1, spec, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_run(st, run);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc != SQLITE_DONE)
        return db_fail(s->db, s->path, err, "finding a run");
    if (last)
        return melt_errorf(err, MELT_ENOTFOUND, "%s: no runs stored yet", s->path);
    return melt_errorf(err, MELT_ENOTFOUND, "%s: no run %s '%s' (melt results ls lists them)",
                       s->path, numeric ? "with id" : "named", spec);
}

static int sq_run_experiment(void *impl, int64_t run_id, char **text, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT experiment FROM runs WHERE id = ?", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    *text = NULL;
    bool oom = false;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *text = col_dup(st, 0, &oom);
    sqlite3_finalize(st);
    if (oom)
        return melt_errorf(err, MELT_ENOMEM, "store: out of memory");
    if (rc == SQLITE_DONE)
        return melt_errorf(err, MELT_ENOTFOUND, "%s: no run with id %lld", s->path,
                           (long long)run_id);
    return rc == SQLITE_ROW ? 0 : db_fail(s->db, s->path, err, "reading a run");
}

static int sq_list_cells(void *impl, int64_t run_id, melt_cell_info **cells, size_t *n,
                         melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT id, cell_id, device, engine, model, workload, device_model, kernel,"
                  " governor, cpu_features, model_sha256 FROM cells WHERE run = ? ORDER BY id",
                  &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    melt_cell_info *v = NULL;
    size_t cnt = 0, cap = 0;
    bool oom = false;
    while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            oom = true;
            break;
        }
        melt_cell_info *c = &v[cnt++];
        c->rowid = sqlite3_column_int64(st, 0);
        c->cell_id = col_dup(st, 1, &oom);
        c->device_json = col_dup(st, 2, &oom);
        c->engine_json = col_dup(st, 3, &oom);
        c->model_json = col_dup(st, 4, &oom);
        c->workload_json = col_dup(st, 5, &oom);
        c->device_model = col_dup(st, 6, &oom);
        c->kernel = col_dup(st, 7, &oom);
        c->governor = col_dup(st, 8, &oom);
        c->cpu_features = col_dup(st, 9, &oom);
        c->model_sha256 = col_dup(st, 10, &oom);
    }
    sqlite3_finalize(st);
    if (oom || rc != SQLITE_DONE) {
        melt_store_free_cells(v, cnt);
        return oom ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                   : db_fail(s->db, s->path, err, "listing cells");
    }
    *cells = v;
    *n = cnt;
    return 0;
}

static int sq_list_trials(void *impl, int64_t cell, melt_trial_info **trials, size_t *n,
                          melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT t.id, t.cell, t.repetition, t.warmup, t.status,"
                  " (SELECT count(*) FROM events e WHERE e.trial = t.id),"
                  " t.clock_offset_ns, t.clock_rtt_ns"
                  " FROM trials t WHERE t.cell = ? ORDER BY t.warmup DESC, t.repetition, t.id",
                  &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, cell);
    melt_trial_info *v = NULL;
    size_t cnt = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        melt_trial_info *t = &v[cnt++];
        t->id = sqlite3_column_int64(st, 0);
        t->cell_rowid = sqlite3_column_int64(st, 1);
        t->repetition = sqlite3_column_int(st, 2);
        t->warmup = sqlite3_column_int(st, 3) != 0;
        const unsigned char *status = sqlite3_column_text(st, 4);
        if (!melt_trial_status_parse((const char *)status, &t->status))
            t->status = MELT_TRIAL_ERROR;
        t->n_events = sqlite3_column_int64(st, 5);
        t->has_clock = sqlite3_column_type(st, 6) != SQLITE_NULL;
        t->clock_offset_ns = sqlite3_column_int64(st, 6);
        t->clock_rtt_ns = sqlite3_column_int64(st, 7);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return rc == SQLITE_NOMEM ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                                  : db_fail(s->db, s->path, err, "listing trials");
    }
    *trials = v;
    *n = cnt;
    return 0;
}

static int sq_get_events(void *impl, int64_t trial, melt_event **out, size_t *n, melt_error *err)
{
    sq *s = impl;
    int64_t count = 0;
    char *sql = sqlite3_mprintf("SELECT count(*) FROM events WHERE trial = %lld", (long long)trial);
    if (!sql)
        return melt_errorf(err, MELT_ENOMEM, "store: out of memory");
    int rc = query_int(s->db, sql, 0, &count);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return db_fail(s->db, s->path, err, "counting events");
    melt_event *v = calloc(count ? (size_t)count : 1, sizeof *v);
    if (!v)
        return melt_errorf(err, MELT_ENOMEM, "store: out of memory for %lld events",
                           (long long)count);
    sqlite3_stmt *st;
    if ((rc = prep(s, "SELECT kind, t_ns, req, i, id, value, name, key, unit, msg FROM events"
                   " WHERE trial = ? ORDER BY seq", &st, err)) < 0) {
        free(v);
        return rc;
    }
    sqlite3_bind_int64(st, 1, trial);
    size_t k = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && k < (size_t)count) {
        melt_event *e = &v[k++];
        const unsigned char *kind = sqlite3_column_text(st, 0);
        if (!kind || !melt_event_kind_parse((const char *)kind, &e->kind))
            e->kind = MELT_EV_ERROR;
        e->t_ns = sqlite3_column_int64(st, 1);
        e->req = sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 2);
        e->i = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
        e->id = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 4);
        e->has_value = sqlite3_column_type(st, 5) != SQLITE_NULL;
        e->value = e->has_value ? sqlite3_column_double(st, 5) : 0;
        col_text_into(st, 6, e->name, sizeof e->name);
        col_text_into(st, 7, e->key, sizeof e->key);
        col_text_into(st, 8, e->unit, sizeof e->unit);
        col_text_into(st, 9, e->msg, sizeof e->msg);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        free(v);
        return db_fail(s->db, s->path, err, "reading events");
    }
    *out = v;
    *n = k;
    return 0;
}

static int sq_get_trial_figures(void *impl, int64_t run, int64_t trial, melt_trial_figure **figs,
                                size_t *n, melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    /* (run, cell, trial) leads the unique index: no table scan */
    int rc = prep(s, "SELECT metric, unit, mean FROM summaries"
                  " WHERE run = ? AND cell = 0 AND trial = ? ORDER BY id", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, trial);
    melt_trial_figure *v = NULL;
    size_t cnt = 0, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        melt_trial_figure *f = &v[cnt++];
        col_text_into(st, 0, f->metric, sizeof f->metric);
        col_text_into(st, 1, f->unit, sizeof f->unit);
        f->value = sqlite3_column_type(st, 2) == SQLITE_NULL ? NAN : sqlite3_column_double(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        return rc == SQLITE_NOMEM ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                                  : db_fail(s->db, s->path, err, "reading trial figures");
    }
    *figs = v;
    *n = cnt;
    return 0;
}

static int sq_completed_trials(void *impl, int64_t run_id, melt_trial_key **keys, size_t *n,
                               melt_error *err)
{
    sq *s = impl;
    sqlite3_stmt *st;
    int rc = prep(s, "SELECT DISTINCT c.cell_id, t.repetition FROM trials t"
                  " JOIN cells c ON t.cell = c.id"
                  " WHERE c.run = ? AND t.warmup = 0 AND t.status = 'ok'"
                  " ORDER BY c.id, t.repetition", &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int64(st, 1, run_id);
    melt_trial_key *v = NULL;
    size_t cnt = 0, cap = 0;
    bool oom = false;
    while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (grow((void **)&v, &cap, cnt, sizeof *v) < 0) {
            oom = true;
            break;
        }
        v[cnt].cell_id = col_dup(st, 0, &oom);
        v[cnt++].repetition = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    if (oom || rc != SQLITE_DONE) {
        melt_store_free_keys(v, cnt);
        return oom ? melt_errorf(err, MELT_ENOMEM, "store: out of memory")
                   : db_fail(s->db, s->path, err, "listing completed trials");
    }
    *keys = v;
    *n = cnt;
    return 0;
}

const melt_store_ops melt_store_sqlite_ops = {
    .version = MELT_STORE_OPS_VERSION,
    .name = "sqlite",
    .accepts = sq_accepts,
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .begin_run = sq_begin_run,
    .end_run = sq_end_run,
    .add_cell = sq_add_cell,
    .begin_trial = sq_begin_trial,
    .add_events = sq_add_events,
    .set_trial_clock = sq_set_trial_clock,
    .end_trial = sq_end_trial,
    .put_summaries = sq_put_summaries,
    .list_runs = sq_list_runs,
    .find_run = sq_find_run,
    .run_experiment = sq_run_experiment,
    .list_cells = sq_list_cells,
    .list_trials = sq_list_trials,
    .get_events = sq_get_events,
    .get_trial_figures = sq_get_trial_figures,
    .completed_trials = sq_completed_trials,
    .add_clock_sync = sq_add_clock_sync,
    .list_clock_syncs = sq_list_clock_syncs,
};

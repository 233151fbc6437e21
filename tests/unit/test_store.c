/* The results store: schema, migrations, round trips, resume. */
#include "testutil.h"

#include <math.h>

#include "melt/results.h"
#include "melt/store.h"
#include "store/sqlite_internal.h"

static const char *fresh_db(const char *name)
{
    const char *p = scratch_path(name);
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s", p);
    char side[4200];
    remove(buf);
    snprintf(side, sizeof side, "%s-wal", buf);
    remove(side);
    snprintf(side, sizeof side, "%s-shm", buf);
    remove(side);
    return buf;
}

static melt_store *open_ok(const char *path)
{
    melt_store *s = NULL;
    melt_error err = {0};
    if (melt_store_open(path, &s, &err) != 0)
        fail_msg("open %s: %s", path, err.msg);
    return s;
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static melt_event mk(enum melt_event_kind k, int64_t t)
{
    melt_event e;
    memset(&e, 0, sizeof e);
    e.kind = k;
    e.t_ns = t;
    e.req = e.i = e.id = -1;
    return e;
}

static void store_creates_the_latest_schema_in_wal_mode(void **state)
{
    (void)state;
    const char *path = fresh_db("schema.db");
    melt_store *s = open_ok(path);
    assert_int_equal(melt_store_schema_version(s), melt_store_schema_latest());
    assert_int_equal(melt_store_schema_latest(), 3);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT max(version) FROM schema_version"), 3);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM schema_version"), 3);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN "
                                   "('runs','cells','trials','events','summaries','samples',"
                                   "'clock_syncs')"), 7);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* opening again changes nothing */
    s = open_ok(path);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM schema_version"), 3);
}

static void store_round_trips_every_event_field(void **state)
{
    (void)state;
    const char *path = fresh_db("roundtrip.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    int64_t run, cell, trial;
    melt_run_meta meta = {.name = "rt", .host = "testhost", .experiment = "name: rt\n"};
    assert_int_equal(melt_store_begin_run(s, &meta, &run, &err), 0);
    melt_cell_meta cm = {.cell_id = "local/builtin/tiny/pp64", .device_json = "{\"id\":\"local\"}",
                         .engine_json = "{\"threads\":2}", .kernel = "6.1.0",
                         .model_sha256 = "ab12"};
    assert_int_equal(melt_store_add_cell(s, run, &cm, &cell, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, cell, 0, false, &trial, &err), 0);

    melt_event ev[6];
    ev[0] = mk(MELT_EV_HELLO, 1);
    snprintf(ev[0].name, sizeof ev[0].name, "0.1.0");
    snprintf(ev[0].msg, sizeof ev[0].msg, "{\"host\":\"h\"}");
    ev[1] = mk(MELT_EV_PHASE, 2);
    snprintf(ev[1].name, sizeof ev[1].name, "load");
    snprintf(ev[1].key, sizeof ev[1].key, "begin");
    ev[2] = mk(MELT_EV_REQUEST, INT64_C(1700000000123456789));
    ev[2].req = 0;
    ev[2].id = 128;
    ev[3] = mk(MELT_EV_TOKEN, 55);
    ev[3].req = 0; ev[3].i = 0; ev[3].id = 31999;
    ev[4] = mk(MELT_EV_SAMPLE, 12);
    snprintf(ev[4].name, sizeof ev[4].name, "thermal");
    snprintf(ev[4].key, sizeof ev[4].key, "cpu0_temp");
    snprintf(ev[4].unit, sizeof ev[4].unit, "mC");
    ev[4].value = 45123.25;
    ev[4].has_value = true;
    ev[5] = mk(MELT_EV_ERROR, 13);
    memset(ev[5].msg, 'x', sizeof ev[5].msg - 1);        /* longest message */
    /* two batches: sequence numbers continue */
    assert_int_equal(melt_store_add_events(s, trial, ev, 3, &err), 0);
    assert_int_equal(melt_store_add_events(s, trial, ev + 3, 3, &err), 0);
    assert_int_equal(melt_store_set_trial_clock(s, trial, -42, 900, &err), 0);
    assert_int_equal(melt_store_end_trial(s, trial, MELT_TRIAL_OK, &err), 0);
    assert_int_equal(melt_store_end_run(s, run, "ok", &err), 0);

    melt_event *got = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_get_events(s, trial, &got, &n, &err), 0);
    assert_int_equal(n, 6);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(got[k].kind, ev[k].kind);
        assert_true(got[k].t_ns == ev[k].t_ns);
        assert_int_equal(got[k].req, ev[k].req);
        assert_int_equal(got[k].i, ev[k].i);
        assert_int_equal(got[k].id, ev[k].id);
        assert_int_equal(got[k].has_value, ev[k].has_value);
        assert_true(got[k].value == ev[k].value);
        assert_string_equal(got[k].name, ev[k].name);
        assert_string_equal(got[k].key, ev[k].key);
        assert_string_equal(got[k].unit, ev[k].unit);
        assert_string_equal(got[k].msg, ev[k].msg);
    }
    free(got);

    melt_trial_info *tr = NULL;
    assert_int_equal(melt_store_list_trials(s, cell, &tr, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(tr[0].n_events, 6);
    assert_int_equal(tr[0].status, MELT_TRIAL_OK);
    assert_true(tr[0].has_clock && tr[0].clock_offset_ns == -42 && tr[0].clock_rtt_ns == 900);
    free(tr);

    melt_cell_info *cells = NULL;
    assert_int_equal(melt_store_list_cells(s, run, &cells, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(cells[0].cell_id, "local/builtin/tiny/pp64");
    assert_string_equal(cells[0].engine_json, "{\"threads\":2}");
    assert_string_equal(cells[0].kernel, "6.1.0");
    assert_null(cells[0].governor);
    melt_store_free_cells(cells, n);

    melt_run_info ri;
    assert_int_equal(melt_store_find_run(s, "rt", &ri, &err), 0);
    assert_string_equal(ri.status, "ok");
    assert_string_equal(ri.host, "testhost");
    assert_true(ri.finished[0] != '\0');
    assert_int_equal(ri.n_cells, 1);
    assert_int_equal(ri.n_trials_ok, 1);
    char *exp = NULL;
    assert_int_equal(melt_store_run_experiment(s, run, &exp, &err), 0);
    assert_string_equal(exp, "name: rt\n");
    free(exp);
    melt_store_close(s);
    /* samples view */
    assert_int_equal(sql_int(path, "SELECT value FROM samples WHERE key = 'cpu0_temp'"), 45123);
}

static void store_migrates_a_version_1_database(void **state)
{
    (void)state;
    const char *path = fresh_db("v1.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    melt_error err = {0};
    int before = -1;
    assert_int_equal(melt_sqlite_migrate(db, path, 1, &before, &err), 0);
    assert_int_equal(before, 0);
    sqlite3_close(db);
    assert_int_equal(sql_int(path, "SELECT max(version) FROM schema_version"), 1);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'summaries'"), 0);
    sql_exec(path, "INSERT INTO runs(name) VALUES ('old');"
                   "INSERT INTO cells(run, cell_id) VALUES (1, 'c');"
                   "INSERT INTO trials(cell, repetition, status) VALUES (1, 0, 'ok');"
                   "INSERT INTO events(trial, seq, kind, t_ns) VALUES (1, 0, 'bye', 7);");

    melt_store *s = open_ok(path);
    assert_int_equal(melt_store_schema_version(s), 3);
    melt_run_info ri;
    assert_int_equal(melt_store_find_run(s, "old", &ri, &err), 0);
    assert_int_equal(ri.n_trials_ok, 1);
    /* version 2 features work on the migrated data */
    assert_int_equal(melt_store_set_trial_clock(s, 1, 5, 6, &err), 0);
    melt_summary_row row = {.run_id = 1, .trial_id = 1, .metric = "e2e_ms", .unit = "ms",
                            .n = 1, .mean = 3.5, .stddev = NAN, .ci95 = NAN,
                            .min = 3.5, .median = 3.5, .max = 3.5};
    assert_int_equal(melt_store_put_summaries(s, &row, 1, &err), 0);
    row.mean = 4.5;   /* replaces */
    assert_int_equal(melt_store_put_summaries(s, &row, 1, &err), 0);
    melt_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_get_events(s, 1, &ev, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, MELT_EV_BYE);
    free(ev);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM summaries"), 1);
    assert_int_equal(sql_int(path, "SELECT mean * 10 FROM summaries"), 45);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM schema_version"), 3);
}

/* A melt.db written before version 3 (runs with summaries and a trial
 * clock) opens, keeps its rows and takes clock syncs; cells and their
 * clock syncs go together. */
static void store_migrates_a_version_2_database(void **state)
{
    (void)state;
    const char *path = fresh_db("v2.db");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    melt_error err = {0};
    int before = -1;
    assert_int_equal(melt_sqlite_migrate(db, path, 2, &before, &err), 0);
    sqlite3_close(db);
    assert_int_equal(sql_int(path, "SELECT max(version) FROM schema_version"), 2);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'clock_syncs'"), 0);
    sql_exec(path, "INSERT INTO runs(name) VALUES ('v2run');"
                   "INSERT INTO cells(run, cell_id) VALUES (1, 'c');"
                   "INSERT INTO trials(cell, repetition, status, clock_offset_ns, clock_rtt_ns)"
                   "  VALUES (1, 0, 'ok', 11, 22);"
                   "INSERT INTO summaries(run, metric, unit, n, mean) VALUES (1, 'e2e_ms', 'ms', 1, 2.5);");

    melt_store *s = open_ok(path);
    assert_int_equal(melt_store_schema_version(s), 3);
    melt_run_info ri;
    assert_int_equal(melt_store_find_run(s, "v2run", &ri, &err), 0);
    assert_int_equal(ri.n_trials_ok, 1);
    melt_trial_info *t = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_list_trials(s, 1, &t, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_true(t[0].has_clock && t[0].clock_offset_ns == 11 && t[0].clock_rtt_ns == 22);
    free(t);
    melt_clock_sync_row r = {.cell_rowid = 1, .at = "before", .host_ns = 5, .offset_ns = 6,
                             .uncertainty_ns = 7, .rtt_ns = 14, .rounds = 3};
    assert_int_equal(melt_store_add_clock_sync(s, &r, &err), 0);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM schema_version"), 3);
    assert_int_equal(sql_int(path, "SELECT mean * 10 FROM summaries"), 25);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM clock_syncs WHERE cell = 1"), 1);
    sql_exec(path, "PRAGMA foreign_keys = ON; DELETE FROM cells WHERE id = 1;");
    assert_int_equal(sql_int(path, "SELECT count(*) FROM clock_syncs"), 0);
}

/* Version 3: a cell's clock sync estimates, before and after, in order;
 * nonsense is refused before it reaches the database. */
static void store_keeps_clock_syncs_per_cell(void **state)
{
    (void)state;
    const char *path = fresh_db("clock.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    int64_t run = 0, cell = 0, other = 0;
    melt_run_meta rm = {.name = "clk"};
    assert_int_equal(melt_store_begin_run(s, &rm, &run, &err), 0);
    melt_cell_meta cm = {.cell_id = "a"};
    assert_int_equal(melt_store_add_cell(s, run, &cm, &cell, &err), 0);
    cm.cell_id = "b";
    assert_int_equal(melt_store_add_cell(s, run, &cm, &other, &err), 0);
    melt_clock_sync_row r = {.cell_rowid = cell, .at = "before", .host_ns = 1000,
                             .offset_ns = -123456789012345, .uncertainty_ns = 40,
                             .rtt_ns = 80, .rounds = 16};
    assert_int_equal(melt_store_add_clock_sync(s, &r, &err), 0);
    snprintf(r.at, sizeof r.at, "after");
    r.host_ns = 9000;
    r.offset_ns = -123456789012300;
    assert_int_equal(melt_store_add_clock_sync(s, &r, &err), 0);
    snprintf(r.at, sizeof r.at, "during");
    assert_int_equal(melt_store_add_clock_sync(s, &r, &err), MELT_EINVAL);
    melt_clock_sync_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_list_clock_syncs(s, cell, &rows, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].at, "before");
    assert_true(rows[0].offset_ns == -123456789012345 && rows[0].host_ns == 1000);
    assert_true(rows[0].uncertainty_ns == 40 && rows[0].rtt_ns == 80 && rows[0].rounds == 16);
    assert_string_equal(rows[1].at, "after");
    assert_true(rows[1].offset_ns == -123456789012300 && rows[1].host_ns == 9000);
    free(rows);
    assert_int_equal(melt_store_list_clock_syncs(s, other, &rows, &n, &err), 0);
    assert_int_equal(n, 0);
    free(rows);
    melt_store_close(s);
}

static void store_refuses_a_newer_schema_clearly(void **state)
{
    (void)state;
    const char *path = fresh_db("newer.db");
    melt_store_close(open_ok(path));
    sql_exec(path, "INSERT INTO schema_version(version, description) VALUES (99, 'future')");
    melt_store *s = NULL;
    melt_error err = {0};
    assert_int_equal(melt_store_open(path, &s, &err), MELT_EUNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(err.msg, "schema version 99"));
    assert_non_null(strstr(err.msg, "newer melt"));
    assert_non_null(strstr(err.msg, path));
}

static void store_refuses_files_that_are_not_melt_stores(void **state)
{
    (void)state;
    const char *path = fresh_db("foreign.db");
    sql_exec(path, "CREATE TABLE foo(x)");
    melt_store *s = NULL;
    melt_error err = {0};
    assert_int_equal(melt_store_open(path, &s, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "not a melt store"));

    path = fresh_db("text.db");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int k = 0; k < 100; k++)
        fputs("this is not a database at all\n", f);
    fclose(f);
    assert_int_equal(melt_store_open(path, &s, &err), MELT_EFORMAT);
    assert_non_null(strstr(err.msg, "not a melt database"));

    assert_int_equal(melt_store_open("postgres://db/melt", &s, &err), MELT_EUNSUPPORTED);
}

static void resume_lists_only_completed_measured_trials(void **state)
{
    (void)state;
    const char *path = fresh_db("resume.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    int64_t run, a, b, a2, t;
    melt_run_meta meta = {.name = "resume"};
    assert_int_equal(melt_store_begin_run(s, &meta, &run, &err), 0);
    melt_cell_meta ca = {.cell_id = "A"}, cb = {.cell_id = "B"};
    assert_int_equal(melt_store_add_cell(s, run, &ca, &a, &err), 0);
    assert_int_equal(melt_store_add_cell(s, run, &cb, &b, &err), 0);
    /* A: rep 0 ok, rep 1 interrupted, rep 2 never ended */
    assert_int_equal(melt_store_begin_trial(s, a, 0, false, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_OK, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, a, 1, false, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_INTERRUPTED, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, a, 2, false, &t, &err), 0);
    /* B: a warm-up ok, rep 0 error then retried ok, rep 1 lost */
    assert_int_equal(melt_store_begin_trial(s, b, 0, true, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_OK, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, b, 0, false, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_ERROR, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, b, 0, false, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_OK, &err), 0);
    assert_int_equal(melt_store_begin_trial(s, b, 1, false, &t, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, MELT_TRIAL_LOST, &err), 0);
    melt_store_close(s);

    /* a resumed process finds the same cell again */
    s = open_ok(path);
    ca.kernel = "6.1";
    assert_int_equal(melt_store_add_cell(s, run, &ca, &a2, &err), 0);
    assert_true(a2 == a);
    melt_trial_key *keys = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_completed_trials(s, run, &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(melt_trial_keys_contain(keys, n, "A", 0));
    assert_true(melt_trial_keys_contain(keys, n, "B", 0));
    assert_false(melt_trial_keys_contain(keys, n, "A", 1));
    assert_false(melt_trial_keys_contain(keys, n, "A", 2));
    assert_false(melt_trial_keys_contain(keys, n, "B", 1));
    melt_store_free_keys(keys, n);
    melt_store_close(s);
}

static void runs_are_found_by_id_name_or_last(void **state)
{
    (void)state;
    const char *path = fresh_db("find.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    melt_run_info ri;
    assert_int_equal(melt_store_find_run(s, "last", &ri, &err), MELT_ENOTFOUND);
    int64_t r1, r2, r3;
    melt_run_meta x = {.name = "x"}, y = {.name = "y"};
    assert_int_equal(melt_store_begin_run(s, &x, &r1, &err), 0);
    assert_int_equal(melt_store_begin_run(s, &y, &r2, &err), 0);
    assert_int_equal(melt_store_begin_run(s, &x, &r3, &err), 0);
    assert_int_equal(melt_store_find_run(s, "last", &ri, &err), 0);
    assert_true(ri.id == r3);
    assert_int_equal(melt_store_find_run(s, "x", &ri, &err), 0);
    assert_true(ri.id == r3);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)r1);
    assert_int_equal(melt_store_find_run(s, id, &ri, &err), 0);
    assert_string_equal(ri.name, "x");
    assert_string_equal(ri.status, "running");
    assert_int_equal(melt_store_find_run(s, "nope", &ri, &err), MELT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    melt_run_info *runs = NULL;
    size_t n = 0;
    assert_int_equal(melt_store_list_runs(s, &runs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(runs[1].name, "y");
    free(runs);
    melt_store_close(s);
}

static void unknown_ids_are_not_found_and_nothing_is_half_written(void **state)
{
    (void)state;
    const char *path = fresh_db("ids.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    melt_event e = mk(MELT_EV_BYE, 1);
    assert_int_equal(melt_store_add_events(s, 999, &e, 1, &err), MELT_ENOTFOUND);
    assert_int_equal(melt_store_end_trial(s, 999, MELT_TRIAL_OK, &err), MELT_ENOTFOUND);
    assert_int_equal(melt_store_end_run(s, 999, "ok", &err), MELT_ENOTFOUND);
    int64_t id;
    melt_cell_meta c = {.cell_id = "c"};
    assert_int_equal(melt_store_add_cell(s, 999, &c, &id, &err), MELT_ENOTFOUND);
    assert_int_equal(melt_store_begin_trial(s, 999, 0, false, &id, &err), MELT_ENOTFOUND);
    assert_int_equal(melt_store_end_trial(s, 1, MELT_TRIAL_RUNNING, &err), MELT_EINVAL);
    melt_cell_meta bad = {.cell_id = ""};
    assert_int_equal(melt_store_add_cell(s, 1, &bad, &id, &err), MELT_EINVAL);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT count(*) FROM events"), 0);
}

/* One request with the given ttft (ms) as a trial of cell. */
static void add_trial(melt_store *s, int64_t cell, int rep, bool warmup, int ttft_ms,
                      enum melt_trial_status st)
{
    melt_error err = {0};
    int64_t t;
    assert_int_equal(melt_store_begin_trial(s, cell, rep, warmup, &t, &err), 0);
    melt_event ev[2];
    ev[0] = mk(MELT_EV_REQUEST, 1000);
    ev[0].req = 0;
    ev[0].id = 10;
    ev[1] = mk(MELT_EV_FIRST_TOKEN, 1000 + (int64_t)ttft_ms * 1000000);
    ev[1].req = 0;
    assert_int_equal(melt_store_add_events(s, t, ev, 2, &err), 0);
    assert_int_equal(melt_store_end_trial(s, t, st, &err), 0);
}

static const melt_results_metric *find_metric(const melt_results_cell *c, const char *name)
{
    for (size_t k = 0; k < c->n_metrics; k++)
        if (!strcmp(c->metrics[k].name, name))
            return &c->metrics[k];
    return NULL;
}

static void results_use_the_latest_ok_attempt_of_each_measured_repetition(void **state)
{
    (void)state;
    const char *path = fresh_db("results.db");
    melt_store *s = open_ok(path);
    melt_error err = {0};
    int64_t run, cell;
    melt_run_meta meta = {.name = "res"};
    melt_cell_meta cm = {.cell_id = "c"};
    assert_int_equal(melt_store_begin_run(s, &meta, &run, &err), 0);
    assert_int_equal(melt_store_add_cell(s, run, &cm, &cell, &err), 0);
    add_trial(s, cell, 0, true, 999, MELT_TRIAL_OK);        /* warm-up: ignored */
    add_trial(s, cell, 0, false, 500, MELT_TRIAL_OK);       /* superseded by the retry */
    add_trial(s, cell, 0, false, 100, MELT_TRIAL_OK);
    add_trial(s, cell, 1, false, 200, MELT_TRIAL_OK);
    add_trial(s, cell, 2, false, 300, MELT_TRIAL_OK);
    add_trial(s, cell, 3, false, 700, MELT_TRIAL_INTERRUPTED);
    melt_results *r = NULL;
    assert_int_equal(melt_results_compute(s, run, &r, &err), 0);
    assert_int_equal(r->n_cells, 1);
    assert_int_equal(r->cells[0].n_trials, 4);
    assert_int_equal(r->cells[0].n_ok, 3);
    const melt_results_metric *m = find_metric(&r->cells[0], "ttft_ms");
    assert_non_null(m);
    assert_string_equal(m->unit, "ms");
    assert_int_equal(m->s.n, 3);
    assert_true(fabs(m->s.mean - 200) < 1e-9);
    assert_true(fabs(m->s.ci95 - 248.4137711750331) < 1e-9);
    assert_int_equal(melt_results_save(s, r, &err), 0);
    melt_trial_metrics tm;
    melt_event one[2] = {mk(MELT_EV_REQUEST, 0), mk(MELT_EV_FIRST_TOKEN, 5000000)};
    one[0].req = one[1].req = 0;
    assert_int_equal(melt_metrics_compute(one, 2, NULL, &tm, &err), 0);
    assert_int_equal(melt_results_save_trial(s, run, 2, &tm, &err), 0);

    const char *csv = scratch_path("results.csv");
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    assert_int_equal(melt_results_write(f, r, MELT_RESULTS_CSV, &err), 0);
    fclose(f);
    size_t n;
    char *text = slurp(csv, &n);
    assert_true(n > 0);
    text[n - 1] = '\0';
    assert_non_null(strstr(text, "run,cell,metric,unit,n,mean,stddev,ci95,min,median,max\n"));
    assert_non_null(strstr(text, ",c,ttft_ms,ms,3,200,100,248.4137712,100,200,300"));
    free(text);
    melt_results_free(r);
    melt_store_close(s);
    assert_int_equal(sql_int(path, "SELECT n FROM summaries WHERE metric = 'ttft_ms' AND cell > 0"), 3);
    assert_int_equal(sql_int(path, "SELECT mean FROM summaries WHERE metric = 'ttft_ms' AND trial = 2"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_creates_the_latest_schema_in_wal_mode),
        cmocka_unit_test(store_round_trips_every_event_field),
        cmocka_unit_test(store_migrates_a_version_1_database),
        cmocka_unit_test(store_migrates_a_version_2_database),
        cmocka_unit_test(store_keeps_clock_syncs_per_cell),
        cmocka_unit_test(store_refuses_a_newer_schema_clearly),
        cmocka_unit_test(store_refuses_files_that_are_not_melt_stores),
        cmocka_unit_test(resume_lists_only_completed_measured_trials),
        cmocka_unit_test(runs_are_found_by_id_name_or_last),
        cmocka_unit_test(unknown_ids_are_not_found_and_nothing_is_half_written),
        cmocka_unit_test(results_use_the_latest_ok_attempt_of_each_measured_repetition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

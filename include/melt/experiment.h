/* melt — experiment files: which devices × which engines × which models ×
 * which workloads, and how to run them (repetitions, warm-up, cool-down,
 * sampling, probes). docs/experiment.md is the reference for every key.
 *
 * The file is YAML (parsed with libyaml: host only, the agent never sees
 * it). Parsing validates everything and expands every list-valued setting,
 * so the struct below holds *variants*: `threads: [1, 2]` gives two engine
 * variants, `prompt_tokens: [128, 512]` two workload variants. The cells
 * are then devices × engines × models × workloads, numbered with the
 * workload varying fastest (see melt_experiment_cell).
 *
 * Errors are one line, "FILE:LINE:COL: KEY.PATH: problem", e.g.
 *   exp.yaml:12:5: engines[0].threads: expected a positive integer, got 'two'
 *   exp.yaml:3:1: unknown key 'repetitons' (did you mean 'repetitions'?)
 *
 * Ownership: melt_experiment_parse/load return an experiment the caller
 * frees with melt_experiment_free; every pointer inside it (and in a
 * melt_cell) stays valid until then. Read-only for callers.
 */
#ifndef MELT_EXPERIMENT_H
#define MELT_EXPERIMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "melt/engine.h"
#include "melt/error.h"
#include "melt/quant.h"
#include "melt/sampler.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name of a device, engine variant, model or workload variant. */
#define MELT_EXP_NAME_MAX 64
/* Room for a cell id: four names (a workload id may add -ppN-tgN) and slashes. */
#define MELT_CELL_ID_MAX 512

enum melt_transport_kind {
    MELT_TRANSPORT_LOCAL = 0,  /* this machine (the only one the runner runs today) */
    MELT_TRANSPORT_SSH,        /* host required; user, port optional */
    MELT_TRANSPORT_ADB,        /* serial optional */
    MELT_TRANSPORT_TCP,        /* host and port required (an agent listening) */
};
const char *melt_transport_name(enum melt_transport_kind k);   /* "local", ... */

typedef struct melt_exp_device {
    char *name;                /* unique; default "local" for the first local device */
    enum melt_transport_kind transport;
    char *serial;              /* adb; NULL when unset */
    char *host;                /* ssh, tcp; NULL when unset */
    int port;                  /* ssh, tcp; 0 when unset */
    char *user;                /* ssh; NULL when unset */
    char *workdir;             /* where the agent and models go on the device; NULL: default */
    /* adb only, `android:` (docs/experiment.md): done before each cell, undone after */
    bool android_screen_off;       /* screen_off: true */
    bool android_battery_unplug;   /* battery_unplug: true (dumpsys battery unplug / reset) */
} melt_exp_device;

/* One engine variant (a list in the file expands into several). */
typedef struct melt_exp_engine {
    char *id;                  /* "builtin-t2-c2048", "llamacpp-server-t2-c2048" (llamacpp's
                                  mode after the backend; `name` instead of both when given;
                                  b/kv appended when not the default) */
    char *backend;             /* "builtin", "llamacpp", "mlc", "openai" */
    char *name;                /* `name`: leads the id instead of backend[-mode]; NULL */
    /* backend options (docs/backends.md); NULL / 0 when unset */
    char *mode;                /* llamacpp: "server" or "cli" */
    char *binary;              /* llamacpp, mlc: the program on the device */
    char *url;                 /* openai: the endpoint (required) */
    char *api_key_env;         /* openai: environment variable holding the key */
    char *model;               /* openai, mlc: the served model's name */
    char **args;               /* llamacpp, mlc: extra server/cli arguments */
    size_t n_args;
    int port;                  /* llamacpp, mlc: the server's port (0: a free one) */
    int n_threads;             /* 0 = all online cores of the device */
    int n_ctx;                 /* KV cache positions; default 2048 */
    int n_batch;               /* default 512 */
    enum melt_kv_type kv_type; /* default F16 */
    size_t item;               /* index in the file's engines list */
} melt_exp_engine;

enum melt_model_source { MELT_MODEL_PATH = 0, MELT_MODEL_SYNTH };

typedef struct melt_exp_model {
    char *name;                /* display name: `name`, else the file's stem, else PRESET-TYPE[-sSEED] */
    enum melt_model_source source;
    char *path;                /* PATH: resolved against the experiment's folder */
    char *preset;              /* SYNTH: a melt_synth_presets() name */
    enum melt_ftype ftype;     /* SYNTH */
    uint64_t seed;             /* SYNTH; default 1 */
} melt_exp_model;

enum melt_workload_kind {
    MELT_WORKLOAD_SYNTHETIC = 0,   /* exact prompt/gen token counts, EOS ignored */
    MELT_WORKLOAD_CONVERSATIONS,   /* MELT JSON conversations, turn by turn */
    MELT_WORKLOAD_PROMPTS,         /* single prompts: text lines or JSONL */
};
const char *melt_workload_kind_name(enum melt_workload_kind k); /* "synthetic", ... */

/* One workload variant. */
typedef struct melt_exp_workload {
    char *id;                  /* "synthetic-pp128-tg32", "conversations-chat", or `name` */
    enum melt_workload_kind kind;
    size_t item;               /* index in the file's workloads list */
    int line, col;             /* where the item starts in the experiment file */
    char *path;                /* CONVERSATIONS/PROMPTS: resolved file */
    bool jsonl;                /* PROMPTS: JSON lines ({"prompt": ...}) rather than text */
    int32_t prompt_tokens;     /* SYNTHETIC: >= 0 */
    int32_t gen_tokens;        /* SYNTHETIC: >= 0 (not both 0) */
    int32_t max_gen_tokens;    /* CONVERSATIONS/PROMPTS: per answer; default 128 */
    int32_t max_context_tokens;/* CONVERSATIONS: history limit; 0 = the engine's n_ctx */
} melt_exp_workload;

typedef struct melt_exp_probe {
    char *name;                /* procfs, thermal, cpufreq, power_supply, hwmon, rapl, nvml */
    double rate_hz;            /* default 10 */
} melt_exp_probe;

typedef struct melt_exp_cooldown {
    double max_temp_c;         /* wait until every thermal zone is below; default 45 */
    double min_wait_s;         /* always wait at least this; default 0 */
    double max_wait_s;         /* never wait longer (then go on, recorded); default 120 */
} melt_exp_cooldown;

typedef struct melt_experiment {
    char *path;                /* as given to load ("exp.yaml"), for messages */
    char *dir;                 /* folder relative paths are resolved against */
    char *name;                /* default: the file's stem */
    char *description;         /* free text; NULL when absent */
    uint64_t seed;             /* default 1 */
    int repetitions;           /* measured trials per cell; default 3 */
    int warmup;                /* trials run first and discarded; default 1 */
    melt_exp_cooldown cooldown;
    melt_sampler_params sampling; /* melt_sampler_default_params(), seed = experiment seed */
    melt_exp_device *devices;     size_t n_devices;    /* default: one local device */
    melt_exp_engine *engines;     size_t n_engines;    /* default: builtin, all defaults */
    melt_exp_model *models;       size_t n_models;     /* required, non-empty */
    melt_exp_workload *workloads; size_t n_workloads;  /* required, non-empty */
    melt_exp_probe *probes;       size_t n_probes;     /* default: none */
} melt_experiment;

/* Limits: engine variants and workload variants (each, over the whole
 * file), and cells. */
#define MELT_EXP_MAX_VARIANTS 1024
#define MELT_EXP_MAX_CELLS 1000000

/* Defaults of the keys, for documentation and tests. */
enum {
    MELT_EXP_DEFAULT_REPETITIONS = 3,
    MELT_EXP_DEFAULT_WARMUP = 1,
    MELT_EXP_DEFAULT_N_CTX = 2048,
    MELT_EXP_DEFAULT_N_BATCH = 512,
    MELT_EXP_DEFAULT_PROMPT_TOKENS = 512,
    MELT_EXP_DEFAULT_GEN_TOKENS = 128,
    MELT_EXP_DEFAULT_MAX_GEN_TOKENS = 128,
};

/* Parse text[0..len). fname names it in messages; dir is the folder that
 * relative paths in it are resolved against (NULL: "."). Referenced files
 * (models' path, workloads' files) must exist. */
int melt_experiment_parse(const char *text, size_t len, const char *fname, const char *dir,
                          melt_experiment **out, melt_error *err);
/* Read and parse the file at path; relative paths resolve against its folder. */
int melt_experiment_load(const char *path, melt_experiment **out, melt_error *err);
void melt_experiment_free(melt_experiment *e);

/* ---- cells ---- */

typedef struct melt_cell {
    size_t index;                       /* 0-based, in the order below */
    char id[MELT_CELL_ID_MAX];          /* "DEVICE/ENGINE/MODEL/WORKLOAD", stable for resume */
    const melt_exp_device *device;
    const melt_exp_engine *engine;
    const melt_exp_model *model;
    const melt_exp_workload *workload;
} melt_cell;

/* n_devices × n_engines × n_models × n_workloads. */
size_t melt_experiment_n_cells(const melt_experiment *e);
/* Cell i (< n_cells): devices outermost, then engines, models, and the
 * workload varying fastest. Returns false when i is out of range. */
bool melt_experiment_cell(const melt_experiment *e, size_t i, melt_cell *out);
/* Index of the cell with this id, or -1. */
long melt_experiment_find_cell(const melt_experiment *e, const char *id);

/* Write the resolved experiment (defaults filled, lists expanded, every
 * workload loaded): header lines starting with '#', then one line per cell
 * with its index, id and settings. Errors name file:line:col. */
int melt_experiment_describe(const melt_experiment *e, FILE *out, melt_error *err);

#ifdef __cplusplus
}
#endif
#endif

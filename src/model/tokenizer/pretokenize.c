/* Pre-tokenizers: llama.cpp's per-vocab split regexes, written as
 * hand-made matchers over codepoints.
 *
 * llama.cpp applies a list of regexes in turn; each one splits every chunk
 * left by the previous one into its matches and the stretches between them
 * (which stay chunks of their own). A "pass" here is one such regex. Most
 * regexes are alternations tried left to right at each position; a matcher
 * returns the length of the match at a position, or 0.
 *
 * Character classes follow what llama.cpp actually runs: for codepoints
 * past ASCII a class is the general-category group from the generated
 * table (White_Space wins over category); for ASCII, \p{P} and \p{S} are
 * the fixed sets llama.cpp substitutes (so '~' is in neither). */
#include "model/tokenizer/pretokenize.h"

#include <stdlib.h>
#include <string.h>

#include "model/tokenizer/unicode.h"

#define NO_CP 0xFFFFFFFFu

void pt_vec_free(pt_vec *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

static void push(pt_vec *v, size_t end)
{
    if (v->oom)
        return;
    if (end == 0 || (v->n && v->v[v->n - 1] >= end))
        return;                         /* empty piece */
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        size_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) {
            v->oom = true;
            return;
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = end;
}

/* One chunk being split: positions are absolute indices into cp/cls,
 * valid in [ini, end). */
/* Length of the last run computed by run_memo, so that matchers called
 * at every position of a long run (digit groups, whitespace) stay linear. */
struct ctx;
typedef struct memo {
    int (*pred)(const struct ctx *, size_t);
    size_t from, to;
} memo;

typedef struct ctx {
    const uint32_t *cp;
    const uint8_t *cls;
    size_t ini, end;
    memo *m;
} ctx;

static inline uint32_t cpt(const ctx *c, size_t i) { return i < c->end ? c->cp[i] : NO_CP; }
static inline int in(const ctx *c, size_t i) { return i < c->end; }
static inline int WS(const ctx *c, size_t i) { return in(c, i) && uc_is_ws(c->cls[i]); }
static inline int L(const ctx *c, size_t i) { return in(c, i) && uc_cat(c->cls[i]) == UC_LETTER; }
static inline int N(const ctx *c, size_t i) { return in(c, i) && uc_cat(c->cls[i]) == UC_NUMBER; }
static inline int M(const ctx *c, size_t i) { return in(c, i) && c->cp[i] >= 128 && !uc_is_ws(c->cls[i]) && uc_cat(c->cls[i]) == UC_MARK; }
static inline int LM(const ctx *c, size_t i) { return L(c, i) || M(c, i); }
static inline int CRLF(const ctx *c, size_t i) { uint32_t x = cpt(c, i); return x == '\r' || x == '\n'; }
static inline int DIGIT(const ctx *c, size_t i) { uint32_t x = cpt(c, i); return x >= '0' && x <= '9'; }
static inline int ALPHA(const ctx *c, size_t i) { uint32_t x = cpt(c, i) | 0x20u; return x >= 'a' && x <= 'z'; }

static int P(const ctx *c, size_t i)
{
    if (!in(c, i))
        return 0;
    uint32_t x = c->cp[i];
    if (x < 128)
        return x && strchr("!\"#%&'()*,-./:;?@[\\]_{}", (int)x) != NULL;
    return !uc_is_ws(c->cls[i]) && uc_cat(c->cls[i]) == UC_PUNCT;
}

static int S(const ctx *c, size_t i)
{
    if (!in(c, i))
        return 0;
    uint32_t x = c->cp[i];
    if (x < 128)
        return x && strchr("$+<=>^`|", (int)x) != NULL;
    return !uc_is_ws(c->cls[i]) && uc_cat(c->cls[i]) == UC_SYMBOL;
}

/* [^\s\p{L}\p{N}] */
static inline int OTHER(const ctx *c, size_t i) { return in(c, i) && !WS(c, i) && !L(c, i) && !N(c, i); }

static size_t run(const ctx *c, size_t i, int (*pred)(const ctx *, size_t))
{
    size_t j = i;
    while (pred(c, j))
        j++;
    return j - i;
}

/* run(), remembering the run so later positions inside it are O(1). */
static size_t run_memo(const ctx *c, size_t i, int (*pred)(const ctx *, size_t))
{
    memo *m = c->m;
    if (m->pred == pred && i >= m->from && i < m->to)
        return m->to - i;
    size_t r = run(c, i, pred);
    if (r) {
        m->pred = pred;
        m->from = i;
        m->to = i + r;
    }
    return r;
}

static inline uint32_t lower_ascii(uint32_t x) { return (x >= 'A' && x <= 'Z') ? x + 32 : x; }

/* 's|'t|'re|'ve|'m|'ll|'d at i (case-insensitively when ci). */
static size_t contraction(const ctx *c, size_t i, int ci)
{
    if (cpt(c, i) != '\'' || !in(c, i + 1))
        return 0;
    uint32_t a = cpt(c, i + 1), b = in(c, i + 2) ? cpt(c, i + 2) : NO_CP;
    if (ci) {
        a = lower_ascii(a);
        b = lower_ascii(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S) then \s+ : whitespace run at i, leaving the last one before a
 * non-space. `plain_fallback` adds the final \s+ alternative. */
static size_t ws_tail(const ctx *c, size_t i, int plain_fallback)
{
    size_t r = run(c, i, WS);
    if (!r)
        return 0;
    if (!in(c, i + r))
        return r;
    if (r > 1)
        return r - 1;
    return plain_fallback ? 1 : 0;
}

/* \s*[\r\n]+ : ends after the last CR/LF of the whitespace run at i. */
static size_t ws_newlines(const ctx *c, size_t i)
{
    size_t r = run(c, i, WS), last = 0;
    for (size_t k = 0; k < r; k++)
        if (CRLF(c, i + k))
            last = k + 1;
    return last;
}

/* ---- regex-style driver: matches and the stretches between them ---- */

typedef size_t (*match_fn)(const ctx *c, size_t i);

static void split_regex(const ctx *c, match_fn m, pt_vec *out)
{
    size_t i = c->ini, gap = c->ini;
    while (i < c->end) {
        size_t len = m(c, i);
        if (len) {
            if (i > gap)
                push(out, i);       /* the unmatched stretch before */
            push(out, i + len);
            i += len;
            gap = i;
        } else {
            i++;
        }
    }
    push(out, c->end);
}

/* ---- llama3-like family ---- */

typedef struct l3_opts {
    int contractions;   /* 0 none, 1 case-insensitive */
    int digits;         /* max digits per number; 0 = unlimited */
    int marks;          /* letters run over [\p{L}\p{M}]; \p{M} leaves the "other" class */
    int punct_tail;     /* 0: [\r\n]* ; 1: none and CR/LF excluded from the class */
    int jais_ws;        /* jais-2's cascade of whitespace run lengths */
} l3_opts;

static size_t jais2_ws(const ctx *c, size_t i);

static size_t l3_match(const ctx *c, size_t i, const l3_opts *o)
{
    size_t n;
    if (o->contractions && (n = contraction(c, i, 1)))
        return n;
    int (*letter)(const ctx *, size_t) = o->marks ? LM : L;
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (!CRLF(c, i) && !N(c, i)) {
        if (letter(c, i))
            return run(c, i, letter);
        if (!L(c, i) && letter(c, i + 1))
            return 1 + run(c, i + 1, letter);
    }
    /* \p{N}{1,k} */
    if (N(c, i)) {
        n = run_memo(c, i, N);
        return (o->digits && n > (size_t)o->digits) ? (size_t)o->digits : n;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    {
        size_t j = i + (cpt(c, i) == ' ');
        size_t k = j;
        while (OTHER(c, k) && !(o->marks && M(c, k)) && !(o->punct_tail == 1 && CRLF(c, k)))
            k++;
        if (k > j) {
            if (o->punct_tail == 0)
                while (CRLF(c, k))
                    k++;
            return k - i;
        }
    }
    if ((n = ws_newlines(c, i)))
        return n;
    return o->jais_ws ? jais2_ws(c, i) : ws_tail(c, i, 1);
}

static void split_l3(const ctx *c, const l3_opts *o, pt_vec *out)
{
    size_t i = c->ini;
    while (i < c->end) {
        size_t len = l3_match(c, i, o);
        if (!len)
            len = 1;
        push(out, i + len);
        i += len;
    }
    push(out, c->end);
}

/* ---- gpt2 family ----
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t gpt2_match(const ctx *c, size_t i)
{
    size_t n;
    if ((n = contraction(c, i, 0)))
        return n;
    size_t j = i + (cpt(c, i) == ' ');
    if (L(c, j))
        return j - i + run(c, j, L);
    if (N(c, j))
        return j - i + run(c, j, N);
    if (OTHER(c, j))
        return j - i + run(c, j, OTHER);
    return ws_tail(c, i, 1);
}

static void split_gpt2(const ctx *c, pt_vec *out)
{
    size_t i = c->ini;
    while (i < c->end) {
        size_t len = gpt2_match(c, i);
        if (!len)
            len = 1;
        push(out, i + len);
        i += len;
    }
    push(out, c->end);
}

/* ---- small single-regex matchers ---- */

static size_t m_one_number(const ctx *c, size_t i) { return N(c, i) ? 1 : 0; }
static size_t m_numbers(const ctx *c, size_t i) { return run(c, i, N); }
static size_t m_numbers3(const ctx *c, size_t i) { size_t n = run_memo(c, i, N); return n > 3 ? 3 : n; }
static size_t m_three_ascii_digits(const ctx *c, size_t i) { return DIGIT(c, i) && DIGIT(c, i + 1) && DIGIT(c, i + 2) ? 3 : 0; }
static size_t m_crlf(const ctx *c, size_t i) { return CRLF(c, i) ? 1 : 0; }

static int falcon_punct(const ctx *c, size_t i)
{
    uint32_t x = cpt(c, i);
    return P(c, i) || x == '$' || x == '+' || x == '<' || x == '=' || x == '>' ||
           x == '^' || x == '~' || x == '|' || x == '`';
}
static int default_punct(const ctx *c, size_t i)
{
    return falcon_punct(c, i) && cpt(c, i) != '`';
}
static size_t m_falcon_punct(const ctx *c, size_t i) { return run(c, i, falcon_punct); }
static size_t m_default_punct(const ctx *c, size_t i) { return run(c, i, default_punct); }

typedef struct cp_range { uint32_t lo, hi; } cp_range;

static int in_ranges(uint32_t x, const cp_range *r, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (x >= r[k].lo && x <= r[k].hi)
            return 1;
    return 0;
}

#define NR(a) (sizeof(a) / sizeof((a)[0]))

/* CJK run used by deepseek: [一-龥ࠀ-一가-퟿]+ */
static const cp_range cjk_ds[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};
static int is_cjk_ds(const ctx *c, size_t i) { return in(c, i) && in_ranges(c->cp[i], cjk_ds, NR(cjk_ds)); }
static size_t m_cjk_ds(const ctx *c, size_t i) { return run(c, i, is_cjk_ds); }

/* [一-龥぀-ゟ゠-ヿ]+ */
static const cp_range cjk_kana[] = {{0x4E00, 0x9FA5}, {0x3040, 0x309F}, {0x30A0, 0x30FF}};
static int is_cjk_kana(const ctx *c, size_t i) { return in(c, i) && in_ranges(c->cp[i], cjk_kana, NR(cjk_kana)); }
static size_t m_cjk_kana(const ctx *c, size_t i) { return run(c, i, is_cjk_kana); }

/* deepseek-llm's cased-letter class */
static const cp_range ds_letters[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
    {0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
    {0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
    {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
    {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
    {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
    {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
    {0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
static int is_ds_letter(const ctx *c, size_t i) { return in(c, i) && in_ranges(c->cp[i], ds_letters, NR(ds_letters)); }
/* \s?[letters]+ */
static size_t m_ds_letters(const ctx *c, size_t i)
{
    size_t j = i + (WS(c, i) ? 1 : 0);
    size_t n = run(c, j, is_ds_letter);
    return n ? j - i + n : 0;
}
/* [!-/:-~！-／：-～‘-‟　-。] */
static const cp_range ds_punct[] = {{0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F},
                                    {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
static int is_ds_punct(const ctx *c, size_t i) { return in(c, i) && in_ranges(c->cp[i], ds_punct, NR(ds_punct)); }
/* \s?[punct]+ (U+3000 is both \s and in the class: \s? may take it) */
static size_t m_ds_punct(const ctx *c, size_t i)
{
    if (WS(c, i)) {
        size_t n = run(c, i + 1, is_ds_punct);
        if (n)
            return 1 + n;
    }
    return run(c, i, is_ds_punct);
}
/* \s+$ */
static size_t m_ws_to_end(const ctx *c, size_t i)
{
    size_t n = run_memo(c, i, WS);
    return (n && i + n == c->end) ? n : 0;
}
/* \s?\p{L}+ and \s?\p{P}+ */
static size_t m_ws_letters(const ctx *c, size_t i)
{
    size_t j = i + (WS(c, i) ? 1 : 0);
    size_t n = run(c, j, L);
    return n ? j - i + n : 0;
}
static size_t m_ws_punct(const ctx *c, size_t i)
{
    size_t j = i + (WS(c, i) ? 1 : 0);
    size_t n = run(c, j, P);
    return n ? j - i + n : 0;
}

/* deepseek-v3 main regex:
 * [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
 *  ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+          (spark: no [\r\n]* and a lone [\r\n]) */
static int PS(const ctx *c, size_t i) { return P(c, i) || S(c, i); }
static size_t ds3_common(const ctx *c, size_t i, int spark)
{
    uint32_t x = cpt(c, i);
    if (x >= 0x21 && x <= 0x7E && !ALPHA(c, i) && !DIGIT(c, i) && ALPHA(c, i + 1)) {
        size_t n = run(c, i + 1, ALPHA);
        return 1 + n;
    }
    if (in(c, i) && !CRLF(c, i) && !L(c, i) && !P(c, i) && !S(c, i) && LM(c, i + 1) && !LM(c, i))
        return 1 + run(c, i + 1, LM);
    if (LM(c, i))
        return run(c, i, LM);
    {
        size_t j = i + (x == ' ' && PS(c, i + 1));
        size_t n = run(c, j, PS);
        if (n) {
            size_t k = j + n;
            if (!spark)
                while (CRLF(c, k))
                    k++;
            return k - i;
        }
    }
    if (spark) {
        if (CRLF(c, i))
            return 1;
    } else {
        size_t n = ws_newlines(c, i);
        if (n)
            return n;
    }
    return ws_tail(c, i, 1);
}
static size_t m_ds3(const ctx *c, size_t i) { return ds3_common(c, i, 0); }
static size_t m_spark(const ctx *c, size_t i) { return ds3_common(c, i, 1); }

/* poro/bloom:  ?[^(\s|.,!?…。，、।۔،)]+ */
static int poro_char(const ctx *c, size_t i)
{
    if (!in(c, i) || WS(c, i))
        return 0;
    switch (c->cp[i]) {
    case '(': case ')': case '|': case '.': case ',': case '!': case '?':
    case 0x2026: case 0x3002: case 0xFF0C: case 0x3001: case 0x0964: case 0x06D4: case 0x060C:
        return 0;
    default:
        return 1;
    }
}
static size_t m_poro(const ctx *c, size_t i)
{
    size_t j = i + (cpt(c, i) == ' ' && poro_char(c, i + 1));
    size_t n = run(c, j, poro_char);
    return n ? j - i + n : 0;
}

/* tekken / gpt-4o: letters split at case changes.
 * U = letter that is not ASCII a-z; Lo = letter that is not ASCII A-Z
 * (non-ASCII letters are both, as in llama.cpp's collapsed regex). With
 * marks, \p{M} counts as a letter for both. */
typedef struct case_opts {
    int marks;
    int contractions;
    int digits;         /* \p{N}{1,k}; 1 for tekken, 3 for gpt-4o */
    int nocase;         /* tiny_aya: \p{Lu} and \p{Ll} both mean any letter */
} case_opts;

static int is_up(const ctx *c, size_t i, int marks)
{
    if (!(L(c, i) || ((marks & 1) && M(c, i))))
        return 0;
    if (marks & 2)
        return 1;
    uint32_t x = c->cp[i];
    return !(x >= 'a' && x <= 'z');
}
static int is_lo(const ctx *c, size_t i, int marks)
{
    if (!(L(c, i) || ((marks & 1) && M(c, i))))
        return 0;
    if (marks & 2)
        return 1;
    uint32_t x = c->cp[i];
    return !(x >= 'A' && x <= 'Z');
}

/* U*Lo+ at q; 0 if no match. */
static size_t up_star_lo_plus(const ctx *c, size_t q, int marks)
{
    size_t u = 0;
    while (is_up(c, q + u, marks))
        u++;
    if (is_lo(c, q + u, marks)) {
        size_t k = q + u;
        while (is_lo(c, k, marks))
            k++;
        return k - q;
    }
    for (size_t k = u; k-- > 0;)
        if (is_lo(c, q + k, marks))
            return k + 1;
    return 0;
}
/* U+Lo* at q */
static size_t up_plus_lo_star(const ctx *c, size_t q, int marks)
{
    size_t u = 0;
    while (is_up(c, q + u, marks))
        u++;
    if (!u)
        return 0;
    size_t k = q + u;
    while (is_lo(c, k, marks))
        k++;
    return k - q;
}

static size_t case_match(const ctx *c, size_t i, const case_opts *o)
{
    int letterish = L(c, i) || (o->marks && M(c, i));
    size_t q = i;
    if (!letterish && in(c, i) && !CRLF(c, i) && !L(c, i) && !N(c, i))
        q = i + 1;   /* optional leading char */
    int mk = o->marks | (o->nocase ? 2 : 0);
    size_t n = up_star_lo_plus(c, q, mk);
    if (!n)
        n = up_plus_lo_star(c, q, mk);
    if (n) {
        size_t end = q + n;
        if (o->contractions)
            end += contraction(c, end, 1);
        return end - i;
    }
    if (N(c, i)) {
        size_t r = run_memo(c, i, N);
        return r > (size_t)o->digits ? (size_t)o->digits : r;
    }
    {
        size_t j = i + (cpt(c, i) == ' ');
        size_t k = j;
        while (OTHER(c, k))
            k++;
        if (k > j) {
            for (;;) {
                uint32_t x = cpt(c, k);
                if (x == '\r' || x == '\n' || x == '/')
                    k++;
                else
                    break;
            }
            return k - i;
        }
    }
    if ((n = ws_newlines(c, i)))
        return n;
    return ws_tail(c, i, 1);
}

static void split_case(const ctx *c, const case_opts *o, pt_vec *out)
{
    size_t i = c->ini;
    while (i < c->end) {
        size_t len = case_match(c, i, o);
        if (!len)
            len = 1;
        push(out, i + len);
        i += len;
    }
    push(out, c->end);
}

/* tiny_aya first pass: \d{1,3}(?=(?:\d{3})*\b) with ASCII \d and \w. */
static int word_ascii(const ctx *c, size_t i)
{
    uint32_t x = cpt(c, i);
    return (x >= '0' && x <= '9') || ((x | 0x20u) >= 'a' && (x | 0x20u) <= 'z') || x == '_';
}
static size_t m_aya_digits(const ctx *c, size_t i)
{
    size_t r = run_memo(c, i, DIGIT);
    if (!r || word_ascii(c, i + r))
        return 0;
    for (size_t k = 3; k >= 1; k--)
        if (k <= r && (r - k) % 3 == 0)
            return k;
    return 0;
}

/* [^\n]+|[\n]+ */
static size_t m_lines(const ctx *c, size_t i)
{
    size_t n = 0;
    if (cpt(c, i) == '\n') {
        while (cpt(c, i + n) == '\n')
            n++;
    } else {
        while (in(c, i + n) && cpt(c, i + n) != '\n')
            n++;
    }
    return n;
}

/* \S+ */
static int NOT_WS(const ctx *c, size_t i) { return in(c, i) && !WS(c, i); }
static size_t m_nonspace(const ctx *c, size_t i) { return run(c, i, NOT_WS); }

/* jais-2: llama3 but whitespace runs cut to 512/256/.../4/2/1 followed by
 * (?!\S), then a single \s. */
static size_t jais2_ws(const ctx *c, size_t i)
{
    static const size_t sizes[] = {512, 256, 128, 64, 32, 16, 8, 4};
    size_t r = run_memo(c, i, WS);
    if (!r)
        return 0;
    for (size_t k = 0; k < NR(sizes); k++)
        if (r >= sizes[k] && !(in(c, i + sizes[k]) && !WS(c, i + sizes[k])))
            return sizes[k];
    for (size_t k = 2; k >= 1; k--)   /* \s{1,2}(?!\S) */
        if (r >= k && !(in(c, i + k) && !WS(c, i + k)))
            return k;
    return 1;
}
/* exaone-moe:
 * contractions|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|
 * \s*[\r\n]|\s+(?!\S)|\s+ */
static size_t exaone_word(const ctx *c, size_t q)
{
    size_t k = q;
    if (!L(c, k))
        return 0;
    for (;;) {
        if (L(c, k)) {
            k++;
            while (M(c, k))
                k++;
        } else if (cpt(c, k) == ' ' && L(c, k + 1)) {
            k++;
        } else {
            break;
        }
    }
    return k - q;
}
static size_t m_exaone_moe(const ctx *c, size_t i)
{
    size_t n;
    if ((n = contraction(c, i, 1)))
        return n;
    if (!CRLF(c, i) && !N(c, i)) {
        if (L(c, i))
            return exaone_word(c, i);
        if ((n = exaone_word(c, i + 1)))
            return 1 + n;
    }
    if (N(c, i))
        return 1;
    {
        size_t j = i + (cpt(c, i) == ' ');
        size_t k = j + run(c, j, OTHER);
        if (k > j) {
            uint32_t x = cpt(c, k);
            if (x == '\r' || x == '\n' || x == '/')
                k++;
            return k - i;
        }
    }
    if ((n = ws_newlines(c, i)))
        return n;
    return ws_tail(c, i, 1);
}

/* superbpe: \p{N}+ then split digit runs into groups of three from the
 * right ((?=(\d{3})+(?!\d)) inserts boundaries). */
static size_t m_superbpe_groups(const ctx *c, size_t i)
{
    /* a boundary wherever a multiple of three ASCII digits follows; the
     * digits before the first boundary stay a piece of their own */
    size_t r = run_memo(c, i, DIGIT);
    return (r >= 3 && r % 3 == 0) ? 3 : 0;
}

/* afmoe digits: runs of \p{N} cut as (len % 3) then threes. */
static size_t m_afmoe_digits(const ctx *c, size_t i)
{
    size_t r = run_memo(c, i, N);
    if (!r)
        return 0;
    return r % 3 ? r % 3 : 3;
}
static const cp_range afmoe_cjk[] = {
    {0x4E00, 0x9FFF}, {0x3400, 0x4DBF}, {0xF900, 0xFAFF}, {0x3040, 0x309F}, {0x30A0, 0x30FF},
    {0xFF65, 0xFF9F}, {0x2F00, 0x2FDF}, {0x0E00, 0x0E7F}, {0x0E80, 0x0EFF}, {0x1780, 0x17FF},
    {0x1000, 0x109F}, {0xAA60, 0xAA7F}, {0xA9E0, 0xA9FF}, {0xAC00, 0xD7AF}, {0x1100, 0x11FF},
};
static int is_afmoe_cjk(const ctx *c, size_t i) { return in(c, i) && in_ranges(c->cp[i], afmoe_cjk, NR(afmoe_cjk)); }
static size_t m_afmoe_cjk(const ctx *c, size_t i) { return run(c, i, is_afmoe_cjk); }

/* kimi-k2: Han runs, then gpt-4o-like words that exclude Han. */
static int is_han(uint32_t x)
{
    return (x >= 0x4E00 && x <= 0x9FFF) || (x >= 0x3400 && x <= 0x4DBF) ||
           (x >= 0x20000 && x <= 0x2A6DF) || (x >= 0x2A700 && x <= 0x2B73F) ||
           (x >= 0x2B740 && x <= 0x2B81F) || (x >= 0x2B820 && x <= 0x2CEAF) ||
           (x >= 0x2CEB0 && x <= 0x2EBEF) || (x >= 0xF900 && x <= 0xFAFF) ||
           (x >= 0x2F800 && x <= 0x2FA1F);
}
static int L_nohan(const ctx *c, size_t i) { return L(c, i) && !is_han(c->cp[i]); }
static size_t kimi_match(const ctx *c, size_t i)
{
    size_t n;
    if (in(c, i) && is_han(c->cp[i])) {
        n = 0;
        while (in(c, i + n) && is_han(c->cp[i + n]))
            n++;
        return n;
    }
    int lead = in(c, i) && !CRLF(c, i) && !L(c, i) && !N(c, i);
    if (L_nohan(c, i) || (lead && L_nohan(c, i + 1))) {
        size_t k = i + (lead ? 1 : 0);
        k += run(c, k, L_nohan);
        k += contraction(c, k, 1);
        return k - i;
    }
    if (N(c, i)) {
        n = run_memo(c, i, N);
        return n > 3 ? 3 : n;
    }
    {
        size_t j = i + (cpt(c, i) == ' ');
        size_t k = j + run(c, j, OTHER);
        if (k > j) {
            while (CRLF(c, k))
                k++;
            return k - i;
        }
    }
    if ((n = ws_newlines(c, i)))
        return n;
    return ws_tail(c, i, 1);
}

/* chameleon passes */
static size_t m_chameleon_sentinel(const ctx *c, size_t i)
{
    static const char pre[] = "<sentinel:";
    size_t k = 0;
    for (; pre[k]; k++)
        if (cpt(c, i + k) != (uint32_t)(unsigned char)pre[k])
            return 0;
    size_t d = run(c, i + k, DIGIT);
    if (!d || cpt(c, i + k + d) != '>')
        return 0;
    return k + d + 1;
}
static size_t m_chameleon_image(const ctx *c, size_t i)
{
    static const char pre[] = "IMGIMG";
    size_t k = 0;
    for (; pre[k]; k++)
        if (cpt(c, i + k) != (uint32_t)(unsigned char)pre[k])
            return 0;
    size_t n = 0;
    while (n < 4 && cpt(c, i + k + n) >= 'A' && cpt(c, i + k + n) <= 'I')
        n++;
    /* (A..I){1,4}Z with backtracking: Z must follow one of the prefixes */
    for (size_t m = n; m >= 1; m--)
        if (cpt(c, i + k + m) == 'Z')
            return k + m + 1;
    return 0;
}
static size_t m_chameleon_ws(const ctx *c, size_t i)
{
    uint32_t x = cpt(c, i);
    if (x == '\t' || x == '\n')
        return 1;
    if (x == ' ') {
        if (cpt(c, i + 1) == ' ' && cpt(c, i + 2) == ' ' && cpt(c, i + 3) == ' ')
            return 4;
        if (cpt(c, i + 1) == ' ')
            return 2;
    }
    return 0;
}
static size_t m_chameleon_punct(const ctx *c, size_t i)
{
    uint32_t x = cpt(c, i);
    if (P(c, i))
        return 1;
    return (x >= 0x21 && x <= 0x7E && !ALPHA(c, i) && !DIGIT(c, i)) ? 1 : 0;
}

/* ---- passes ---- */

enum pass_kind { PASS_REGEX, PASS_GPT2, PASS_L3, PASS_CASE, PASS_KIMI };

typedef struct pass {
    enum pass_kind kind;
    match_fn fn;
    l3_opts l3;
    case_opts cs;
} pass;

static void run_pass(const pass *p, const ctx *c, pt_vec *out)
{
    switch (p->kind) {
    case PASS_REGEX: split_regex(c, p->fn, out); break;
    case PASS_GPT2: split_gpt2(c, out); break;
    case PASS_L3: split_l3(c, &p->l3, out); break;
    case PASS_CASE: split_case(c, &p->cs, out); break;
    case PASS_KIMI: {
        size_t i = c->ini;
        while (i < c->end) {
            size_t len = kimi_match(c, i);
            if (!len)
                len = 1;
            push(out, i + len);
            i += len;
        }
        push(out, c->end);
        break;
    }
    }
}

#define RX(f) {PASS_REGEX, f, {0, 0, 0, 0, 0}, {0, 0, 0, 0}}
#define GPT2 {PASS_GPT2, NULL, {0, 0, 0, 0, 0}, {0, 0, 0, 0}}
#define L3(ct, dg, mk, pt) {PASS_L3, NULL, {ct, dg, mk, pt, 0}, {0, 0, 0, 0}}
#define CASE(mk, ct, dg, nc) {PASS_CASE, NULL, {0, 0, 0, 0, 0}, {mk, ct, dg, nc}}
#define KIMI {PASS_KIMI, NULL, {0, 0, 0, 0, 0}, {0, 0, 0, 0}}

static size_t passes_of(enum pt_kind k, pass *p)
{
    size_t n = 0;
    switch (k) {
    case PT_DEFAULT:
        p[n++] = (pass)RX(m_default_punct); p[n++] = (pass)GPT2;
        p[n++] = (pass)RX(m_numbers); p[n++] = (pass)RX(m_three_ascii_digits);
        break;
    case PT_LLAMA3: p[n++] = (pass)L3(1, 3, 0, 0); break;
    case PT_GPT2: p[n++] = (pass)GPT2; break;
    case PT_STARCODER: p[n++] = (pass)RX(m_one_number); p[n++] = (pass)GPT2; break;
    case PT_FALCON:
        p[n++] = (pass)RX(m_falcon_punct); p[n++] = (pass)GPT2;
        p[n++] = (pass)RX(m_three_ascii_digits);
        break;
    case PT_QWEN2: p[n++] = (pass)L3(1, 1, 0, 0); break;
    case PT_QWEN35: p[n++] = (pass)L3(1, 1, 1, 0); break;
    case PT_UFAKZEKA: p[n++] = (pass)L3(0, 1, 0, 0); break;
    case PT_SEED_CODER: p[n++] = (pass)L3(1, 1, 0, 1); break;
    case PT_BAILINGMOE: p[n++] = (pass)L3(1, 1, 0, 0); break;
    case PT_MINICPM5: p[n++] = (pass)RX(m_numbers3); p[n++] = (pass)L3(1, 0, 0, 0); break;
    case PT_LAGUNA: p[n++] = (pass)RX(m_lines); p[n++] = (pass)L3(1, 1, 0, 0); break;
    case PT_JAIS2: p[n++] = (pass){PASS_L3, NULL, {1, 3, 0, 0, 1}, {0, 0, 0, 0}}; break;
    case PT_DEEPSEEK_LLM:
        p[n++] = (pass)RX(m_crlf); p[n++] = (pass)RX(m_ds_letters);
        p[n++] = (pass)RX(m_ds_punct); p[n++] = (pass)RX(m_ws_to_end);
        p[n++] = (pass)RX(m_cjk_ds); p[n++] = (pass)RX(m_numbers);
        break;
    case PT_DEEPSEEK_CODER:
        p[n++] = (pass)RX(m_crlf); p[n++] = (pass)RX(m_ws_letters);
        p[n++] = (pass)RX(m_ws_punct); p[n++] = (pass)RX(m_cjk_ds);
        p[n++] = (pass)RX(m_one_number);
        break;
    case PT_DEEPSEEK3:
        p[n++] = (pass)RX(m_numbers3); p[n++] = (pass)RX(m_cjk_kana); p[n++] = (pass)RX(m_ds3);
        break;
    case PT_SPARK2_5:
        p[n++] = (pass)RX(m_numbers3); p[n++] = (pass)RX(m_cjk_kana);
        p[n++] = (pass)RX(m_spark); p[n++] = (pass)RX(m_one_number);
        break;
    case PT_PORO: p[n++] = (pass)RX(m_poro); break;
    case PT_VIKING: p[n++] = (pass)RX(m_poro); p[n++] = (pass)RX(m_one_number); break;
    case PT_TEKKEN: p[n++] = (pass)CASE(0, 0, 1, 0); break;
    case PT_GPT4O: p[n++] = (pass)CASE(0, 1, 3, 0); break;
    case PT_GRANITE_EMB_MULTI: p[n++] = (pass)CASE(1, 1, 3, 0); break;
    case PT_TINY_AYA: p[n++] = (pass)RX(m_aya_digits); p[n++] = (pass)CASE(1, 1, 3, 1); break;
    case PT_SUPERBPE: p[n++] = (pass)RX(m_numbers); p[n++] = (pass)RX(m_superbpe_groups); break;
    case PT_KIMI_K2: p[n++] = (pass)KIMI; break;
    case PT_AFMOE:
        p[n++] = (pass)RX(m_afmoe_digits); p[n++] = (pass)RX(m_afmoe_cjk); p[n++] = (pass)RX(m_ds3);
        break;
    case PT_EXAONE_MOE: p[n++] = (pass)RX(m_exaone_moe); break;
    case PT_CHAMELEON:
        p[n++] = (pass)RX(m_chameleon_sentinel); p[n++] = (pass)RX(m_chameleon_image);
        p[n++] = (pass)RX(m_chameleon_ws); p[n++] = (pass)RX(m_one_number);
        p[n++] = (pass)RX(m_chameleon_punct); p[n++] = (pass)GPT2;
        break;
    case PT_WHITESPACE: p[n++] = (pass)RX(m_nonspace); break;
    }
    return n;
}

int pt_split(enum pt_kind kind, const uint32_t *cp, const uint8_t *cls, size_t n,
             pt_vec *out, pt_vec *tmp)
{
    pass passes[8];
    size_t np = passes_of(kind, passes);
    out->n = 0;
    out->oom = false;
    push(out, n);
    if (n == 0) {
        out->n = 0;
        return 0;
    }
    for (size_t k = 0; k < np; k++) {
        tmp->n = 0;
        tmp->oom = false;
        size_t start = 0;
        memo m = {NULL, 0, 0};
        for (size_t w = 0; w < out->n; w++) {
            ctx c = {cp, cls, start, out->v[w], &m};
            m.pred = NULL;
            run_pass(&passes[k], &c, tmp);
            start = out->v[w];
        }
        if (tmp->oom)
            return -1;
        pt_vec swap = *out;
        *out = *tmp;
        *tmp = swap;
    }
    return out->oom ? -1 : 0;
}

/* ---- names ---- */

typedef struct pre_name {
    const char *name;
    enum pt_kind kind;
    bool clean_spaces, ignore_merges;
    int add_bos;
    bool no_bos;
} pre_name;

static const pre_name pre_names[] = {
    {"default", PT_DEFAULT, true, false, -1, false},
    {"llama3", PT_LLAMA3, true, true, 1, false},
    {"llama-v3", PT_LLAMA3, true, true, 1, false},
    {"llama-bpe", PT_LLAMA3, true, true, 1, false},
    {"falcon3", PT_LLAMA3, true, true, 1, false},
    {"falcon-h1", PT_LLAMA3, true, true, 1, false},
    {"pixtral", PT_LLAMA3, true, true, 1, false},
    {"midm-2.0", PT_LLAMA3, true, true, 1, false},
    {"lfm2", PT_LLAMA3, true, true, 1, false},
    {"jina-v5-nano", PT_LLAMA3, true, true, 1, false},
    {"dbrx", PT_LLAMA3, true, false, -1, false},
    {"smaug-bpe", PT_LLAMA3, true, false, -1, false},
    {"glm4", PT_LLAMA3, true, false, -1, true},
    {"chatglm-bpe", PT_LLAMA3, true, false, -1, true},
    {"deepseek-llm", PT_DEEPSEEK_LLM, false, false, -1, false},
    {"deepseek-coder", PT_DEEPSEEK_CODER, false, false, -1, false},
    {"deepseek-v3", PT_DEEPSEEK3, false, false, -1, false},
    {"hunyuan-dense", PT_DEEPSEEK3, false, false, -1, false},
    {"joyai-llm", PT_DEEPSEEK3, false, false, -1, false},
    {"hy_v4", PT_DEEPSEEK3, false, false, -1, false},
    {"spark2_5", PT_SPARK2_5, false, false, -1, false},
    {"falcon", PT_FALCON, true, false, -1, false},
    {"mpt", PT_GPT2, true, false, -1, false},
    {"starcoder", PT_STARCODER, true, false, -1, false},
    {"gpt-2", PT_GPT2, true, false, -1, false},
    {"phi-2", PT_GPT2, true, false, -1, false},
    {"jina-es", PT_GPT2, true, false, -1, false},
    {"jina-de", PT_GPT2, true, false, -1, false},
    {"gigachat", PT_GPT2, true, false, -1, false},
    {"jina-v2-es", PT_GPT2, true, false, -1, false},
    {"jina-v2-de", PT_GPT2, true, false, -1, false},
    {"a.x-4.0", PT_GPT2, true, false, -1, false},
    {"mellum", PT_GPT2, true, false, -1, false},
    {"modern-bert", PT_GPT2, true, false, -1, false},
    {"jina-v1-en", PT_GPT2, true, false, -1, false},
    {"jina-v2-code", PT_GPT2, true, false, -1, false},
    {"roberta-bpe", PT_GPT2, true, false, -1, false},
    {"exaone4", PT_GPT2, true, false, -1, false},
    {"jais", PT_GPT2, true, false, -1, false},
    {"jais-2", PT_JAIS2, true, false, -1, false},
    {"olmo", PT_GPT2, true, false, -1, false},
    {"trillion", PT_GPT2, false, false, -1, false},
    {"granite-docling", PT_GPT2, false, false, -1, false},
    {"refact", PT_STARCODER, true, false, -1, false},
    {"command-r", PT_STARCODER, false, false, -1, false},
    {"smollm", PT_STARCODER, false, false, -1, false},
    {"codeshell", PT_STARCODER, true, false, -1, false},
    {"exaone", PT_STARCODER, true, false, -1, false},
    {"minerva-7b", PT_STARCODER, true, false, -1, false},
    {"mellum2", PT_STARCODER, true, false, -1, false},
    {"qwen2", PT_QWEN2, false, false, -1, false},
    {"deepseek-r1-qwen", PT_QWEN2, false, false, -1, false},
    {"kormo", PT_QWEN2, false, false, -1, false},
    {"f2llmv2", PT_QWEN2, false, false, -1, false},
    {"megrez", PT_QWEN2, true, false, -1, false},
    {"stablelm2", PT_QWEN2, true, false, -1, false},
    {"hunyuan", PT_QWEN2, false, false, -1, false},
    {"solar-open", PT_QWEN2, false, false, -1, false},
    {"grok-2", PT_QWEN2, false, false, -1, false},
    {"qwen35", PT_QWEN35, false, false, -1, false},
    {"ufakzeka", PT_UFAKZEKA, false, false, -1, false},
    {"seed-coder", PT_SEED_CODER, false, false, -1, false},
    {"bailingmoe", PT_BAILINGMOE, false, false, -1, false},
    {"bailingmoe2", PT_BAILINGMOE, false, false, -1, false},
    {"llada-moe", PT_BAILINGMOE, false, false, -1, false},
    {"minicpm5", PT_MINICPM5, true, true, -1, false},
    {"laguna", PT_LAGUNA, false, false, -1, false},
    {"poro-chat", PT_PORO, false, false, -1, false},
    {"bloom", PT_PORO, true, false, -1, false},
    {"gpt3-finnish", PT_PORO, true, false, -1, false},
    {"viking", PT_VIKING, false, false, -1, false},
    {"tekken", PT_TEKKEN, false, true, 1, false},
    {"gpt-4o", PT_GPT4O, false, false, -1, false},
    {"llama4", PT_GPT4O, false, false, -1, false},
    {"kanana2", PT_GPT4O, false, false, -1, false},
    {"talkie", PT_GPT4O, false, false, -1, false},
    {"minimax-m2", PT_GPT4O, false, false, -1, false},
    {"granite-embed-multi-97m", PT_GRANITE_EMB_MULTI, false, true, -1, false},
    {"tiny_aya", PT_TINY_AYA, false, false, -1, false},
    {"cohere2moe", PT_TINY_AYA, false, false, -1, false},
    {"superbpe", PT_SUPERBPE, false, false, -1, false},
    {"kimi-k2", PT_KIMI_K2, false, false, -1, false},
    {"afmoe", PT_AFMOE, false, false, -1, false},
    {"exaone-moe", PT_EXAONE_MOE, true, false, -1, false},
    {"chameleon", PT_CHAMELEON, false, false, 1, false},
    {"whitespace", PT_WHITESPACE, true, false, -1, false},
};

bool pt_lookup(const char *pre, size_t len, pt_info *out)
{
    if (!pre || len == 0) {
        pre = "default";
        len = 7;
    }
    for (size_t k = 0; k < NR(pre_names); k++) {
        const pre_name *e = &pre_names[k];
        if (strlen(e->name) == len && memcmp(e->name, pre, len) == 0) {
            out->kind = e->kind;
            out->clean_spaces = e->clean_spaces;
            out->ignore_merges = e->ignore_merges;
            out->add_bos = e->add_bos;
            out->no_bos_token = e->no_bos;
            return true;
        }
    }
    return false;
}

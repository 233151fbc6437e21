/* A bounded recursive-descent JSON reader (include/melt/jscan.h).
 *
 * The tree lives in two blocks: a node array (grown while parsing, links
 * as indices, turned into pointers once it stops moving) and a string
 * arena allocated once at the input's size — an unescaped string plus its
 * NUL never takes more bytes than its quoted source, so the arena cannot
 * overflow. Recursion is bounded by MELT_JSCAN_MAX_DEPTH.
 */
#include "melt/jscan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct melt_jnode {
    enum melt_jtype type;
    bool b;
    double num;
    const char *key;            /* member name, or NULL */
    const char *str;            /* string value */
    size_t str_len;
    size_t count;               /* children */
    uint32_t first_i, next_i, last_i;   /* links while parsing */
    const melt_jnode *first, *next;     /* links once done */
    const melt_jnode *const *kids;      /* the children in order, once done */
};

struct melt_jdoc {
    melt_jnode *nodes;
    size_t n_nodes;
    char *arena;
    const melt_jnode **kids;   /* every container's children, one run each */
};

typedef struct jp {
    const char *s;
    size_t len, pos;
    melt_jnode *nodes;
    size_t n, cap;
    char *arena;
    size_t arena_len;
    melt_error *err;
} jp;

static int fail(jp *p, const char *what)
{
    return melt_errorf(p->err, MELT_EFORMAT, "JSON: %s at byte %zu", what, p->pos);
}

static void skip_ws(jp *p)
{
    while (p->pos < p->len) {
        const char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static int new_node(jp *p, enum melt_jtype t, uint32_t *out)
{
    if (p->n == p->cap) {
        const size_t cap = p->cap ? p->cap * 2 : 64;
        if (cap >= NONE) return fail(p, "too many values");
        melt_jnode *nn = realloc(p->nodes, cap * sizeof *nn);
        if (!nn) return melt_errorf(p->err, MELT_ENOMEM, "JSON: out of memory");
        p->nodes = nn;
        p->cap = cap;
    }
    melt_jnode *n = &p->nodes[p->n];
    memset(n, 0, sizeof *n);
    n->type = t;
    n->first_i = n->next_i = n->last_i = NONE;
    *out = (uint32_t)p->n++;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        const char c = p[k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t bad_escape(const char **why, const char *what)
{
    *why = what;
    return 0;
}

size_t melt_json_unicode_escape(const char *p, size_t n, unsigned *cp, const char **why)
{
    unsigned lo;
    if (n < 6) return bad_escape(why, "truncated \\u escape");
    if (hex4(p + 2, cp) < 0) return bad_escape(why, "bad \\u escape");
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return bad_escape(why, "lone low surrogate in \\u escape");
    if (*cp < 0xD800 || *cp > 0xDBFF) return 6;
    if (n < 12 || p[6] != '\\' || p[7] != 'u') return bad_escape(why, "high surrogate without its low half");
    if (hex4(p + 8, &lo) < 0) return bad_escape(why, "bad \\u escape");
    if (lo < 0xDC00 || lo > 0xDFFF) return bad_escape(why, "high surrogate without its low half");
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return 12;
}

size_t melt_utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One \uXXXX escape (and its low half when it is a high surrogate) at
 * p->pos (just past the backslash-u); writes UTF-8 to o. */
static int unicode_escape(jp *p, char *o, size_t *wrote)
{
    unsigned cp;
    const char *why = NULL;
    const size_t at = p->pos - 2;   /* the backslash */
    const size_t used = melt_json_unicode_escape(p->s + at, p->len - at, &cp, &why);
    if (!used) return fail(p, why);
    p->pos = at + used;
    *wrote = melt_utf8_put(o, cp);
    return 0;
}

/* A string at p->pos (on the opening quote) into the arena. */
static int parse_string(jp *p, const char **out, size_t *out_len)
{
    p->pos++;   /* the quote */
    char *o = p->arena + p->arena_len;
    size_t k = 0;
    for (;;) {
        if (p->pos >= p->len) return fail(p, "unterminated string");
        const unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20) return fail(p, "control character in string");
        if (c != '\\') {
            o[k++] = (char)c;
            p->pos++;
            continue;
        }
        if (p->pos + 1 >= p->len) return fail(p, "unterminated string");
        const char e = p->s[p->pos + 1];
        p->pos += 2;
        switch (e) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            size_t w = 0;
            int rc = unicode_escape(p, o + k, &w);
            if (rc < 0) return rc;
            k += w;
            break;
        }
        default: p->pos -= 1; return fail(p, "bad escape");
        }
    }
    o[k] = '\0';
    p->arena_len += k + 1;
    *out = o;
    *out_len = k;
    return 0;
}

static int parse_number(jp *p, double *out)
{
    const size_t start = p->pos;
    const char *s = p->s;
    size_t i = p->pos;
    if (i < p->len && s[i] == '-') i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
    if (s[i] == '0') i++;
    else
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= p->len || s[i] < '0' || s[i] > '9') return fail(p, "bad number");
        while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
    }
    char buf[400];
    if (i - start >= sizeof buf) return fail(p, "number too long");
    memcpy(buf, s + start, i - start);
    buf[i - start] = '\0';
    *out = strtod(buf, NULL);
    p->pos = i;
    return 0;
}

static int parse_literal(jp *p, const char *word)
{
    const size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) return fail(p, "bad literal");
    p->pos += n;
    return 0;
}

static void add_child(jp *p, uint32_t parent, uint32_t kid)
{
    melt_jnode *par = &p->nodes[parent];
    if (par->last_i == NONE) par->first_i = kid;
    else p->nodes[par->last_i].next_i = kid;
    par->last_i = kid;
    par->count++;
}

static int parse_value(jp *p, int depth, uint32_t *out);

static int parse_container(jp *p, int depth, bool is_obj, uint32_t self)
{
    const char close = is_obj ? '}' : ']';
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        if (is_obj) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"') return fail(p, "expected member name");
            int rc = parse_string(p, &key, &key_len);
            if (rc < 0) return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') return fail(p, "expected ':'");
            p->pos++;
        }
        uint32_t kid;
        int rc = parse_value(p, depth + 1, &kid);
        if (rc < 0) return rc;
        p->nodes[kid].key = key;
        add_child(p, self, kid);
        skip_ws(p);
        if (p->pos >= p->len) return fail(p, is_obj ? "unterminated object" : "unterminated array");
        const char c = p->s[p->pos++];
        if (c == close) return 0;
        if (c != ',') {
            p->pos--;
            return fail(p, "expected ',' or end of container");
        }
    }
}

static int parse_value(jp *p, int depth, uint32_t *out)
{
    if (depth > MELT_JSCAN_MAX_DEPTH) return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->pos >= p->len) return fail(p, "unexpected end");
    const char c = p->s[p->pos];
    int rc;
    uint32_t self;
    switch (c) {
    case '{':
    case '[':
        if ((rc = new_node(p, c == '{' ? MELT_JOBJ : MELT_JARR, &self)) < 0) return rc;
        if ((rc = parse_container(p, depth, c == '{', self)) < 0) return rc;
        break;
    case '"': {
        const char *s;
        size_t n;
        if ((rc = new_node(p, MELT_JSTR, &self)) < 0) return rc;
        if ((rc = parse_string(p, &s, &n)) < 0) return rc;
        p->nodes[self].str = s;
        p->nodes[self].str_len = n;
        break;
    }
    case 't':
    case 'f':
        if ((rc = new_node(p, MELT_JBOOL, &self)) < 0) return rc;
        if ((rc = parse_literal(p, c == 't' ? "true" : "false")) < 0) return rc;
        p->nodes[self].b = c == 't';
        break;
    case 'n':
        if ((rc = new_node(p, MELT_JNULL, &self)) < 0) return rc;
        if ((rc = parse_literal(p, "null")) < 0) return rc;
        break;
    default: {
        double v;
        if ((rc = new_node(p, MELT_JNUM, &self)) < 0) return rc;
        if ((rc = parse_number(p, &v)) < 0) return rc;
        p->nodes[self].num = v;
        break;
    }
    }
    *out = self;
    return 0;
}

int melt_jscan_parse(const char *text, size_t len, melt_jdoc **out, melt_error *err)
{
    *out = NULL;
    jp p = {.s = text, .len = len, .err = err};
    p.arena = malloc(len + 1);
    melt_jdoc *doc = calloc(1, sizeof *doc);
    if (!p.arena || !doc) {
        free(p.arena);
        free(doc);
        return melt_errorf(err, MELT_ENOMEM, "JSON: out of memory");
    }
    uint32_t root;
    int rc = parse_value(&p, 1, &root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != p.len) rc = fail(&p, "trailing bytes after the value");
    }
    if (rc < 0) {
        free(p.nodes);
        free(p.arena);
        free(doc);
        return rc;
    }
    /* Each container's children side by side in one array, so that
     * melt_jnode_at is O(1): walking a long array (a server's "tokens")
     * by index must not be quadratic. */
    const melt_jnode **kids = malloc((p.n ? p.n : 1) * sizeof *kids);
    if (!kids) {
        free(p.nodes);
        free(p.arena);
        free(doc);
        return melt_errorf(err, MELT_ENOMEM, "JSON: out of memory");
    }
    size_t off = 0;
    for (size_t i = 0; i < p.n; i++) {
        melt_jnode *n = &p.nodes[i];
        n->first = n->first_i == NONE ? NULL : &p.nodes[n->first_i];
        n->next = n->next_i == NONE ? NULL : &p.nodes[n->next_i];
        n->kids = kids + off;
        for (uint32_t k = n->first_i; k != NONE; k = p.nodes[k].next_i) kids[off++] = &p.nodes[k];
    }
    doc->kids = kids;
    doc->nodes = p.nodes;
    doc->n_nodes = p.n;
    doc->arena = p.arena;
    *out = doc;
    return 0;
}

void melt_jdoc_free(melt_jdoc *doc)
{
    if (!doc) return;
    free(doc->nodes);
    free(doc->arena);
    free(doc->kids);
    free(doc);
}

const melt_jnode *melt_jdoc_root(const melt_jdoc *doc)
{
    return doc && doc->n_nodes ? &doc->nodes[0] : NULL;
}

enum melt_jtype melt_jnode_type(const melt_jnode *n)
{
    return n ? n->type : MELT_JNULL;
}

const char *melt_jnode_key(const melt_jnode *n)
{
    return n ? n->key : NULL;
}

size_t melt_jnode_count(const melt_jnode *n)
{
    return n ? n->count : 0;
}

const melt_jnode *melt_jnode_at(const melt_jnode *n, size_t i)
{
    if (!n || i >= n->count) return NULL;
    return n->kids[i];
}

static const melt_jnode *get_n(const melt_jnode *obj, const char *key, size_t key_len)
{
    if (!obj || obj->type != MELT_JOBJ) return NULL;
    const melt_jnode *hit = NULL;
    for (const melt_jnode *k = obj->first; k; k = k->next)
        if (strlen(k->key) == key_len && memcmp(k->key, key, key_len) == 0) hit = k;
    return hit;
}

const melt_jnode *melt_jnode_get(const melt_jnode *obj, const char *key)
{
    return key ? get_n(obj, key, strlen(key)) : NULL;
}

const melt_jnode *melt_jnode_path(const melt_jnode *n, const char *path)
{
    if (!path) return NULL;
    while (n && *path) {
        const char *dot = strchr(path, '.');
        const size_t k = dot ? (size_t)(dot - path) : strlen(path);
        bool digits = k > 0 && k < 10;
        for (size_t i = 0; i < k && digits; i++)
            if (path[i] < '0' || path[i] > '9') digits = false;
        if (n->type == MELT_JARR && digits) {
            size_t idx = 0;
            for (size_t i = 0; i < k; i++) idx = idx * 10 + (size_t)(path[i] - '0');
            n = melt_jnode_at(n, idx);
        } else {
            n = get_n(n, path, k);
        }
        path += k;
        if (*path == '.') path++;
    }
    return n;
}

const char *melt_jnode_str(const melt_jnode *n, size_t *len)
{
    if (!n || n->type != MELT_JSTR) return NULL;
    if (len) *len = n->str_len;
    return n->str;
}

bool melt_jnode_num(const melt_jnode *n, double *out)
{
    if (!n || n->type != MELT_JNUM) return false;
    *out = n->num;
    return true;
}

bool melt_jnode_bool(const melt_jnode *n, bool *out)
{
    if (!n || n->type != MELT_JBOOL) return false;
    *out = n->b;
    return true;
}

double melt_jnode_num_or(const melt_jnode *n, const char *path, double dflt)
{
    double v;
    return melt_jnode_num(melt_jnode_path(n, path), &v) ? v : dflt;
}

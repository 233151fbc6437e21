/* YAML → ynode tree over libyaml's event parser (see yaml_tree.h). */
#include "runner/yaml_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct loader {
    yaml_parser_t parser;
    const char *fname;
    melt_error *err;
} loader;

static int syntax_error(loader *L)
{
    const yaml_parser_t *p = &L->parser;
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR)
        return melt_errorf(L->err, MELT_ENOMEM, "%s: out of memory while parsing YAML", L->fname);
    if (p->error == YAML_READER_ERROR)
        return melt_errorf(L->err, MELT_EFORMAT, "%s: byte %zu: %s", L->fname,
                           p->problem_offset, problem);
    if (p->context)
        return melt_errorf(L->err, MELT_EFORMAT, "%s:%zu:%zu: %s (%s at %zu:%zu)", L->fname,
                           p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                           p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return melt_errorf(L->err, MELT_EFORMAT, "%s:%zu:%zu: %s", L->fname,
                       p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
}

static int next_event(loader *L, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&L->parser, ev))
        return syntax_error(L);
    return 0;
}

void ytree_free(ynode *n)
{
    if (!n)
        return;
    size_t count = n->kind == YNODE_MAP ? 2 * n->n : n->n;
    for (size_t i = 0; i < count; i++)
        ytree_free(n->items[i]);
    free(n->items);
    free(n->str);
    free(n);
}

static ynode *new_node(enum ynode_kind kind, const yaml_mark_t *m)
{
    ynode *n = calloc(1, sizeof *n);
    if (n) {
        n->kind = kind;
        n->line = (int)(m->line + 1 > 1000000000 ? 1000000000 : m->line + 1);
        n->col = (int)(m->column + 1 > 1000000000 ? 1000000000 : m->column + 1);
    }
    return n;
}

static int push_item(ynode *parent, ynode *child, size_t *cap, size_t count)
{
    if (count == *cap) {
        size_t c = *cap ? *cap * 2 : 8;
        ynode **items = realloc(parent->items, c * sizeof *items);
        if (!items)
            return -1;
        parent->items = items;
        *cap = c;
    }
    parent->items[count] = child;
    return 0;
}

static bool same_key(const ynode *a, const ynode *b)
{
    return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* Build the node that starts with *ev (consumed). */
static int load_node(loader *L, yaml_event_t *ev, int depth, ynode **out)
{
    *out = NULL;
    const yaml_mark_t *m = &ev->start_mark;
    if (ev->type == YAML_ALIAS_EVENT) {
        int rc = melt_errorf(L->err, MELT_EFORMAT,
                             "%s:%zu:%zu: aliases ('*%s') are not supported in experiment files",
                             L->fname, m->line + 1, m->column + 1,
                             (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        return rc;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        ynode *n = new_node(YNODE_SCALAR, m);
        if (!n || !(n->str = malloc(ev->data.scalar.length + 1))) {
            free(n);
            yaml_event_delete(ev);
            return melt_errorf(L->err, MELT_ENOMEM, "%s: out of memory", L->fname);
        }
        memcpy(n->str, ev->data.scalar.value, ev->data.scalar.length);
        n->str[ev->data.scalar.length] = '\0';
        n->len = ev->data.scalar.length;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev->data.scalar.tag;
        yaml_event_delete(ev);
        *out = n;
        return 0;
    }
    bool is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (!is_map && ev->type != YAML_SEQUENCE_START_EVENT) {
        yaml_event_delete(ev);
        return melt_errorf(L->err, MELT_EFORMAT, "%s:%zu:%zu: unexpected YAML event", L->fname,
                           m->line + 1, m->column + 1);
    }
    ynode *n = new_node(is_map ? YNODE_MAP : YNODE_SEQ, m);
    yaml_event_delete(ev);
    if (!n)
        return melt_errorf(L->err, MELT_ENOMEM, "%s: out of memory", L->fname);
    if (depth >= YTREE_MAX_DEPTH) {
        int rc = melt_errorf(L->err, MELT_EFORMAT, "%s:%d:%d: nested deeper than %d levels",
                             L->fname, n->line, n->col, YTREE_MAX_DEPTH);
        free(n);
        return rc;
    }
    size_t cap = 0, count = 0;
    for (;;) {
        yaml_event_t e;
        int rc = next_event(L, &e);
        if (rc < 0)
            goto fail;
        if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        ynode *child;
        if (is_map && count % 2 == 0 && e.type != YAML_SCALAR_EVENT) {
            rc = melt_errorf(L->err, MELT_EFORMAT, "%s:%zu:%zu: a key must be a plain string",
                             L->fname, e.start_mark.line + 1, e.start_mark.column + 1);
            yaml_event_delete(&e);
            goto fail;
        }
        if ((rc = load_node(L, &e, depth + 1, &child)) < 0)
            goto fail;
        if (is_map && count % 2 == 0) {
            for (size_t k = 0; k < count; k += 2) {
                if (same_key(n->items[k], child)) {
                    rc = melt_errorf(L->err, MELT_EFORMAT,
                                     "%s:%d:%d: duplicate key '%s' (first at %d:%d)", L->fname,
                                     child->line, child->col, child->str, n->items[k]->line,
                                     n->items[k]->col);
                    ytree_free(child);
                    goto fail;
                }
            }
        }
        if (push_item(n, child, &cap, count) < 0) {
            ytree_free(child);
            rc = melt_errorf(L->err, MELT_ENOMEM, "%s: out of memory", L->fname);
            goto fail;
        }
        count++;
        n->n = is_map ? count / 2 : count;
        continue;
    fail:
        /* n->n counts complete pairs; free a dangling key too. */
        if (is_map && count % 2 == 1)
            ytree_free(n->items[count - 1]);
        ytree_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

int ytree_load(const char *buf, size_t len, const char *fname, ynode **root, melt_error *err)
{
    *root = NULL;
    loader L = {.fname = fname, .err = err};
    if (!yaml_parser_initialize(&L.parser))
        return melt_errorf(err, MELT_ENOMEM, "%s: out of memory", fname);
    yaml_parser_set_input_string(&L.parser, (const unsigned char *)buf, len);
    yaml_event_t e;
    int rc;
    ynode *doc = NULL;
    /* stream start, then a document or the stream end */
    if ((rc = next_event(&L, &e)) < 0)
        goto out;
    yaml_event_delete(&e);
    if ((rc = next_event(&L, &e)) < 0)
        goto out;
    if (e.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&e);
        goto out;
    }
    yaml_event_delete(&e); /* document start */
    if ((rc = next_event(&L, &e)) < 0)
        goto out;
    if ((rc = load_node(&L, &e, 0, &doc)) < 0)
        goto out;
    if ((rc = next_event(&L, &e)) < 0) /* document end */
        goto out;
    yaml_event_delete(&e);
    if ((rc = next_event(&L, &e)) < 0)
        goto out;
    if (e.type != YAML_STREAM_END_EVENT) {
        rc = melt_errorf(err, MELT_EFORMAT,
                         "%s:%zu:%zu: more than one YAML document (an experiment file holds one)",
                         fname, e.start_mark.line + 1, e.start_mark.column + 1);
        yaml_event_delete(&e);
        goto out;
    }
    yaml_event_delete(&e);
    rc = 0;
out:
    yaml_parser_delete(&L.parser);
    if (rc < 0) {
        ytree_free(doc);
        return rc;
    }
    *root = doc;
    return 0;
}

const ynode *ytree_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YNODE_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < map->n; i++) {
        const ynode *k = map->items[2 * i];
        if (k->len == klen && memcmp(k->str, key, klen) == 0)
            return map->items[2 * i + 1];
    }
    return NULL;
}

bool ytree_is_null(const ynode *n)
{
    if (!n || n->kind != YNODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

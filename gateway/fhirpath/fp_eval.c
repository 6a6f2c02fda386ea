/*
 * fp_eval.c — the FHIRPath evaluator: a recursive walk over the compiled tree
 * (fp_ast.h) that turns a focus collection into a result collection.
 *
 * Items are nodes of the resource tree or System values (fp_value.h). Every
 * collection is an array in the caller's arena, grown by doubling. Function
 * arguments that are not lambdas (where, select, all, exists, repeat, iif)
 * are evaluated against the focus of the enclosing expression, lambdas once
 * per item with $this, $index (and $total for aggregate).
 */
#include "fhirpath.h"
#include "fp_ast.h"

#include "fp_value.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"

typedef enum item_kind {
    IT_NODE,
    IT_BOOLEAN,
    IT_STRING,
    IT_INTEGER,
    IT_DECIMAL,
    IT_DATE,
    IT_DATETIME,
    IT_TIME,
    IT_QUANTITY,
    IT_TYPEINFO /* the result of type(): members namespace and name */
} item_kind;

struct fp_item {
    uint8_t kind; /* item_kind */
    const fhir_node *node;
    union {
        bool b;
        int32_t i;
        fp_decimal d;
        fp_datetime dt;
        fp_quantity q;
        struct {
            const char *s;
            uint32_t len;
        } s;
        struct {
            const char *ns, *name;
        } ti;
    } v;
};

typedef struct fp_ctx {
    const fp_expr *e;
    const fhir_node *resource, *context;
    const fp_env *env;
    tsg_arena *a;
    tsg_error *err;
    long long now_ms; /* the clock of now()/today()/timeOfDay(): read on first use */
    int tz;
    int clock_read;
    /* lambda scope */
    const fp_item *this_item;
    int32_t index;
    const fp_collection *total;
    /* work budget (FP_LIMIT_STEPS): node visits plus item comparisons */
    unsigned long long steps, max_steps;
    int over; /* the budget ran out; eval() turns this into TSG_ELIMIT */
} fp_ctx;

typedef fp_collection coll;

/* True when the function name fn (of length fnl, in scope) is the literal
 * name: the length check first, so a dispatch over many names costs a few
 * integer compares instead of a strcmp each. */
#define IS_FN(name) (fnl == sizeof(name) - 1 && !memcmp(fn, name, sizeof(name) - 1))

/* ------------------------------------------------------------------------
 * Errors and collections
 * ------------------------------------------------------------------------ */

static tsg_rc fail(fp_ctx *c, const fp_node *n, tsg_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills the error with rc, a message and the column of n; returns rc. */
static tsg_rc fail(fp_ctx *c, const fp_node *n, tsg_rc rc, const char *fmt, ...)
{
    if (!c->err) return rc;
    char msg[TSG_ERR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tsg_error_set(c->err, rc, tsg_rc_code(rc), "%s", msg);
    c->err->line = 0;
    c->err->column = n ? fp_expr_column(c->e, n->pos) : 0;
    return rc;
}

static tsg_rc nomem(fp_ctx *c)
{
    return fail(c, NULL, TSG_ENOMEM, "out of memory evaluating FHIRPath");
}

/* Appends *it to o; TSG_ENOMEM / TSG_ELIMIT. */
static tsg_rc push(fp_ctx *c, coll *o, const fp_item *it)
{
    if (o->count == o->cap) {
        if (o->cap >= FP_LIMIT_ITEMS)
            return fail(c, NULL, TSG_ELIMIT, "a collection exceeds FP_LIMIT_ITEMS (%u)",
                        FP_LIMIT_ITEMS);
        size_t ncap = o->cap ? o->cap * 2 : 4;
        fp_item *n = tsg_arena_alloc(c->a, ncap * sizeof *n);
        if (!n) return nomem(c);
        if (o->count) memcpy(n, o->items, o->count * sizeof *n);
        o->items = n;
        o->cap = ncap;
    }
    o->items[o->count++] = *it;
    return TSG_OK;
}

static tsg_rc push_bool(fp_ctx *c, coll *o, bool b)
{
    fp_item it = {.kind = IT_BOOLEAN};
    it.v.b = b;
    return push(c, o, &it);
}

static tsg_rc push_int(fp_ctx *c, coll *o, int32_t i)
{
    fp_item it = {.kind = IT_INTEGER};
    it.v.i = i;
    return push(c, o, &it);
}

static tsg_rc push_str(fp_ctx *c, coll *o, const char *s, size_t n)
{
    fp_item it = {.kind = IT_STRING};
    it.v.s.s = s;
    it.v.s.len = (uint32_t)n;
    return push(c, o, &it);
}

static tsg_rc push_node(fp_ctx *c, coll *o, const fhir_node *n)
{
    fp_item it = {.kind = IT_NODE, .node = n};
    return push(c, o, &it);
}

/* ------------------------------------------------------------------------
 * Items: System values of primitive nodes, text forms
 * ------------------------------------------------------------------------ */

/*
 * The System value of item `in`: a copy for System values; for a primitive
 * node with a value, its text parsed by the type's System type. Returns 1
 * and fills *out, or 0 when the item has no System value (complex node,
 * primitive without value, unparseable text).
 */
static int sysval(const fp_item *in, fp_item *out)
{
    if (in->kind != IT_NODE) {
        *out = *in;
        return 1;
    }
    const fhir_node *n = in->node;
    if (!model_is_primitive(n->type) || !n->value) return 0;
    const char *st = n->type->system_type ? n->type->system_type : "System.String";
    memset(out, 0, sizeof *out);
    if (!strcmp(st, "System.Boolean")) {
        out->kind = IT_BOOLEAN;
        out->v.b = n->value_len == 4 && !memcmp(n->value, "true", 4);
        return 1;
    }
    if (!strcmp(st, "System.Integer")) {
        out->kind = IT_INTEGER;
        return fp_int_parse(n->value, n->value_len, &out->v.i) == FP_OK;
    }
    if (!strcmp(st, "System.Decimal")) {
        out->kind = IT_DECIMAL;
        return fp_dec_parse(n->value, n->value_len, FP_DEC_FHIR, &out->v.d) == FP_OK;
    }
    if (!strcmp(st, "System.Date") || !strcmp(st, "System.DateTime") ||
        !strcmp(st, "System.Time")) {
        fp_dt_kind k = !strcmp(st, "System.Date")       ? FP_DATE
                       : !strcmp(st, "System.DateTime") ? FP_DATETIME
                                                        : FP_TIME;
        if (fp_dt_parse_text(n->value, n->value_len, k, &out->v.dt) != FP_OK) return 0;
        out->kind = k == FP_DATE ? IT_DATE : k == FP_DATETIME ? IT_DATETIME : IT_TIME;
        return 1;
    }
    out->kind = IT_STRING;
    out->v.s.s = n->value;
    out->v.s.len = n->value_len;
    return 1;
}

/* A Quantity node (FHIR.Quantity and its profiles) as a System Quantity. */
static int node_quantity(const fhir_node *n, fp_quantity *q)
{
    const model_type *qt = model_type_find("Quantity", 8);
    if (!qt || !model_type_is(n->type, qt)) return 0;
    const fhir_node *val = NULL, *code = NULL, *unit = NULL;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const char *nm = n->kids[i].elem->name;
        if (!strcmp(nm, "value")) val = &n->kids[i];
        if (!strcmp(nm, "code")) code = &n->kids[i];
        if (!strcmp(nm, "unit")) unit = &n->kids[i];
    }
    if (!val || !val->value) return 0;
    fp_decimal d;
    if (fp_dec_parse(val->value, val->value_len, FP_DEC_FHIR, &d) != FP_OK) return 0;
    const fhir_node *u = code && code->value ? code : unit;
    const char *us = u && u->value ? u->value : "";
    size_t ul = u && u->value ? u->value_len : 0;
    if (ul == 1 && us[0] == '1') ul = 0;
    return fp_qty_make(d, us, ul, false, q) == FP_OK;
}

/* sysval, plus Quantity nodes as System quantities. */
static int sysval_q(const fp_item *in, fp_item *out)
{
    if (sysval(in, out)) return 1;
    if (in->kind == IT_NODE && node_quantity(in->node, &out->v.q)) {
        out->kind = IT_QUANTITY;
        out->node = NULL;
        return 1;
    }
    return 0;
}

static void write_json_string(tsg_buf *b, const char *s, size_t n)
{
    tsg_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            tsg_buf_putc(b, '\\');
            tsg_buf_putc(b, (char)ch);
        } else if (ch == '\n') {
            tsg_buf_puts(b, "\\n");
        } else if (ch == '\r') {
            tsg_buf_puts(b, "\\r");
        } else if (ch == '\t') {
            tsg_buf_puts(b, "\\t");
        } else if (ch < 0x20) {
            tsg_buf_printf(b, "\\u%04x", ch);
        } else {
            tsg_buf_putc(b, (char)ch);
        }
    }
    tsg_buf_putc(b, '"');
}

static void write_node_json(const fhir_node *n, tsg_buf *b);

/* Writes a primitive's value as JSON (number, boolean or string). */
static void write_prim_json(const fhir_node *n, tsg_buf *b)
{
    if (!n->value)
        tsg_buf_puts(b, "null");
    else if (n->type->flags & (MODEL_TYPE_JSON_NUMBER | MODEL_TYPE_JSON_BOOL))
        tsg_buf_append(b, n->value, n->value_len);
    else
        write_json_string(b, n->value, n->value_len);
}

/* Writes the children of n as JSON members (no braces). */
static void write_members(const fhir_node *n, tsg_buf *b, int first)
{
    for (uint32_t i = 0; i < n->nkids;) {
        const fhir_node *k = &n->kids[i];
        uint32_t j = i + 1;
        while (j < n->nkids && n->kids[j].elem == k->elem && k->elem->max > 1) j++;
        char name[128];
        if (!model_property_name(k->elem, k->type, name, sizeof name)) {
            i = j;
            continue;
        }
        if (!first) tsg_buf_putc(b, ',');
        first = 0;
        write_json_string(b, name, strlen(name));
        tsg_buf_putc(b, ':');
        int many = k->elem->max > 1;
        if (many) tsg_buf_putc(b, '[');
        for (uint32_t x = i; x < j; x++) {
            if (x > i) tsg_buf_putc(b, ',');
            if (model_is_primitive(n->kids[x].type))
                write_prim_json(&n->kids[x], b);
            else
                write_node_json(&n->kids[x], b);
        }
        if (many) tsg_buf_putc(b, ']');
        /* primitives with an id or extensions get their `_name` companion */
        int ext = 0;
        for (uint32_t x = i; x < j; x++)
            ext |= model_is_primitive(n->kids[x].type) && n->kids[x].nkids > 0;
        if (ext) {
            tsg_buf_puts(b, ",\"_");
            tsg_buf_puts(b, name);
            tsg_buf_puts(b, "\":");
            if (many) tsg_buf_putc(b, '[');
            for (uint32_t x = i; x < j; x++) {
                if (x > i) tsg_buf_putc(b, ',');
                if (!n->kids[x].nkids) {
                    tsg_buf_puts(b, "null");
                    continue;
                }
                tsg_buf_putc(b, '{');
                write_members(&n->kids[x], b, 1);
                tsg_buf_putc(b, '}');
            }
            if (many) tsg_buf_putc(b, ']');
        }
        i = j;
    }
}

/* Writes a complex node (or a resource) as a JSON object. */
static void write_node_json(const fhir_node *n, tsg_buf *b)
{
    if (model_is_primitive(n->type)) {
        write_prim_json(n, b);
        return;
    }
    tsg_buf_putc(b, '{');
    int first = 1;
    if (model_is_resource(n->type)) {
        tsg_buf_puts(b, "\"resourceType\":");
        write_json_string(b, n->type->name, strlen(n->type->name));
        first = 0;
    }
    write_members(n, b, first);
    tsg_buf_putc(b, '}');
}

/* Appends the toString() text of a System value or primitive node. */
static void write_text(const fp_item *it, tsg_buf *b)
{
    char buf[FP_DEC_TEXT_MAX + FP_DT_TEXT_MAX];
    switch ((item_kind)it->kind) {
    case IT_NODE:
        if (it->node->value)
            tsg_buf_append(b, it->node->value, it->node->value_len);
        else if (!model_is_primitive(it->node->type))
            write_node_json(it->node, b);
        break;
    case IT_BOOLEAN:
        tsg_buf_puts(b, it->v.b ? "true" : "false");
        break;
    case IT_STRING:
        tsg_buf_append(b, it->v.s.s, it->v.s.len);
        break;
    case IT_INTEGER:
        tsg_buf_printf(b, "%d", (int)it->v.i);
        break;
    case IT_DECIMAL:
        fp_dec_format(it->v.d, buf, sizeof buf);
        tsg_buf_puts(b, buf);
        break;
    case IT_DATE:
    case IT_DATETIME:
    case IT_TIME:
        fp_dt_format(&it->v.dt, buf, sizeof buf);
        tsg_buf_puts(b, buf);
        break;
    case IT_QUANTITY:
        fp_qty_format(&it->v.q, b);
        break;
    case IT_TYPEINFO:
        tsg_buf_printf(b, "%s.%s", it->v.ti.ns, it->v.ti.name);
        break;
    }
}

/* The toString() text of an item in the arena; NULL for complex nodes. */
static const char *item_text(fp_ctx *c, const fp_item *it, size_t *len)
{
    if (it->kind == IT_STRING) {
        *len = it->v.s.len;
        return it->v.s.s;
    }
    if (it->kind == IT_NODE && (!model_is_primitive(it->node->type) || !it->node->value)) {
        fp_item q;
        if (!sysval_q(it, &q) || q.kind != IT_QUANTITY) return NULL;
        return item_text(c, &q, len);
    }
    if (it->kind == IT_NODE) {
        *len = it->node->value_len;
        return it->node->value;
    }
    tsg_buf b;
    tsg_buf_init(&b, 4096);
    write_text(it, &b);
    const char *r = NULL;
    if (tsg_buf_rc(&b) == TSG_OK) r = tsg_arena_strndup(c->a, b.data ? b.data : "", b.len);
    *len = b.len;
    tsg_buf_free(&b);
    return r;
}

static const char *const sys_names[] = {
    [IT_BOOLEAN] = "Boolean", [IT_STRING] = "String",     [IT_INTEGER] = "Integer",
    [IT_DECIMAL] = "Decimal", [IT_DATE] = "Date",         [IT_DATETIME] = "DateTime",
    [IT_TIME] = "Time",       [IT_QUANTITY] = "Quantity", [IT_TYPEINFO] = "TypeInfo",
};

/* ------------------------------------------------------------------------
 * Public item accessors
 * ------------------------------------------------------------------------ */

const fp_item *fp_collection_item(const fp_collection *c, size_t i)
{
    return &c->items[i];
}

const fhir_node *fp_item_node(const fp_item *it)
{
    return it->kind == IT_NODE ? it->node : NULL;
}

size_t fp_item_type_name(const fp_item *it, char *buf, size_t cap)
{
    int n;
    if (it->kind == IT_NODE)
        n = snprintf(buf, cap, "FHIR.%s", it->node->type->name);
    else
        n = snprintf(buf, cap, "System.%s", sys_names[it->kind]);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int fp_item_is_primitive(const fp_item *it)
{
    return it->kind != IT_NODE || model_is_primitive(it->node->type);
}

void fp_item_write_text(const fp_item *it, tsg_buf *out)
{
    write_text(it, out);
}

void fp_collection_write_json(const fp_collection *c, tsg_buf *out)
{
    tsg_buf_putc(out, '[');
    for (size_t i = 0; i < c->count; i++) {
        const fp_item *it = &c->items[i];
        char tn[160];
        fp_item_type_name(it, tn, sizeof tn);
        if (i) tsg_buf_putc(out, ',');
        tsg_buf_puts(out, "{\"type\":");
        write_json_string(out, tn, strlen(tn));
        tsg_buf_puts(out, ",\"value\":");
        if (fp_item_is_primitive(it)) {
            tsg_buf tb;
            tsg_buf_init(&tb, 0);
            write_text(it, &tb);
            write_json_string(out, tb.data ? tb.data : "", tb.len);
            tsg_buf_free(&tb);
        } else {
            write_node_json(it->node, out);
        }
        tsg_buf_putc(out, '}');
    }
    tsg_buf_putc(out, ']');
}

tsg_rc fp_collection_of_node(tsg_arena *a, const fhir_node *node, fp_collection *out)
{
    memset(out, 0, sizeof *out);
    out->items = tsg_arena_zalloc(a, sizeof *out->items);
    if (!out->items) return TSG_ENOMEM;
    out->items[0].kind = IT_NODE;
    out->items[0].node = node;
    out->count = out->cap = 1;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * Equality, equivalence, order
 * ------------------------------------------------------------------------ */

#define EQ_FALSE   0
#define EQ_TRUE    1
#define EQ_UNKNOWN 2

static int node_deep_equal(const fhir_node *a, const fhir_node *b)
{
    if (a->type != b->type || a->nkids != b->nkids) return 0;
    if ((a->value == NULL) != (b->value == NULL)) return 0;
    if (a->value && (a->value_len != b->value_len || memcmp(a->value, b->value, a->value_len)))
        return 0;
    for (uint32_t i = 0; i < a->nkids; i++) {
        if (a->kids[i].elem != b->kids[i].elem) return 0;
        if (!node_deep_equal(&a->kids[i], &b->kids[i])) return 0;
    }
    return 1;
}

static int is_num(int k)
{
    return k == IT_INTEGER || k == IT_DECIMAL;
}

static fp_decimal as_dec(const fp_item *x)
{
    return x->kind == IT_INTEGER ? fp_dec_from_int(x->v.i) : x->v.d;
}

static int is_dt(int k)
{
    return k == IT_DATE || k == IT_DATETIME || k == IT_TIME;
}

/* Orders two System values: FP_LT/EQ/GT, FP_UNKNOWN, FP_INCOMPARABLE. */
static fp_cmp compare_sys(const fp_item *x, const fp_item *y)
{
    if (is_num(x->kind) && is_num(y->kind)) {
        if (x->kind == IT_INTEGER && y->kind == IT_INTEGER)
            return x->v.i < y->v.i ? FP_LT : x->v.i > y->v.i ? FP_GT : FP_EQ;
        return fp_dec_compare(as_dec(x), as_dec(y));
    }
    if (x->kind == IT_STRING && y->kind == IT_STRING) {
        size_t n = x->v.s.len < y->v.s.len ? x->v.s.len : y->v.s.len;
        int r = memcmp(x->v.s.s, y->v.s.s, n);
        if (!r) r = x->v.s.len < y->v.s.len ? -1 : x->v.s.len > y->v.s.len;
        return r < 0 ? FP_LT : r > 0 ? FP_GT : FP_EQ;
    }
    if (is_dt(x->kind) && is_dt(y->kind)) return fp_dt_compare(&x->v.dt, &y->v.dt);
    if (x->kind == IT_QUANTITY && y->kind == IT_QUANTITY) return fp_qty_compare(&x->v.q, &y->v.q);
    if (x->kind == IT_BOOLEAN && y->kind == IT_BOOLEAN) return x->v.b == y->v.b ? FP_EQ : FP_LT;
    return FP_INCOMPARABLE;
}

/* Equality (=) of two items: EQ_TRUE, EQ_FALSE or EQ_UNKNOWN. */
static int item_equal(const fp_item *a, const fp_item *b)
{
    fp_item x, y;
    int hx = sysval_q(a, &x), hy = sysval_q(b, &y);
    if (!hx || !hy) {
        if (a->kind == IT_NODE && b->kind == IT_NODE) return node_deep_equal(a->node, b->node);
        return EQ_FALSE;
    }
    if (x.kind == IT_DECIMAL && y.kind == IT_DECIMAL) return fp_dec_equal(x.v.d, y.v.d);
    fp_cmp r = compare_sys(&x, &y);
    if (r == FP_UNKNOWN) return EQ_UNKNOWN;
    if (x.kind == IT_QUANTITY && r == FP_INCOMPARABLE) return EQ_FALSE;
    return r == FP_EQ;
}

/* A cursor over a string as string equivalence sees it: lower case, runs of
 * whitespace as one space, leading and trailing whitespace dropped. */
typedef struct norm_cursor {
    const char *s;
    size_t n, i;
} norm_cursor;

/* The next normalised byte, or -1 at the end. */
static int norm_next(norm_cursor *c)
{
    if (c->i < c->n && isspace((unsigned char)c->s[c->i])) {
        size_t j = c->i;
        while (j < c->n && isspace((unsigned char)c->s[j])) j++;
        int leading = c->i == 0;
        c->i = j;
        if (!leading && j < c->n) return ' ';
    }
    if (c->i >= c->n) return -1;
    return tolower((unsigned char)c->s[c->i++]);
}

/* String equivalence (~) without copying: any length. */
static int str_equiv(const char *a, size_t na, const char *b, size_t nb)
{
    norm_cursor x = {a, na, 0}, y = {b, nb, 0};
    for (;;) {
        int cx = norm_next(&x), cy = norm_next(&y);
        if (cx != cy) return 0;
        if (cx < 0) return 1;
    }
}

static int item_equiv(const fp_item *a, const fp_item *b)
{
    fp_item x, y;
    int hx = sysval_q(a, &x), hy = sysval_q(b, &y);
    if (!hx || !hy) {
        if (a->kind == IT_NODE && b->kind == IT_NODE) return node_deep_equal(a->node, b->node);
        return 0;
    }
    if (is_num(x.kind) && is_num(y.kind)) return fp_dec_equivalent(as_dec(&x), as_dec(&y));
    if (x.kind == IT_STRING && y.kind == IT_STRING) {
        return str_equiv(x.v.s.s, x.v.s.len, y.v.s.s, y.v.s.len);
    }
    if (is_dt(x.kind) && is_dt(y.kind)) return fp_dt_equivalent(&x.v.dt, &y.v.dt);
    if (x.kind == IT_QUANTITY && y.kind == IT_QUANTITY) return fp_qty_equivalent(&x.v.q, &y.v.q);
    return compare_sys(&x, &y) == FP_EQ;
}

/* Whether c holds an item equal to it (for distinct, union, contains). */
/* True when col holds an item equal to it. Counts col->count steps against the
 * budget; once it is spent, answers 1 (so callers add nothing more) and marks
 * the context, and eval() fails with TSG_ELIMIT. */
static int coll_has(fp_ctx *c, const coll *col, const fp_item *it)
{
    c->steps += col->count;
    if (c->steps > c->max_steps) {
        c->over = 1;
        return 1;
    }
    for (size_t i = 0; i < col->count; i++)
        if (item_equal(&col->items[i], it) == EQ_TRUE) return 1;
    return 0;
}

/* ------------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------------ */

static tsg_rc eval(fp_ctx *c, const fp_node *n, const coll *focus, coll *out);

/* Evaluates n with the single item `it` as $this (index i). */
static tsg_rc eval_lambda(fp_ctx *c, const fp_node *n, const fp_item *it, int32_t i,
                          const coll *total, coll *out)
{
    const fp_item *save_this = c->this_item;
    int32_t save_index = c->index;
    const coll *save_total = c->total;
    coll f = {.items = (fp_item *)it, .count = 1, .cap = 1};
    c->this_item = it;
    c->index = i;
    if (total) c->total = total;
    memset(out, 0, sizeof *out);
    tsg_rc rc = eval(c, n, &f, out);
    c->this_item = save_this;
    c->index = save_index;
    c->total = save_total;
    return rc;
}

/* The singleton of col as a System value: 1 ok, 0 empty (or no value);
 * an error for a collection of several items. */
static tsg_rc single(fp_ctx *c, const fp_node *n, const coll *col, fp_item *out, int *have)
{
    *have = 0;
    if (col->count == 0) return TSG_OK;
    if (col->count > 1)
        return fail(c, n, TSG_EINVAL, "a single item is required, the collection has %zu",
                    col->count);
    *have = sysval_q(&col->items[0], out);
    return TSG_OK;
}

/* Three-valued truth of a collection: 0 false, 1 true, 2 empty. */
static tsg_rc truth(fp_ctx *c, const fp_node *n, const coll *col, int *t)
{
    *t = 2;
    if (col->count == 0) return TSG_OK;
    if (col->count > 1)
        return fail(c, n, TSG_EINVAL, "a single Boolean is required, the collection has %zu",
                    col->count);
    fp_item x;
    if (sysval(&col->items[0], &x) && x.kind == IT_BOOLEAN)
        *t = x.v.b;
    else
        *t = 1; /* a single non-Boolean item is true */
    return TSG_OK;
}

/* The type named by (ns, name): checks whether item `it` is of that type. */
static int item_is(const fp_item *it, const char *ns, size_t nsl, const char *name, size_t nl,
                   int exact)
{
    int sys_ok = nsl == 0 || (nsl == 6 && !memcmp(ns, "System", 6));
    int fhir_ok = nsl == 0 || (nsl == 4 && !memcmp(ns, "FHIR", 4));
    if (it->kind != IT_NODE) {
        if (!sys_ok) return 0;
        const char *sn = sys_names[it->kind];
        return strlen(sn) == nl && !memcmp(sn, name, nl);
    }
    if (!fhir_ok) return 0;
    const model_type *t = model_type_find(name, nl);
    if (!t) return 0;
    /* as()/ofType() match primitives exactly (the R4 suite: a code is(string), but
     * code.as(string) is empty) */
    if (exact && model_is_primitive(it->node->type)) return it->node->type == t;
    return model_type_is(it->node->type, t);
}

/* Whether (ns, name) names a type at all (System or FHIR). */
static int type_known(const char *ns, size_t nsl, const char *name, size_t nl)
{
    int sys_ok = nsl == 0 || (nsl == 6 && !memcmp(ns, "System", 6));
    int fhir_ok = nsl == 0 || (nsl == 4 && !memcmp(ns, "FHIR", 4));
    if (nsl) return 1; /* a qualified name that names nothing is simply no match */
    if (fhir_ok && model_type_find(name, nl)) return 1;
    for (int k = IT_BOOLEAN; sys_ok && k <= IT_QUANTITY; k++)
        if (strlen(sys_names[k]) == nl && !memcmp(sys_names[k], name, nl)) return 1;
    return 0;
}

/* Extracts a type name from a call argument (`Quantity`, `FHIR.Patient`). */
static int arg_type(const fp_node *a, fp_str *ns, fp_str *name)
{
    ns->s = "";
    ns->len = 0;
    if (a->kind == FP_MEMBER && !a->call.target) {
        *name = a->call.name;
        return 1;
    }
    if (a->kind == FP_MEMBER && a->call.target && a->call.target->kind == FP_MEMBER &&
        !a->call.target->call.target) {
        *ns = a->call.target->call.name;
        *name = a->call.name;
        return 1;
    }
    return 0;
}

/* Children of a node whose element is called name (the choice element
 * `value` matches valueQuantity; the JSON name `valueQuantity` is not a
 * FHIRPath name and matches nothing). */
static tsg_rc members(fp_ctx *c, const fhir_node *n, const char *name, size_t len, coll *out)
{
    /* children are in definition order with repeats consecutive: the matches
     * are one run */
    int found = 0;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        const char *en = k->elem->name;
        if (en[0] == name[0] && !strncmp(en, name, len) && en[len] == 0) {
            tsg_rc rc = push_node(c, out, k);
            if (rc) return rc;
            found = 1;
        } else if (found) {
            break;
        }
    }
    return TSG_OK;
}

/* Whether type t (or a base of it) defines an element called name. */
static int type_has_elem(const model_type *t, const char *name, size_t len)
{
    for (; t; t = t->base)
        for (uint16_t i = 0; i < t->nelems; i++)
            if (t->elems[i].name[0] == name[0] && !strncmp(t->elems[i].name, name, len) &&
                t->elems[i].name[len] == 0)
                return 1;
    return 0;
}

/*
 * A member name that no node type of the input defines (`name.given1`,
 * `Observation.valueQuantity`) is an error rather than an empty result: the
 * suite wants these reported, and a silent empty hides typos in invariants
 * and search parameters. The check is per collection: it fires only when the
 * input holds nodes, none of them sits in a polymorphic element, and none of
 * their types knows the name.
 */
static tsg_rc check_member(fp_ctx *c, const fp_node *n, const coll *in)
{
    const model_type *seen = NULL;
    for (size_t i = 0; i < in->count; i++) {
        const fp_item *it = &in->items[i];
        if (it->kind != IT_NODE) return TSG_OK;
        /* polymorphic places (value[x], contained, Bundle.entry.resource) declare no
         * single type, so a name their declared types lack is only empty there */
        const model_elem *e = it->node->elem;
        if (e && ((e->flags & MODEL_ELEM_CHOICE) ||
                  (e->ntypes == 1 && (e->types[0].type->flags & MODEL_TYPE_ABSTRACT))))
            return TSG_OK;
        if (it->node->type == seen) continue;
        seen = it->node->type;
        if (type_has_elem(seen, n->call.name.s, n->call.name.len)) return TSG_OK;
    }
    if (!seen) return TSG_OK;
    return fail(c, n, TSG_EINVAL, "%s has no element '%s'", seen->name, n->call.name.s);
}

static tsg_rc eval_member(fp_ctx *c, const fp_node *n, const coll *in, int at_start, coll *out)
{
    const char *name = n->call.name.s;
    size_t len = n->call.name.len;
    if (at_start && len && isupper((unsigned char)name[0])) {
        /* a type name at the start of a path filters the focus: Patient.name */
        const model_type *t = model_type_find(name, len);
        if (t && !model_is_primitive(t)) {
            for (size_t i = 0; i < in->count; i++) {
                const fp_item *it = &in->items[i];
                if (it->kind == IT_NODE && model_type_is(it->node->type, t)) {
                    tsg_rc rc = push(c, out, it);
                    if (rc) return rc;
                }
            }
            return TSG_OK;
        }
    }
    tsg_rc rc0 = check_member(c, n, in);
    if (rc0) return rc0;
    for (size_t i = 0; i < in->count; i++) {
        const fp_item *it = &in->items[i];
        if (it->kind == IT_TYPEINFO) {
            const char *v = len == 4 && !memcmp(name, "name", 4)        ? it->v.ti.name
                            : len == 9 && !memcmp(name, "namespace", 9) ? it->v.ti.ns
                                                                        : NULL;
            tsg_rc rc = v ? push_str(c, out, v, strlen(v)) : TSG_OK;
            if (rc) return rc;
            continue;
        }
        if (it->kind != IT_NODE) continue;
        tsg_rc rc = members(c, it->node, name, len, out);
        if (rc) return rc;
    }
    return TSG_OK;
}

static tsg_rc eval_call(fp_ctx *c, const fp_node *n, const coll *in, const coll *focus, coll *out);

static tsg_rc literal_dt(fp_ctx *c, const fp_node *n, coll *out)
{
    char buf[64];
    int l = snprintf(buf, sizeof buf, "@%s", n->temporal.text.s);
    fp_item it = {.kind = n->kind == FP_LIT_DATE       ? IT_DATE
                          : n->kind == FP_LIT_DATETIME ? IT_DATETIME
                                                       : IT_TIME};
    if (n->kind == FP_LIT_TIME && n->temporal.has_zone)
        return fail(c, n, TSG_EINVAL, "a time literal cannot carry a time zone");
    if (l <= 0 || (size_t)l >= sizeof buf || fp_dt_parse_literal(buf, (size_t)l, &it.v.dt))
        return fail(c, n, TSG_EINVAL, "invalid date/time literal @%s", n->temporal.text.s);
    return push(c, out, &it);
}

static tsg_rc eval_binary(fp_ctx *c, const fp_node *n, const coll *focus, coll *out);

static tsg_rc eval_node(fp_ctx *c, const fp_node *n, const coll *focus, coll *out);

/* Evaluates n over focus, charging one step of the work budget; fails with
 * TSG_ELIMIT once the budget is spent (here or in a comparison below). */
static tsg_rc eval(fp_ctx *c, const fp_node *n, const coll *focus, coll *out)
{
    if (++c->steps > c->max_steps) c->over = 1;
    tsg_rc rc = c->over ? TSG_OK : eval_node(c, n, focus, out);
    if (!rc && c->over)
        return fail(c, n, TSG_ELIMIT,
                    "evaluation exceeds FP_LIMIT_STEPS (%llu node visits and comparisons)",
                    c->max_steps);
    return rc;
}

static tsg_rc eval_node(fp_ctx *c, const fp_node *n, const coll *focus, coll *out)
{
    tsg_rc rc = TSG_OK;
    switch ((fp_kind)n->kind) {
    case FP_LIT_EMPTY:
        return TSG_OK;
    case FP_BOOLEAN:
        return push_bool(c, out, n->boolean);
    case FP_STRING:
        return push_str(c, out, n->text.s, n->text.len);
    case FP_INTEGER: {
        fp_item it = {.kind = IT_INTEGER};
        if (fp_int_parse(n->text.s, n->text.len, &it.v.i) != FP_OK) {
            it.kind = IT_DECIMAL;
            if (fp_dec_parse(n->text.s, n->text.len, 0, &it.v.d) != FP_OK)
                return fail(c, n, TSG_EINVAL, "integer literal %s out of range", n->text.s);
        }
        return push(c, out, &it);
    }
    case FP_DECIMAL: {
        fp_item it = {.kind = IT_DECIMAL};
        if (fp_dec_parse(n->text.s, n->text.len, 0, &it.v.d) != FP_OK)
            return fail(c, n, TSG_EINVAL, "decimal literal %s out of range", n->text.s);
        return push(c, out, &it);
    }
    case FP_LIT_DATE:
    case FP_LIT_DATETIME:
    case FP_LIT_TIME:
        return literal_dt(c, n, out);
    case FP_QUANTITY: {
        fp_item it = {.kind = IT_QUANTITY};
        fp_decimal d;
        if (fp_dec_parse(n->quantity.number.s, n->quantity.number.len, 0, &d) != FP_OK ||
            fp_qty_make(d, n->quantity.unit.s, n->quantity.unit.len, n->quantity.calendar,
                        &it.v.q) != FP_OK)
            return fail(c, n, TSG_EINVAL, "invalid quantity literal");
        return push(c, out, &it);
    }
    case FP_THIS:
    case FP_INDEX:
    case FP_TOTAL: {
        coll tmp = {0};
        const coll *src = focus;
        if (n->call.target) {
            rc = eval(c, n->call.target, focus, &tmp);
            if (rc) return rc;
            src = &tmp;
        }
        if (n->kind == FP_THIS) {
            if (!n->call.target && c->this_item) return push(c, out, c->this_item);
            for (size_t i = 0; i < src->count && !rc; i++) rc = push(c, out, &src->items[i]);
            return rc;
        }
        if (n->kind == FP_INDEX) return c->this_item ? push_int(c, out, c->index) : TSG_OK;
        if (c->total)
            for (size_t i = 0; i < c->total->count && !rc; i++)
                rc = push(c, out, &c->total->items[i]);
        return rc;
    }
    case FP_EXTERNAL: {
        const char *nm = n->name.s;
        const fhir_node *node = NULL;
        const char *str = NULL;
        if (!strcmp(nm, "resource") || !strcmp(nm, "rootResource"))
            node = c->resource;
        else if (!strcmp(nm, "context"))
            node = c->context;
        else if (!strcmp(nm, "ucum"))
            str = "http://unitsofmeasure.org";
        else if (!strcmp(nm, "sct"))
            str = "http://snomed.info/sct";
        else if (!strcmp(nm, "loinc"))
            str = "http://loinc.org";
        else if (!strncmp(nm, "vs-", 3) || !strncmp(nm, "ext-", 4)) {
            int l = !strncmp(nm, "vs-", 3) ? 3 : 4;
            const char *base = l == 3 ? "http://hl7.org/fhir/ValueSet/"
                                      : "http://hl7.org/fhir/StructureDefinition/";
            size_t bl = strlen(base), rl = n->name.len - (size_t)l;
            char *s = tsg_arena_alloc(c->a, bl + rl + 1);
            if (!s) return nomem(c);
            memcpy(s, base, bl);
            memcpy(s + bl, nm + l, rl);
            s[bl + rl] = 0;
            return push_str(c, out, s, bl + rl);
        } else {
            for (size_t i = 0; c->env && i < c->env->nvars; i++) {
                if (strcmp(c->env->vars[i].name, nm)) continue;
                const coll *v = &c->env->vars[i].value;
                for (size_t j = 0; j < v->count && !rc; j++) rc = push(c, out, &v->items[j]);
                return rc;
            }
            return fail(c, n, TSG_EINVAL, "unknown environment variable %%%s", nm);
        }
        if (str) return push_str(c, out, str, strlen(str));
        return node ? push_node(c, out, node) : TSG_OK;
    }
    case FP_MEMBER: {
        if (!n->call.target) return eval_member(c, n, focus, 1, out);
        coll tgt = {0};
        rc = eval(c, n->call.target, focus, &tgt);
        if (rc) return rc;
        return eval_member(c, n, &tgt, 0, out);
    }
    case FP_CALL: {
        if (!n->call.target) return eval_call(c, n, focus, focus, out);
        coll tgt = {0};
        rc = eval(c, n->call.target, focus, &tgt);
        if (rc) return rc;
        return eval_call(c, n, &tgt, focus, out);
    }
    case FP_INDEXER: {
        coll l = {0}, r = {0};
        if ((rc = eval(c, n->bin.lhs, focus, &l))) return rc;
        if ((rc = eval(c, n->bin.rhs, focus, &r))) return rc;
        fp_item ix;
        int have;
        if ((rc = single(c, n->bin.rhs, &r, &ix, &have))) return rc;
        if (!have) return TSG_OK;
        if (ix.kind != IT_INTEGER) return fail(c, n, TSG_EINVAL, "an index must be an Integer");
        if (ix.v.i >= 0 && (size_t)ix.v.i < l.count) return push(c, out, &l.items[ix.v.i]);
        return TSG_OK;
    }
    case FP_UNARY: {
        coll v = {0};
        if ((rc = eval(c, n->bin.lhs, focus, &v))) return rc;
        fp_item x;
        int have;
        if ((rc = single(c, n, &v, &x, &have))) return rc;
        if (!have) return TSG_OK;
        if (n->op == FP_OP_NEG) {
            if (x.kind == IT_INTEGER) {
                if (fp_int_neg(x.v.i, &x.v.i)) return fail(c, n, TSG_EINVAL, "integer overflow");
            } else if (x.kind == IT_DECIMAL) {
                x.v.d = fp_dec_neg(x.v.d);
            } else if (x.kind == IT_QUANTITY) {
                x.v.q.value = fp_dec_neg(x.v.q.value);
            } else {
                return fail(c, n, TSG_EINVAL, "unary minus needs a number or a quantity");
            }
        } else if (!is_num(x.kind) && x.kind != IT_QUANTITY) {
            return fail(c, n, TSG_EINVAL, "unary plus needs a number or a quantity");
        }
        return push(c, out, &x);
    }
    case FP_BINARY:
        return eval_binary(c, n, focus, out);
    case FP_TYPE: {
        coll v = {0};
        if ((rc = eval(c, n->type.operand, focus, &v))) return rc;
        if (!type_known(n->type.ns.s, n->type.ns.len, n->type.name.s, n->type.name.len))
            return fail(c, n, TSG_EINVAL, "unknown type %s", n->type.name.s);
        if (v.count == 0) return TSG_OK;
        if (v.count > 1)
            return fail(c, n, TSG_EINVAL, "'%s' needs a single item, the collection has %zu",
                        fp_op_name((fp_op)n->op), v.count);
        int is = item_is(&v.items[0], n->type.ns.s, n->type.ns.len, n->type.name.s,
                         n->type.name.len, n->op != FP_OP_IS);
        if (n->op == FP_OP_IS) return push_bool(c, out, is);
        return is ? push(c, out, &v.items[0]) : TSG_OK;
    }
    }
    return fail(c, n, TSG_EINTERNAL, "unknown expression node kind %d", n->kind);
}

/* ------------------------------------------------------------------------
 * Operators
 * ------------------------------------------------------------------------ */

/* Maps a value-library status of an arithmetic result to the evaluator's. */
static tsg_rc arith_status(fp_ctx *c, const fp_node *n, fp_status st, int *empty)
{
    *empty = 0;
    if (st == FP_OK) return TSG_OK;
    if (st == FP_EMPTY || st == FP_EOVERFLOW) {
        *empty = 1;
        return TSG_OK;
    }
    return fail(c, n, TSG_EINVAL, "'%s': incompatible operands (%s)", fp_op_name((fp_op)n->op),
                fp_status_name(st));
}

static tsg_rc arith(fp_ctx *c, const fp_node *n, const fp_item *x, const fp_item *y, coll *out)
{
    fp_op op = (fp_op)n->op;
    fp_item r = {0};
    fp_status st = FP_OK;
    int empty = 0;
    tsg_rc rc;
    if (op == FP_OP_ADD && x->kind == IT_STRING && y->kind == IT_STRING) {
        size_t l = x->v.s.len + y->v.s.len;
        char *s = tsg_arena_alloc(c->a, l + 1);
        if (!s) return nomem(c);
        memcpy(s, x->v.s.s, x->v.s.len);
        memcpy(s + x->v.s.len, y->v.s.s, y->v.s.len);
        s[l] = 0;
        return push_str(c, out, s, l);
    }
    if (x->kind == IT_INTEGER && y->kind == IT_INTEGER && op != FP_OP_DIV) {
        r.kind = IT_INTEGER;
        switch (op) {
        case FP_OP_ADD:
            st = fp_int_add(x->v.i, y->v.i, &r.v.i);
            break;
        case FP_OP_SUB:
            st = fp_int_sub(x->v.i, y->v.i, &r.v.i);
            break;
        case FP_OP_MUL:
            st = fp_int_mul(x->v.i, y->v.i, &r.v.i);
            break;
        case FP_OP_IDIV:
            st = fp_int_div(x->v.i, y->v.i, &r.v.i);
            break;
        case FP_OP_MOD:
            st = fp_int_mod(x->v.i, y->v.i, &r.v.i);
            break;
        default:
            st = FP_EUNIT;
        }
    } else if (is_num(x->kind) && is_num(y->kind)) {
        r.kind = IT_DECIMAL;
        fp_decimal a = as_dec(x), b = as_dec(y);
        switch (op) {
        case FP_OP_ADD:
            st = fp_dec_add(a, b, &r.v.d);
            break;
        case FP_OP_SUB:
            st = fp_dec_sub(a, b, &r.v.d);
            break;
        case FP_OP_MUL:
            st = fp_dec_mul(a, b, &r.v.d);
            break;
        case FP_OP_DIV:
            st = fp_dec_div(a, b, &r.v.d);
            break;
        case FP_OP_IDIV:
            st = fp_dec_intdiv(a, b, &r.v.d);
            if (st == FP_OK) {
                r.kind = IT_INTEGER;
                st = fp_dec_to_int32(r.v.d, &r.v.i);
            }
            break;
        case FP_OP_MOD:
            st = fp_dec_mod(a, b, &r.v.d);
            break;
        default:
            st = FP_EUNIT;
        }
    } else if (is_dt(x->kind) && y->kind == IT_QUANTITY && (op == FP_OP_ADD || op == FP_OP_SUB)) {
        r.kind = x->kind;
        st = fp_dt_add(&x->v.dt, &y->v.q, op == FP_OP_ADD ? 1 : -1, &r.v.dt);
    } else if ((x->kind == IT_QUANTITY || is_num(x->kind)) &&
               (y->kind == IT_QUANTITY || is_num(y->kind))) {
        fp_quantity a, b;
        if (x->kind == IT_QUANTITY)
            a = x->v.q;
        else
            fp_qty_make(as_dec(x), "", 0, false, &a);
        if (y->kind == IT_QUANTITY)
            b = y->v.q;
        else
            fp_qty_make(as_dec(y), "", 0, false, &b);
        r.kind = IT_QUANTITY;
        switch (op) {
        case FP_OP_ADD:
            st = fp_qty_add(&a, &b, &r.v.q);
            break;
        case FP_OP_SUB:
            st = fp_qty_sub(&a, &b, &r.v.q);
            break;
        case FP_OP_MUL:
            st = fp_qty_mul(&a, &b, c->a, &r.v.q);
            break;
        case FP_OP_DIV:
            st = fp_qty_div(&a, &b, c->a, &r.v.q);
            break;
        default:
            st = FP_EUNIT;
        }
    } else {
        return fail(c, n, TSG_EINVAL, "'%s' cannot combine %s and %s", fp_op_name(op),
                    sys_names[x->kind], sys_names[y->kind]);
    }
    if ((rc = arith_status(c, n, st, &empty))) return rc;
    return empty ? TSG_OK : push(c, out, &r);
}

static tsg_rc eval_binary(fp_ctx *c, const fp_node *n, const coll *focus, coll *out)
{
    fp_op op = (fp_op)n->op;
    coll l = {0}, r = {0};
    tsg_rc rc;
    if ((rc = eval(c, n->bin.lhs, focus, &l))) return rc;
    if (op == FP_OP_AND || op == FP_OP_OR || op == FP_OP_XOR || op == FP_OP_IMPLIES) {
        int a, b;
        if ((rc = truth(c, n->bin.lhs, &l, &a))) return rc;
        if (op == FP_OP_AND && a == 0) return push_bool(c, out, false);
        if (op == FP_OP_OR && a == 1) return push_bool(c, out, true);
        if (op == FP_OP_IMPLIES && a == 0) return push_bool(c, out, true);
        if ((rc = eval(c, n->bin.rhs, focus, &r))) return rc;
        if ((rc = truth(c, n->bin.rhs, &r, &b))) return rc;
        switch (op) {
        case FP_OP_AND:
            if (b == 0) return push_bool(c, out, false);
            return a == 1 && b == 1 ? push_bool(c, out, true) : TSG_OK;
        case FP_OP_OR:
            if (b == 1) return push_bool(c, out, true);
            return a == 0 && b == 0 ? push_bool(c, out, false) : TSG_OK;
        case FP_OP_XOR:
            return a == 2 || b == 2 ? TSG_OK : push_bool(c, out, a != b);
        default: /* implies: a is true or empty */
            if (b == 1) return push_bool(c, out, true);
            return a == 1 && b == 0 ? push_bool(c, out, false) : TSG_OK;
        }
    }
    if ((rc = eval(c, n->bin.rhs, focus, &r))) return rc;
    switch (op) {
    case FP_OP_UNION:
        for (size_t i = 0; i < l.count; i++)
            if (!coll_has(c, out, &l.items[i]) && (rc = push(c, out, &l.items[i]))) return rc;
        for (size_t i = 0; i < r.count; i++)
            if (!coll_has(c, out, &r.items[i]) && (rc = push(c, out, &r.items[i]))) return rc;
        return TSG_OK;
    case FP_OP_EQ:
    case FP_OP_NE: {
        if (!l.count || !r.count) return TSG_OK;
        if (l.count != r.count) return push_bool(c, out, op == FP_OP_NE);
        int res = EQ_TRUE;
        for (size_t i = 0; i < l.count && res != EQ_FALSE; i++) {
            int e = item_equal(&l.items[i], &r.items[i]);
            if (e == EQ_FALSE)
                res = EQ_FALSE;
            else if (e == EQ_UNKNOWN)
                res = EQ_UNKNOWN;
        }
        if (res == EQ_UNKNOWN) return TSG_OK;
        return push_bool(c, out, (res == EQ_TRUE) == (op == FP_OP_EQ));
    }
    case FP_OP_EQUIV:
    case FP_OP_NEQUIV: {
        int eq = l.count == r.count;
        for (size_t i = 0; i < l.count && eq; i++) {
            int found = 0;
            for (size_t j = 0; j < r.count && !found; j++)
                found = item_equiv(&l.items[i], &r.items[j]);
            eq = found;
        }
        return push_bool(c, out, eq == (op == FP_OP_EQUIV));
    }
    case FP_OP_IN:
    case FP_OP_CONTAINS: {
        const coll *el = op == FP_OP_IN ? &l : &r, *cl = op == FP_OP_IN ? &r : &l;
        if (el->count == 0) return TSG_OK;
        if (el->count > 1)
            return fail(c, n, TSG_EINVAL, "'%s' needs a single item", fp_op_name(op));
        return push_bool(c, out, coll_has(c, cl, &el->items[0]));
    }
    case FP_OP_CONCAT: {
        size_t la = 0, lb = 0;
        const char *a = "", *b = "";
        if (l.count > 1 || r.count > 1) return fail(c, n, TSG_EINVAL, "'&' needs single items");
        if (l.count && !(a = item_text(c, &l.items[0], &la))) return nomem(c);
        if (r.count && !(b = item_text(c, &r.items[0], &lb))) return nomem(c);
        char *s = tsg_arena_alloc(c->a, la + lb + 1);
        if (!s) return nomem(c);
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        s[la + lb] = 0;
        return push_str(c, out, s, la + lb);
    }
    default:
        break;
    }
    fp_item x, y;
    int hx, hy;
    if ((rc = single(c, n->bin.lhs, &l, &x, &hx))) return rc;
    if ((rc = single(c, n->bin.rhs, &r, &y, &hy))) return rc;
    if (!hx || !hy) return TSG_OK;
    if (op == FP_OP_LT || op == FP_OP_GT || op == FP_OP_LE || op == FP_OP_GE) {
        fp_cmp k = compare_sys(&x, &y);
        if (k == FP_UNKNOWN) return TSG_OK;
        if (k == FP_INCOMPARABLE || x.kind == IT_BOOLEAN) {
            if (x.kind == IT_QUANTITY && y.kind == IT_QUANTITY) return TSG_OK;
            return fail(c, n, TSG_EINVAL, "'%s' cannot compare %s with %s", fp_op_name(op),
                        sys_names[x.kind], sys_names[y.kind]);
        }
        bool v = op == FP_OP_LT   ? k == FP_LT
                 : op == FP_OP_GT ? k == FP_GT
                 : op == FP_OP_LE ? k != FP_GT
                                  : k != FP_LT;
        return push_bool(c, out, v);
    }
    return arith(c, n, &x, &y, out);
}

/* ------------------------------------------------------------------------
 * Functions
 * ------------------------------------------------------------------------ */

#define ARGS(lo, hi)                                                                               \
    do {                                                                                           \
        if ((long)n->call.nargs < (long)(lo) || (long)n->call.nargs > (long)(hi))                  \
            return fail(c, n, TSG_EINVAL, "%s() takes %s%d argument%s, not %u", fn,                \
                        (lo) == (hi) ? "" : "at most ", (int)(hi), (hi) == 1 ? "" : "s",           \
                        n->call.nargs);                                                            \
    } while (0)

/* Evaluates argument i against the enclosing focus. */
static tsg_rc arg_eval(fp_ctx *c, const fp_node *n, uint32_t i, const coll *focus, coll *out)
{
    memset(out, 0, sizeof *out);
    return eval(c, n->call.args[i], focus, out);
}

/* Argument i as a single System value; *have 0 when empty. */
static tsg_rc arg_single(fp_ctx *c, const fp_node *n, uint32_t i, const coll *focus, fp_item *v,
                         int *have)
{
    coll a;
    tsg_rc rc = arg_eval(c, n, i, focus, &a);
    if (rc) return rc;
    return single(c, n->call.args[i], &a, v, have);
}

static tsg_rc arg_int(fp_ctx *c, const fp_node *n, uint32_t i, const coll *focus, int32_t *v,
                      int *have)
{
    fp_item x;
    tsg_rc rc = arg_single(c, n, i, focus, &x, have);
    if (rc || !*have) return rc;
    if (x.kind != IT_INTEGER)
        return fail(c, n->call.args[i], TSG_EINVAL, "%s() needs an Integer argument",
                    n->call.name.s);
    *v = x.v.i;
    return TSG_OK;
}

static tsg_rc arg_str(fp_ctx *c, const fp_node *n, uint32_t i, const coll *focus, const char **s,
                      size_t *len, int *have)
{
    fp_item x;
    tsg_rc rc = arg_single(c, n, i, focus, &x, have);
    if (rc || !*have) return rc;
    if (x.kind != IT_STRING)
        return fail(c, n->call.args[i], TSG_EINVAL, "%s() needs a String argument", n->call.name.s);
    *s = x.v.s.s;
    *len = x.v.s.len;
    return TSG_OK;
}

/* The input of a function that works on one item: *have 0 when empty. */
static tsg_rc input_single(fp_ctx *c, const fp_node *n, const coll *in, fp_item *v, int *have)
{
    return single(c, n, in, v, have);
}

/* The input as one String; empty input or a non-string: *have 0. */
static tsg_rc input_str(fp_ctx *c, const fp_node *n, const coll *in, const char **s, size_t *len,
                        int *have)
{
    fp_item x;
    tsg_rc rc = single(c, n, in, &x, have);
    if (rc) return rc;
    if (in->count == 1 && (!*have || x.kind != IT_STRING)) {
        if (!*have && in->items[0].kind == IT_NODE && model_is_primitive(in->items[0].node->type))
            return TSG_OK; /* a primitive with extensions only */
        return fail(c, n, TSG_EINVAL, "%s() needs a String input", n->call.name.s);
    }
    if (!*have) return TSG_OK;
    *s = x.v.s.s;
    *len = x.v.s.len;
    return TSG_OK;
}

static char *arena_cat(fp_ctx *c, const char *a, size_t la, const char *b, size_t lb)
{
    char *s = tsg_arena_alloc(c->a, la + lb + 1);
    if (!s) return NULL;
    if (la) memcpy(s, a, la);
    if (lb) memcpy(s + la, b, lb);
    s[la + lb] = 0;
    return s;
}

/*
 * True when a pattern could make regcomp() build a huge automaton: glibc
 * expands counted repetition, so `((a{1,100}){1,100}){1,100}` costs seconds
 * and gigabytes. The product of all repetition bounds (as if nested, which
 * over-counts) must stay within FP_LIMIT_REGEX_EXPANSION and the pattern
 * within FP_LIMIT_REGEX_BYTES; real patterns (`\d{4}-\d{2}`) are far below.
 */
static int regex_too_costly(const char *p, size_t n)
{
    if (n > FP_LIMIT_REGEX_BYTES) return 1;
    double product = 1;
    int after_quantifier = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\\') {
            i++;
            after_quantifier = 0;
            continue;
        }
        if (ch == '*' || ch == '+' || ch == '?' || ch == '{') {
            /* a quantifier of a quantifier (`a++`, `a{2}*`): glibc copies the
             * operand for each, exponentially */
            if (after_quantifier) return 1;
            after_quantifier = 1;
            if (ch == '+') product *= 2; /* a+ is compiled as aa* */
            if (ch == '{') {
                unsigned long bound = 0;
                size_t j = i + 1;
                for (; j < n && p[j] != '}'; j++) {
                    unsigned long v = 0;
                    while (j < n && p[j] >= '0' && p[j] <= '9' && v < 1000000)
                        v = v * 10 + (unsigned long)(p[j++] - '0');
                    if (v > bound) bound = v;
                    if (j < n && p[j] == '}') break;
                }
                product *= bound > 1 ? (double)bound : 1;
                i = j; /* the closing brace */
            }
            if (product > FP_LIMIT_REGEX_EXPANSION) return 1;
            continue;
        }
        after_quantifier = 0;
    }
    return 0;
}

/* Compiles a FHIRPath regex (POSIX ERE with \d \w \s expanded). */
static int compile_regex(fp_ctx *c, const char *p, size_t n, regex_t *re, int whole)
{
    if (regex_too_costly(p, n)) return 0;
    tsg_buf b;
    tsg_buf_init(&b, 64 * 1024);
    if (whole) tsg_buf_puts(&b, "^(");
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char k = p[i + 1];
            const char *rep = k == 'd'   ? "[0-9]"
                              : k == 'D' ? "[^0-9]"
                              : k == 'w' ? "[A-Za-z0-9_]"
                              : k == 'W' ? "[^A-Za-z0-9_]"
                              : k == 's' ? "[[:space:]]"
                              : k == 'S' ? "[^[:space:]]"
                                         : NULL;
            if (rep) {
                tsg_buf_puts(&b, rep);
                i++;
                continue;
            }
        }
        tsg_buf_putc(&b, p[i]);
    }
    if (whole) tsg_buf_puts(&b, ")$");
    tsg_buf_putc(&b, 0);
    int ok = tsg_buf_rc(&b) == TSG_OK && regcomp(re, b.data, REG_EXTENDED) == 0;
    tsg_buf_free(&b);
    (void)c;
    return ok;
}

/* ------------------------------------------------------------------------
 * Regular expressions compiled with the expression
 * ------------------------------------------------------------------------ */

/* Collects (count only when e->regexes is NULL) the regex calls under n. */
static void regex_walk(fp_expr *e, const fp_node *n, uint32_t *k)
{
    if (!n) return;
    switch ((fp_kind)n->kind) {
    case FP_MEMBER:
    case FP_CALL:
    case FP_THIS:
    case FP_INDEX:
    case FP_TOTAL:
        regex_walk(e, n->call.target, k);
        if (n->kind != FP_CALL) return;
        for (uint32_t i = 0; i < n->call.nargs; i++) regex_walk(e, n->call.args[i], k);
        {
            const char *fn = n->call.name.s;
            const size_t fnl = n->call.name.len;
            int whole = IS_FN("matchesFull");
            if ((IS_FN("matches") || whole) && n->call.nargs >= 1 &&
                n->call.args[0]->kind == FP_STRING) {
                if (e->regexes) {
                    fp_regex *r = &e->regexes[*k];
                    const fp_str *pat = &n->call.args[0]->text;
                    r->call = n;
                    r->whole = whole;
                    r->ok = compile_regex(NULL, pat->s, pat->len, &r->re, whole);
                }
                (*k)++;
            }
        }
        return;
    case FP_INDEXER:
    case FP_UNARY:
    case FP_BINARY:
        regex_walk(e, n->bin.lhs, k);
        regex_walk(e, n->bin.rhs, k);
        return;
    case FP_TYPE:
        regex_walk(e, n->type.operand, k);
        return;
    default:
        return;
    }
}

void fp_regex_precompile(fp_expr *e)
{
    uint32_t k = 0;
    regex_walk(e, e->root, &k);
    if (!k || !(e->regexes = calloc(k, sizeof *e->regexes))) return;
    uint32_t j = 0;
    regex_walk(e, e->root, &j);
    e->nregexes = j;
}

void fp_regex_release(fp_expr *e)
{
    for (uint32_t i = 0; i < e->nregexes; i++)
        if (e->regexes[i].ok) regfree(&e->regexes[i].re);
    free(e->regexes);
    e->regexes = NULL;
    e->nregexes = 0;
}

/* The precompiled regex of call n, or NULL (the pattern is not a literal). */
static const regex_t *regex_cached(fp_ctx *c, const fp_node *n)
{
    for (uint32_t i = 0; i < c->e->nregexes; i++)
        if (c->e->regexes[i].call == n) return c->e->regexes[i].ok ? &c->e->regexes[i].re : NULL;
    return NULL;
}

/* matches() / matchesFull() (whole): pushes whether s[0..sl) matches the
 * pattern a[0..al), with the regex compiled with the expression when the
 * pattern is a literal. */
static tsg_rc regex_test(fp_ctx *c, const fp_node *n, const char *s, size_t sl, const char *a,
                         size_t al, int whole, coll *out)
{
    const regex_t *cached = regex_cached(c, n);
    regex_t re;
    if (!cached && !compile_regex(c, a, al, &re, whole))
        return fail(c, n, TSG_EINVAL,
                    "invalid regular expression (or beyond FP_LIMIT_REGEX_BYTES or "
                    "FP_LIMIT_REGEX_EXPANSION)");
    char *z = arena_cat(c, s, sl, "", 0);
    int m = z && regexec(cached ? cached : &re, z, 0, NULL, 0) == 0;
    if (!cached) regfree(&re);
    return z ? push_bool(c, out, m) : nomem(c);
}

/* Code points of the UTF-8 text s[0..n) (continuation bytes not counted). */
static size_t cp_count(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Byte offset of code point k of s[0..n) (n when the text is shorter). */
static size_t cp_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    while (i < n && k) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

static tsg_rc fn_string(fp_ctx *c, const fp_node *n, const char *fn, const coll *in,
                        const coll *focus, coll *out, int *handled)
{
    const size_t fnl = strlen(fn);
    const char *s = NULL, *a = NULL, *b = NULL;
    size_t sl = 0, al = 0, bl = 0;
    int have, ha = 0, hb = 0;
    tsg_rc rc;
    *handled = 1;
    if (IS_FN("length") || IS_FN("upper") || IS_FN("lower") || IS_FN("toChars")) {
        ARGS(0, 0);
        if ((rc = input_str(c, n, in, &s, &sl, &have)) || !have) return rc;
        if (fn[0] == 'l' && fn[1] == 'e') return push_int(c, out, (int32_t)cp_count(s, sl));
        if (fn[0] == 't') {
            for (size_t i = 0; i < sl;) {
                size_t e = cp_offset(s + i, sl - i, 1);
                if ((rc = push_str(c, out, s + i, e))) return rc;
                i += e;
            }
            return TSG_OK;
        }
        char *r = arena_cat(c, s, sl, "", 0);
        if (!r) return nomem(c);
        for (size_t i = 0; i < sl; i++)
            r[i] =
                (char)(fn[0] == 'u' ? toupper((unsigned char)r[i]) : tolower((unsigned char)r[i]));
        return push_str(c, out, r, sl);
    }
    if (IS_FN("indexOf") || IS_FN("startsWith") || IS_FN("endsWith") || IS_FN("contains") ||
        IS_FN("matches")) {
        ARGS(1, 1);
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        if (!have || !ha) return TSG_OK;
        if (IS_FN("indexOf")) {
            if (al == 0) return push_int(c, out, 0);
            for (size_t i = 0; i + al <= sl; i++)
                if (!memcmp(s + i, a, al)) return push_int(c, out, (int32_t)cp_count(s, i));
            return push_int(c, out, -1);
        }
        if (IS_FN("startsWith")) return push_bool(c, out, al <= sl && !memcmp(s, a, al));
        if (IS_FN("endsWith")) return push_bool(c, out, al <= sl && !memcmp(s + sl - al, a, al));
        if (IS_FN("contains")) {
            int f = al == 0;
            for (size_t i = 0; !f && i + al <= sl; i++) f = !memcmp(s + i, a, al);
            return push_bool(c, out, f);
        }
        return regex_test(c, n, s, sl, a, al, 0, out);
    }
    if (IS_FN("substring")) {
        ARGS(1, 2);
        int32_t st = 0, ln = 0;
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_int(c, n, 0, focus, &st, &ha))) return rc;
        if (n->call.nargs > 1 && (rc = arg_int(c, n, 1, focus, &ln, &hb))) return rc;
        if (!have || !ha) return TSG_OK;
        if (st < 0 || (size_t)st >= cp_count(s, sl)) return TSG_OK;
        size_t from = cp_offset(s, sl, (size_t)st), len = sl - from;
        if (hb) len = ln < 0 ? 0 : cp_offset(s + from, len, (size_t)ln);
        return push_str(c, out, s + from, len);
    }
    if (IS_FN("replace") || IS_FN("replaceMatches")) {
        ARGS(2, 2);
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        if ((rc = arg_str(c, n, 1, focus, &b, &bl, &hb))) return rc;
        if (!have || !ha || !hb) return TSG_OK;
        tsg_buf o;
        tsg_buf_init(&o, TSG_LIMIT_STRING_BYTES);
        if (fn[7] == 0) { /* replace */
            if (al == 0) {
                for (size_t i = 0; i < sl; i++) {
                    tsg_buf_append(&o, b, bl);
                    tsg_buf_putc(&o, s[i]);
                }
                tsg_buf_append(&o, b, bl);
            } else {
                for (size_t i = 0; i < sl;) {
                    if (i + al <= sl && !memcmp(s + i, a, al)) {
                        tsg_buf_append(&o, b, bl);
                        i += al;
                    } else {
                        tsg_buf_putc(&o, s[i++]);
                    }
                }
            }
        } else if (al == 0) {
            tsg_buf_append(&o, s, sl);
        } else {
            regex_t re;
            if (!compile_regex(c, a, al, &re, 0)) {
                tsg_buf_free(&o);
                return fail(c, n, TSG_EINVAL,
                            "invalid regular expression (or beyond FP_LIMIT_REGEX_BYTES or "
                            "FP_LIMIT_REGEX_EXPANSION)");
            }
            char *z = arena_cat(c, s, sl, "", 0);
            size_t off = 0;
            regmatch_t m[10];
            while (z && off <= sl && regexec(&re, z + off, 10, m, off ? REG_NOTBOL : 0) == 0) {
                tsg_buf_append(&o, z + off, (size_t)m[0].rm_so);
                for (size_t k = 0; k < bl; k++) {
                    if (b[k] == '$' && k + 1 < bl && isdigit((unsigned char)b[k + 1])) {
                        int g = b[k + 1] - '0';
                        if (m[g].rm_so >= 0)
                            tsg_buf_append(&o, z + off + m[g].rm_so,
                                           (size_t)(m[g].rm_eo - m[g].rm_so));
                        k++;
                    } else {
                        tsg_buf_putc(&o, b[k]);
                    }
                }
                if (m[0].rm_eo == m[0].rm_so) {
                    if (off + (size_t)m[0].rm_eo < sl) tsg_buf_putc(&o, z[off + m[0].rm_eo]);
                    off += (size_t)m[0].rm_eo + 1;
                } else {
                    off += (size_t)m[0].rm_eo;
                }
            }
            if (off < sl) tsg_buf_append(&o, z + off, sl - off);
            regfree(&re);
        }
        rc = tsg_buf_rc(&o);
        char *r = rc ? NULL : arena_cat(c, o.data ? o.data : "", o.len, "", 0);
        size_t rl = o.len;
        tsg_buf_free(&o);
        if (!r) return rc ? fail(c, n, rc, "replace(): result too long") : nomem(c);
        return push_str(c, out, r, rl);
    }
    *handled = 0;
    return TSG_OK;
}

/* Conversion functions: toX() and convertsToX(). */
static tsg_rc fn_convert(fp_ctx *c, const fp_node *n, const char *fn, const coll *in, coll *out,
                         int *handled)
{
    const char *target = NULL;
    int converts = 0;
    *handled = 1;
    if (!strncmp(fn, "convertsTo", 10)) {
        target = fn + 10;
        converts = 1;
    } else if (!strncmp(fn, "to", 2) && strcmp(fn, "toChars")) {
        target = fn + 2;
    } else {
        *handled = 0;
        return TSG_OK;
    }
    static const char *const known[] = {"Boolean",  "Integer", "Decimal",  "String", "Date",
                                        "DateTime", "Time",    "Quantity", NULL};
    int k = -1;
    for (int i = 0; known[i]; i++)
        if (!strcmp(target, known[i])) k = i;
    if (k < 0) {
        *handled = 0;
        return TSG_OK;
    }
    if (!(k == 7 && n->call.nargs <= 1)) ARGS(0, 0);
    fp_item x, r = {0};
    int have;
    tsg_rc rc = input_single(c, n, in, &x, &have);
    if (rc || !have) return rc;
    int ok = 0;
    size_t tl = 0;
    const char *t = x.kind == IT_STRING ? x.v.s.s : NULL;
    tl = t ? x.v.s.len : 0;
    switch (k) {
    case 0: /* Boolean */
        r.kind = IT_BOOLEAN;
        if (x.kind == IT_BOOLEAN) {
            r = x;
            ok = 1;
        } else if (x.kind == IT_INTEGER && (x.v.i == 0 || x.v.i == 1)) {
            r.v.b = x.v.i == 1;
            ok = 1;
        } else if (x.kind == IT_DECIMAL) {
            fp_decimal one = fp_dec_from_int(1), zero = fp_dec_from_int(0);
            if (fp_dec_equal(x.v.d, one) || fp_dec_equal(x.v.d, zero)) {
                r.v.b = fp_dec_equal(x.v.d, one);
                ok = 1;
            }
        } else if (t) {
            static const char *const tv[] = {"true", "t", "yes", "y", "1", "1.0", NULL};
            static const char *const fv[] = {"false", "f", "no", "n", "0", "0.0", NULL};
            for (int i = 0; tv[i]; i++) {
                if (strlen(tv[i]) == tl && !strncasecmp(t, tv[i], tl)) ok = 1, r.v.b = true;
                if (strlen(fv[i]) == tl && !strncasecmp(t, fv[i], tl)) ok = 1, r.v.b = false;
            }
        }
        break;
    case 1: /* Integer */
        r.kind = IT_INTEGER;
        if (x.kind == IT_INTEGER)
            r = x, ok = 1;
        else if (x.kind == IT_BOOLEAN)
            r.v.i = x.v.b, ok = 1;
        else if (t)
            ok = fp_int_parse(t, tl, &r.v.i) == FP_OK;
        break;
    case 2: /* Decimal */
        r.kind = IT_DECIMAL;
        if (is_num(x.kind))
            r.v.d = as_dec(&x), ok = 1;
        else if (x.kind == IT_BOOLEAN)
            r.v.d = fp_dec_from_int(x.v.b), ok = 1;
        else if (t)
            ok = fp_dec_parse(t, tl, FP_DEC_SIGN, &r.v.d) == FP_OK;
        break;
    case 3: /* String */
        if (x.kind == IT_NODE && !model_is_primitive(x.node->type)) break;
        {
            size_t l;
            const char *s = item_text(c, &x, &l);
            if (!s) return nomem(c);
            r.kind = IT_STRING;
            r.v.s.s = s;
            r.v.s.len = (uint32_t)l;
            ok = 1;
        }
        break;
    case 4: /* Date */
    case 5: /* DateTime */
    case 6: /* Time */
        r.kind = k == 4 ? IT_DATE : k == 5 ? IT_DATETIME : IT_TIME;
        if (t) {
            ok = fp_dt_parse_text(t, tl,
                                  k == 4   ? FP_DATE
                                  : k == 5 ? FP_DATETIME
                                           : FP_TIME,
                                  &r.v.dt) == FP_OK;
        } else if (x.kind == r.kind) {
            r = x, ok = 1;
        } else if (k == 4 && x.kind == IT_DATETIME) {
            r.v.dt = fp_dt_to_date(&x.v.dt), ok = 1;
        } else if (k == 5 && x.kind == IT_DATE) {
            r.v.dt = fp_dt_to_datetime(&x.v.dt), ok = 1;
        }
        break;
    case 7: /* Quantity */
        r.kind = IT_QUANTITY;
        if (x.kind == IT_QUANTITY)
            r = x, ok = 1;
        else if (is_num(x.kind))
            ok = fp_qty_make(as_dec(&x), "", 0, false, &r.v.q) == FP_OK;
        else if (x.kind == IT_BOOLEAN) {
            fp_decimal d = fp_dec_from_int(0);
            if (x.v.b) fp_dec_parse("1.0", 3, 0, &d);
            ok = fp_qty_make(d, "", 0, false, &r.v.q) == FP_OK;
        } else if (t)
            ok = fp_qty_parse(t, tl, &r.v.q) == FP_OK;
        if (ok && n->call.nargs == 1 && !converts) {
            const char *u;
            size_t ul;
            int hu;
            if ((rc = arg_str(c, n, 0, in, &u, &ul, &hu))) return rc;
            fp_quantity q2;
            if (hu) {
                ok = fp_qty_convert(&r.v.q, u, ul, false, &q2) == FP_OK;
                r.v.q = q2;
            }
        }
        break;
    }
    if (converts) return push_bool(c, out, ok);
    return ok ? push(c, out, &r) : TSG_OK;
}

static tsg_rc fn_math(fp_ctx *c, const fp_node *n, const char *fn, const coll *in,
                      const coll *focus, coll *out, int *handled)
{
    static const char *const names[] = {"abs", "ceiling", "floor", "round", "truncate", "sqrt",
                                        "ln",  "log",     "exp",   "power", NULL};
    int k = -1;
    for (int i = 0; names[i]; i++)
        if (!strcmp(fn, names[i])) k = i;
    *handled = k >= 0;
    if (k < 0) return TSG_OK;
    if (k == 3)
        ARGS(0, 1);
    else if (k == 7 || k == 9)
        ARGS(1, 1);
    else
        ARGS(0, 0);
    fp_item x, y = {0};
    int have, hy = 1;
    tsg_rc rc = input_single(c, n, in, &x, &have);
    if (rc) return rc;
    if (n->call.nargs && (rc = arg_single(c, n, 0, focus, &y, &hy))) return rc;
    if (!have || !hy) return TSG_OK;
    if (k == 0 && x.kind == IT_QUANTITY) {
        x.v.q.value = fp_dec_abs(x.v.q.value);
        return push(c, out, &x);
    }
    if (!is_num(x.kind))
        return fail(c, n, TSG_EINVAL, "%s() needs a number, not %s", fn, sys_names[x.kind]);
    fp_item r = {.kind = IT_DECIMAL};
    fp_status st = FP_OK;
    fp_decimal d = as_dec(&x);
    switch (k) {
    case 0:
        if (x.kind == IT_INTEGER) {
            r.kind = IT_INTEGER;
            st = fp_int_abs(x.v.i, &r.v.i);
        } else {
            r.v.d = fp_dec_abs(d);
        }
        break;
    case 1:
        r.kind = IT_INTEGER;
        st = fp_dec_ceiling(d, &r.v.i);
        break;
    case 2:
        r.kind = IT_INTEGER;
        st = fp_dec_floor(d, &r.v.i);
        break;
    case 4:
        r.kind = IT_INTEGER;
        st = fp_dec_truncate(d, &r.v.i);
        break;
    case 3:
        if (n->call.nargs && y.kind != IT_INTEGER)
            return fail(c, n, TSG_EINVAL, "round() needs an Integer precision");
        st = fp_dec_round(d, n->call.nargs ? y.v.i : 0, &r.v.d);
        break;
    case 5:
        st = fp_dec_sqrt(d, &r.v.d);
        break;
    case 6:
        st = fp_dec_ln(d, &r.v.d);
        break;
    case 7:
        if (!is_num(y.kind)) return fail(c, n, TSG_EINVAL, "log() needs a numeric base");
        st = fp_dec_log(d, as_dec(&y), &r.v.d);
        break;
    case 8:
        st = fp_dec_exp(d, &r.v.d);
        break;
    case 9:
        if (!is_num(y.kind)) return fail(c, n, TSG_EINVAL, "power() needs a numeric exponent");
        if (x.kind == IT_INTEGER && y.kind == IT_INTEGER && y.v.i >= 0) {
            r.kind = IT_INTEGER;
            st = fp_int_power(x.v.i, y.v.i, &r.v.i);
        } else {
            st = fp_dec_power(d, as_dec(&y), &r.v.d);
        }
        break;
    }
    int empty;
    if ((rc = arith_status(c, n, st, &empty))) return rc;
    return empty ? TSG_OK : push(c, out, &r);
}

/* ------------------------------------------------------------------------
 * Boundaries, precision, type(), sort(), more string functions
 * ------------------------------------------------------------------------ */

/* Sort key of one item: a System value, or none. */
typedef struct sort_key {
    fp_item v;
    int have;
} sort_key;

/* Compares items i and j by their keys (nkeys per item, desc flags). */
static int sort_cmp(const sort_key *keys, const bool *desc, uint32_t nkeys, size_t i, size_t j)
{
    for (uint32_t k = 0; k < nkeys; k++) {
        const sort_key *a = &keys[i * nkeys + k], *b = &keys[j * nkeys + k];
        int r;
        if (!a->have || !b->have) {
            if (a->have != b->have) return a->have - b->have; /* empty first, either way */
            r = 0;
        } else {
            fp_cmp cm = compare_sys(&a->v, &b->v);
            r = cm == FP_LT ? -1 : cm == FP_GT ? 1 : 0;
        }
        if (r) return desc[k] ? -r : r;
    }
    return 0;
}

/* sort(key…): a stable merge sort of the indexes by the keys. */
static tsg_rc fn_sort(fp_ctx *c, const fp_node *n, const coll *in, coll *out)
{
    uint32_t nk = n->call.nargs ? n->call.nargs : 1;
    size_t cnt = in->count;
    tsg_rc rc;
    sort_key *keys = tsg_arena_zalloc(c->a, (cnt ? cnt : 1) * nk * sizeof *keys);
    bool *desc = tsg_arena_zalloc(c->a, nk * sizeof *desc);
    size_t *idx = tsg_arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *idx);
    size_t *tmp = tsg_arena_alloc(c->a, (cnt ? cnt : 1) * sizeof *tmp);
    if (!keys || !desc || !idx || !tmp) return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        idx[i] = i;
        for (uint32_t k = 0; k < nk; k++) {
            sort_key *key = &keys[i * nk + k];
            if (!n->call.nargs) {
                key->have = sysval(&in->items[i], &key->v);
                continue;
            }
            const fp_node *kn = n->call.args[k];
            if (kn->kind == FP_UNARY && kn->op == FP_OP_NEG) {
                desc[k] = true;
                kn = kn->bin.lhs;
            }
            coll r;
            if ((rc = eval_lambda(c, kn, &in->items[i], (int32_t)i, NULL, &r))) return rc;
            if ((rc = single(c, kn, &r, &key->v, &key->have))) return rc;
        }
    }
    for (size_t w = 1; w < cnt; w *= 2) {
        for (size_t lo = 0; lo < cnt; lo += 2 * w) {
            size_t mid = lo + w < cnt ? lo + w : cnt, hi = lo + 2 * w < cnt ? lo + 2 * w : cnt;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi)
                tmp[o++] = sort_cmp(keys, desc, nk, idx[b], idx[a]) < 0 ? idx[b++] : idx[a++];
            while (a < mid) tmp[o++] = idx[a++];
            while (b < hi) tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, cnt * sizeof *idx);
    }
    for (size_t i = 0; i < cnt; i++)
        if ((rc = push(c, out, &in->items[idx[i]]))) return rc;
    return TSG_OK;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char ch, int url)
{
    if (url && ch == '-') return 62;
    if (url && ch == '_') return 63;
    const char *p = ch ? strchr(b64, ch) : NULL;
    return p ? (int)(p - b64) : -1;
}

/* encode/decode/escape/unescape into b. Returns 0 when the format is unknown
 * or the input malformed (empty result). */
static int transcode(const char *fn, const char *fmt, const char *s, size_t n, tsg_buf *b)
{
    const size_t fnl = strlen(fn);
    int url = !strcmp(fmt, "urlbase64");
    if (IS_FN("encode")) {
        if (!strcmp(fmt, "hex")) {
            for (size_t i = 0; i < n; i++) tsg_buf_printf(b, "%02x", (unsigned char)s[i]);
            return 1;
        }
        if (strcmp(fmt, "base64") && !url) return 0;
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
            if (i + 1 < n) v |= (uint32_t)(unsigned char)s[i + 1] << 8;
            if (i + 2 < n) v |= (unsigned char)s[i + 2];
            for (int k = 0; k < 4; k++) {
                char ch = b64[(v >> (18 - 6 * k)) & 63];
                if (url && ch == '+') ch = '-';
                if (url && ch == '/') ch = '_';
                tsg_buf_putc(b, (size_t)k <= n - i ? ch : '=');
            }
        }
        return 1;
    }
    if (IS_FN("decode")) {
        if (!strcmp(fmt, "hex")) {
            if (n % 2) return 0;
            for (size_t i = 0; i < n; i += 2) {
                char h[3] = {s[i], s[i + 1], 0}, *end;
                long v = strtol(h, &end, 16);
                if (*end) return 0;
                tsg_buf_putc(b, (char)v);
            }
            return 1;
        }
        if (strcmp(fmt, "base64") && !url) return 0;
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n && s[i] != '='; i++) {
            int v = b64_val(s[i], url);
            if (v < 0) return 0;
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                tsg_buf_putc(b, (char)((acc >> bits) & 0xff));
            }
        }
        return 1;
    }
    int html = !strcmp(fmt, "html");
    if (!html && strcmp(fmt, "json")) return 0;
    if (IS_FN("escape")) {
        for (size_t i = 0; i < n; i++) {
            char ch = s[i];
            if (html && ch == '<')
                tsg_buf_puts(b, "&lt;");
            else if (html && ch == '>')
                tsg_buf_puts(b, "&gt;");
            else if (html && ch == '&')
                tsg_buf_puts(b, "&amp;");
            else if (html && ch == '"')
                tsg_buf_puts(b, "&quot;");
            else if (!html && (ch == '"' || ch == '\\'))
                tsg_buf_putc(b, '\\'), tsg_buf_putc(b, ch);
            else
                tsg_buf_putc(b, ch);
        }
        return 1;
    }
    static const struct {
        const char *ent;
        char ch;
    } ents[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t i = 0; i < n; i++) {
        if (html && s[i] == '&') {
            size_t k;
            for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
                size_t el = strlen(ents[k].ent);
                if (i + el <= n && !memcmp(s + i, ents[k].ent, el)) {
                    tsg_buf_putc(b, ents[k].ch);
                    i += el - 1;
                    break;
                }
            }
            if (k < sizeof ents / sizeof ents[0]) continue;
        }
        if (!html && s[i] == '\\' && i + 1 < n) {
            char e = s[++i];
            tsg_buf_putc(b, e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
            continue;
        }
        tsg_buf_putc(b, s[i]);
    }
    return 1;
}

static tsg_rc fn_more(fp_ctx *c, const fp_node *n, const char *fn, const coll *in,
                      const coll *focus, coll *out, int *handled)
{
    const size_t fnl = strlen(fn);
    tsg_rc rc;
    int have, ha = 0;
    *handled = 1;
    if (IS_FN("lowBoundary") || IS_FN("highBoundary")) {
        ARGS(0, 1);
        int32_t prec = -1;
        fp_item x;
        if ((rc = input_single(c, n, in, &x, &have))) return rc;
        if (n->call.nargs) {
            if ((rc = arg_int(c, n, 0, focus, &prec, &ha))) return rc;
            if (!ha || prec < 0) return TSG_OK;
        }
        if (!have) return TSG_OK;
        int low = fn[0] == 'l';
        fp_item r = x;
        fp_status st;
        if (is_num(x.kind) || x.kind == IT_QUANTITY) {
            fp_decimal d = x.kind == IT_QUANTITY ? x.v.q.value : as_dec(&x), rd;
            st = low ? fp_dec_low_boundary(d, prec, &rd) : fp_dec_high_boundary(d, prec, &rd);
            if (x.kind == IT_QUANTITY)
                r.v.q.value = rd;
            else
                r.kind = IT_DECIMAL, r.v.d = rd;
        } else if (is_dt(x.kind)) {
            st = low ? fp_dt_low_boundary(&x.v.dt, prec, &r.v.dt)
                     : fp_dt_high_boundary(&x.v.dt, prec, &r.v.dt);
        } else {
            return fail(c, n, TSG_EINVAL, "%s() needs a number, date or time", fn);
        }
        int empty;
        if ((rc = arith_status(c, n, st, &empty))) return rc;
        return empty ? TSG_OK : push(c, out, &r);
    }
    if (IS_FN("precision")) {
        ARGS(0, 0);
        fp_item x;
        if ((rc = input_single(c, n, in, &x, &have)) || !have) return rc;
        if (x.kind == IT_DECIMAL) return push_int(c, out, fp_dec_precision(x.v.d));
        if (x.kind == IT_INTEGER) return push_int(c, out, 0);
        if (is_dt(x.kind)) return push_int(c, out, fp_dt_precision_digits(&x.v.dt));
        return fail(c, n, TSG_EINVAL, "precision() needs a number, date or time");
    }
    if (IS_FN("type")) {
        ARGS(0, 0);
        for (size_t i = 0; i < in->count; i++) {
            const fp_item *it = &in->items[i];
            fp_item r = {.kind = IT_TYPEINFO};
            r.v.ti.ns = it->kind == IT_NODE ? "FHIR" : "System";
            r.v.ti.name = it->kind == IT_NODE ? it->node->type->name : sys_names[it->kind];
            if ((rc = push(c, out, &r))) return rc;
        }
        return TSG_OK;
    }
    if (IS_FN("sort")) return fn_sort(c, n, in, out);
    if (IS_FN("comparable")) {
        ARGS(1, 1);
        fp_item x, y;
        if ((rc = input_single(c, n, in, &x, &have))) return rc;
        if ((rc = arg_single(c, n, 0, focus, &y, &ha))) return rc;
        if (!have || !ha) return TSG_OK;
        if (x.kind != IT_QUANTITY || y.kind != IT_QUANTITY)
            return fail(c, n, TSG_EINVAL, "comparable() needs quantities");
        return push_bool(c, out, fp_qty_comparable(&x.v.q, &y.v.q));
    }
    const char *s = NULL, *a = NULL;
    size_t sl = 0, al = 0;
    if (IS_FN("trim")) {
        ARGS(0, 0);
        if ((rc = input_str(c, n, in, &s, &sl, &have)) || !have) return rc;
        while (sl && isspace((unsigned char)s[0])) s++, sl--;
        while (sl && isspace((unsigned char)s[sl - 1])) sl--;
        return push_str(c, out, s, sl);
    }
    if (IS_FN("split")) {
        ARGS(1, 1);
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        if (!have || !ha) return TSG_OK;
        size_t st = 0;
        for (size_t i = 0; al && i + al <= sl; i++) {
            if (memcmp(s + i, a, al)) continue;
            if ((rc = push_str(c, out, s + st, i - st))) return rc;
            st = i + al;
            i = st - 1;
        }
        return push_str(c, out, s + st, sl - st);
    }
    if (IS_FN("join")) {
        ARGS(0, 1);
        if (n->call.nargs && (rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        tsg_buf b;
        tsg_buf_init(&b, TSG_LIMIT_STRING_BYTES);
        for (size_t i = 0; i < in->count; i++) {
            size_t l;
            const char *t = item_text(c, &in->items[i], &l);
            if (i && ha) tsg_buf_append(&b, a, al);
            if (t) tsg_buf_append(&b, t, l);
        }
        char *r = tsg_buf_rc(&b) ? NULL : arena_cat(c, b.data ? b.data : "", b.len, "", 0);
        size_t rl = b.len;
        tsg_buf_free(&b);
        return r ? push_str(c, out, r, rl) : nomem(c);
    }
    if (IS_FN("matchesFull")) {
        ARGS(1, 1);
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        if (!have || !ha) return TSG_OK;
        return regex_test(c, n, s, sl, a, al, 1, out);
    }
    if (IS_FN("encode") || IS_FN("decode") || IS_FN("escape") || IS_FN("unescape")) {
        ARGS(1, 1);
        if ((rc = input_str(c, n, in, &s, &sl, &have))) return rc;
        if ((rc = arg_str(c, n, 0, focus, &a, &al, &ha))) return rc;
        if (!have || !ha) return TSG_OK;
        tsg_buf b;
        tsg_buf_init(&b, TSG_LIMIT_STRING_BYTES);
        int ok = transcode(fn, a, s, sl, &b);
        char *r = ok && !tsg_buf_rc(&b) ? arena_cat(c, b.data ? b.data : "", b.len, "", 0) : NULL;
        size_t rl = b.len;
        tsg_buf_free(&b);
        if (!ok) return TSG_OK;
        return r ? push_str(c, out, r, rl) : nomem(c);
    }
    *handled = 0;
    return TSG_OK;
}

/* The value text of the child element `name` of node n, or NULL. */
static const char *kid_value(const fhir_node *n, const char *name, uint32_t *len)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!strcmp(n->kids[i].elem->name, name) && n->kids[i].value) {
            *len = n->kids[i].value_len;
            return n->kids[i].value;
        }
    return NULL;
}

/* Whether resource r is what `ref` (`Patient/1`, a full URL ending in it,
 * `#id` for contained) names; fullUrl is the Bundle entry's, or NULL. */
static int ref_matches(const fhir_node *r, const char *fullurl, uint32_t fl, const char *ref,
                       size_t rl)
{
    if (fullurl && fl == rl && !memcmp(fullurl, ref, rl)) return 1;
    uint32_t il;
    const char *id = kid_value(r, "id", &il);
    if (!id) return 0;
    const char *tn = r->type->name;
    size_t tl = strlen(tn);
    if (rl >= tl + 1 + il && !memcmp(ref + rl - il, id, il) && ref[rl - il - 1] == '/' &&
        !memcmp(ref + rl - il - 1 - tl, tn, tl) &&
        (rl == tl + 1 + il || ref[rl - il - 2 - tl] == '/'))
        return 1;
    return 0;
}

/* resolve(): contained resources (`#id`) of the root resource and the
 * resources of a Bundle root (by fullUrl or Type/id). */
static tsg_rc resolve_one(fp_ctx *c, const char *ref, size_t rl, coll *out)
{
    const fhir_node *root = c->resource;
    if (!root) return TSG_OK;
    for (uint32_t i = 0; i < root->nkids; i++) {
        const fhir_node *k = &root->kids[i];
        if (ref[0] == '#' && !strcmp(k->elem->name, "contained")) {
            uint32_t il;
            const char *id = kid_value(k, "id", &il);
            if (id && il == rl - 1 && !memcmp(id, ref + 1, il)) return push_node(c, out, k);
        }
        if (!strcmp(k->elem->name, "entry")) {
            uint32_t fl = 0;
            const char *fu = kid_value(k, "fullUrl", &fl);
            for (uint32_t j = 0; j < k->nkids; j++) {
                const fhir_node *r = &k->kids[j];
                if (strcmp(r->elem->name, "resource")) continue;
                if (ref[0] != '#' && ref_matches(r, fu, fl, ref, rl)) return push_node(c, out, r);
                /* `#id` inside a Bundle: the contained resources of its entries (the
                 * tree has no parent links, so the first entry that has one wins) */
                for (uint32_t q = 0; ref[0] == '#' && q < r->nkids; q++) {
                    uint32_t il;
                    const char *id = !strcmp(r->kids[q].elem->name, "contained")
                                         ? kid_value(&r->kids[q], "id", &il)
                                         : NULL;
                    if (id && il == rl - 1 && !memcmp(id, ref + 1, il))
                        return push_node(c, out, &r->kids[q]);
                }
            }
        }
    }
    return TSG_OK;
}

/* memberOf(url) of one code, Coding or CodeableConcept: 1, 0, or -1 when the
 * item is none of those. */
static int member_of(const fhir_node *n, const model_valueset *vs)
{
    char code[512], sys[512];
    uint32_t l, sl;
    const char *v;
    if (model_is_primitive(n->type)) {
        if (!n->value || n->value_len >= sizeof code) return 0;
        memcpy(code, n->value, n->value_len);
        code[n->value_len] = 0;
        return model_valueset_has(vs, NULL, code);
    }
    if (!strcmp(n->type->name, "Coding")) {
        if (!(v = kid_value(n, "code", &l)) || l >= sizeof code) return 0;
        memcpy(code, v, l);
        code[l] = 0;
        const char *sv = kid_value(n, "system", &sl);
        if (sv && sl < sizeof sys) {
            memcpy(sys, sv, sl);
            sys[sl] = 0;
        }
        return model_valueset_has(vs, sv && sl < sizeof sys ? sys : NULL, code);
    }
    if (!strcmp(n->type->name, "CodeableConcept")) {
        for (uint32_t i = 0; i < n->nkids; i++)
            if (!strcmp(n->kids[i].elem->name, "coding") && member_of(&n->kids[i], vs) == 1)
                return 1;
        return 0;
    }
    return -1;
}

/* Appends the children of node items in in to out (children()). */
static tsg_rc kids_of(fp_ctx *c, const coll *in, coll *out)
{
    tsg_rc rc = TSG_OK;
    for (size_t i = 0; i < in->count && !rc; i++) {
        const fp_item *it = &in->items[i];
        if (it->kind != IT_NODE) continue;
        for (uint32_t k = 0; k < it->node->nkids && !rc; k++)
            rc = push_node(c, out, &it->node->kids[k]);
    }
    return rc;
}

/* Reads the clock once per evaluation (the fixed one of the environment in
 * tests): every now() of one evaluation sees the same instant. */
static void read_clock(fp_ctx *c)
{
    if (c->clock_read) return;
    c->clock_read = 1;
    if (c->env && c->env->fixed_clock) {
        c->now_ms = c->env->now_ms;
        c->tz = c->env->tz_minutes;
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    struct tm lt;
    time_t now = ts.tv_sec;
    localtime_r(&now, &lt);
    c->tz = (int)(lt.tm_gmtoff / 60);
}

static tsg_rc eval_call(fp_ctx *c, const fp_node *n, const coll *in, const coll *focus, coll *out)
{
    const char *fn = n->call.name.s;
    const size_t fnl = n->call.name.len;
    tsg_rc rc = TSG_OK;
    int handled;
    coll a = {0};

    /* existence */
    if (IS_FN("empty")) {
        ARGS(0, 0);
        return push_bool(c, out, in->count == 0);
    }
    if (IS_FN("exists")) {
        ARGS(0, 1);
        if (!n->call.nargs) return push_bool(c, out, in->count > 0);
        for (size_t i = 0; i < in->count; i++) {
            int t;
            if ((rc = eval_lambda(c, n->call.args[0], &in->items[i], (int32_t)i, NULL, &a)))
                return rc;
            if ((rc = truth(c, n->call.args[0], &a, &t))) return rc;
            if (t == 1) return push_bool(c, out, true);
        }
        return push_bool(c, out, false);
    }
    if (IS_FN("all")) {
        ARGS(1, 1);
        for (size_t i = 0; i < in->count; i++) {
            int t;
            if ((rc = eval_lambda(c, n->call.args[0], &in->items[i], (int32_t)i, NULL, &a)))
                return rc;
            if ((rc = truth(c, n->call.args[0], &a, &t))) return rc;
            if (t != 1) return push_bool(c, out, false);
        }
        return push_bool(c, out, true);
    }
    if (IS_FN("allTrue") || IS_FN("anyTrue") || IS_FN("allFalse") || IS_FN("anyFalse")) {
        ARGS(0, 0);
        bool want = fn[3] == 'T';
        bool all = fn[1] == 'l';
        for (size_t i = 0; i < in->count; i++) {
            fp_item x;
            if (!sysval(&in->items[i], &x) || x.kind != IT_BOOLEAN)
                return fail(c, n, TSG_EINVAL, "%s() needs Booleans", fn);
            if (all && x.v.b != want) return push_bool(c, out, false);
            if (!all && x.v.b == want) return push_bool(c, out, true);
        }
        return push_bool(c, out, all);
    }
    if (IS_FN("count")) {
        ARGS(0, 0);
        return push_int(c, out, (int32_t)in->count);
    }
    if (IS_FN("distinct") || IS_FN("isDistinct")) {
        ARGS(0, 0);
        coll d = {0};
        for (size_t i = 0; i < in->count; i++)
            if (!coll_has(c, &d, &in->items[i]) && (rc = push(c, &d, &in->items[i]))) return rc;
        if (fn[0] == 'i') return push_bool(c, out, d.count == in->count);
        *out = d;
        return TSG_OK;
    }
    /* filtering and projection */
    if (IS_FN("where") || IS_FN("select")) {
        ARGS(1, 1);
        for (size_t i = 0; i < in->count; i++) {
            if ((rc = eval_lambda(c, n->call.args[0], &in->items[i], (int32_t)i, NULL, &a)))
                return rc;
            if (fn[0] == 's') {
                for (size_t j = 0; j < a.count; j++)
                    if ((rc = push(c, out, &a.items[j]))) return rc;
                continue;
            }
            int t;
            if ((rc = truth(c, n->call.args[0], &a, &t))) return rc;
            if (t == 1 && (rc = push(c, out, &in->items[i]))) return rc;
        }
        return TSG_OK;
    }
    if (IS_FN("repeat")) {
        ARGS(1, 1);
        coll work = *in;
        for (size_t round = 0; work.count; round++) {
            coll next = {0};
            for (size_t i = 0; i < work.count; i++) {
                if ((rc = eval_lambda(c, n->call.args[0], &work.items[i], (int32_t)i, NULL, &a)))
                    return rc;
                for (size_t j = 0; j < a.count; j++) {
                    if (coll_has(c, out, &a.items[j])) continue;
                    if ((rc = push(c, out, &a.items[j])) || (rc = push(c, &next, &a.items[j])))
                        return rc;
                }
            }
            work = next;
        }
        return TSG_OK;
    }
    if (IS_FN("aggregate")) {
        ARGS(1, 2);
        coll total = {0};
        if (n->call.nargs > 1 && (rc = arg_eval(c, n, 1, focus, &total))) return rc;
        for (size_t i = 0; i < in->count; i++) {
            coll nt;
            if ((rc = eval_lambda(c, n->call.args[0], &in->items[i], (int32_t)i, &total, &nt)))
                return rc;
            total = nt;
        }
        *out = total;
        return TSG_OK;
    }
    if (IS_FN("ofType") || IS_FN("is") || IS_FN("as")) {
        ARGS(1, 1);
        fp_str ns, name;
        if (!arg_type(n->call.args[0], &ns, &name))
            return fail(c, n, TSG_EINVAL, "%s() needs a type name", fn);
        if (!type_known(ns.s, ns.len, name.s, name.len))
            return fail(c, n->call.args[0], TSG_EINVAL, "unknown type %s", name.s);
        if (fn[0] != 'o' && in->count > 1)
            return fail(c, n, TSG_EINVAL, "%s() needs a single item", fn);
        for (size_t i = 0; i < in->count; i++) {
            int is = item_is(&in->items[i], ns.s, ns.len, name.s, name.len, fn[0] != 'i');
            if (fn[0] == 'i') return push_bool(c, out, is);
            if (is && (rc = push(c, out, &in->items[i]))) return rc;
        }
        return TSG_OK;
    }
    /* subsetting */
    if (IS_FN("first") || IS_FN("last")) {
        ARGS(0, 0);
        if (!in->count) return TSG_OK;
        return push(c, out, &in->items[fn[0] == 'f' ? 0 : in->count - 1]);
    }
    if (IS_FN("single")) {
        ARGS(0, 0);
        if (in->count > 1) return fail(c, n, TSG_EINVAL, "single(): %zu items", in->count);
        return in->count ? push(c, out, &in->items[0]) : TSG_OK;
    }
    if (IS_FN("tail") || IS_FN("skip") || IS_FN("take")) {
        int32_t k = 1;
        int have = 1;
        if (fn[1] == 'a' && fn[2] == 'i') {
            ARGS(0, 0);
        } else {
            ARGS(1, 1);
            if ((rc = arg_int(c, n, 0, focus, &k, &have))) return rc;
            if (!have) return TSG_OK;
        }
        size_t from = 0, to = in->count;
        if (fn[1] == 'a' && fn[2] == 'k')
            to = k <= 0 ? 0 : (size_t)k < to ? (size_t)k : to;
        else
            from = k <= 0 ? 0 : (size_t)k < to ? (size_t)k : to;
        for (size_t i = from; i < to; i++)
            if ((rc = push(c, out, &in->items[i]))) return rc;
        return TSG_OK;
    }
    /* combining */
    if (IS_FN("union") || IS_FN("combine") || IS_FN("intersect") || IS_FN("exclude") ||
        IS_FN("subsetOf") || IS_FN("supersetOf")) {
        ARGS(1, 1);
        if ((rc = arg_eval(c, n, 0, focus, &a))) return rc;
        if (IS_FN("combine")) {
            for (size_t i = 0; i < in->count && !rc; i++) rc = push(c, out, &in->items[i]);
            for (size_t i = 0; i < a.count && !rc; i++) rc = push(c, out, &a.items[i]);
            return rc;
        }
        if (IS_FN("union")) {
            for (size_t i = 0; i < in->count && !rc; i++)
                if (!coll_has(c, out, &in->items[i])) rc = push(c, out, &in->items[i]);
            for (size_t i = 0; i < a.count && !rc; i++)
                if (!coll_has(c, out, &a.items[i])) rc = push(c, out, &a.items[i]);
            return rc;
        }
        if (IS_FN("subsetOf") || IS_FN("supersetOf")) {
            const coll *sub = fn[2] == 'b' ? in : &a, *sup = fn[2] == 'b' ? &a : in;
            for (size_t i = 0; i < sub->count; i++)
                if (!coll_has(c, sup, &sub->items[i])) return push_bool(c, out, false);
            return push_bool(c, out, true);
        }
        int keep_in = fn[0] == 'i';
        for (size_t i = 0; i < in->count && !rc; i++) {
            int has = coll_has(c, &a, &in->items[i]);
            if (keep_in ? (has && !coll_has(c, out, &in->items[i])) : !has)
                rc = push(c, out, &in->items[i]);
        }
        return rc;
    }
    if (IS_FN("iif")) {
        ARGS(2, 3);
        /* iif's arguments see its input as $this (a single item at most) */
        if (in->count > 1) return fail(c, n, TSG_EINVAL, "iif() needs a single input item");
        int t;
        const fp_item *it = in->count ? &in->items[0] : NULL;
        if ((rc = it ? eval_lambda(c, n->call.args[0], it, c->index, NULL, &a)
                     : arg_eval(c, n, 0, in, &a)))
            return rc;
        if ((rc = truth(c, n->call.args[0], &a, &t))) return rc;
        fp_item cb;
        if (t != 2 && sysval(&a.items[0], &cb) && cb.kind != IT_BOOLEAN)
            return fail(c, n->call.args[0], TSG_EINVAL, "iif() needs a Boolean criterion");
        uint32_t pick = t == 1 ? 1 : 2;
        if (pick >= n->call.nargs) return TSG_OK;
        return it ? eval_lambda(c, n->call.args[pick], it, c->index, NULL, out)
                  : arg_eval(c, n, pick, in, out);
    }
    if (IS_FN("not")) {
        ARGS(0, 0);
        int t;
        if ((rc = truth(c, n, in, &t))) return rc;
        return t == 2 ? TSG_OK : push_bool(c, out, !t);
    }
    if ((rc = fn_convert(c, n, fn, in, out, &handled)) || handled) return rc;
    if ((rc = fn_string(c, n, fn, in, focus, out, &handled)) || handled) return rc;
    if ((rc = fn_math(c, n, fn, in, focus, out, &handled)) || handled) return rc;
    /* tree navigation */
    if (IS_FN("children")) {
        ARGS(0, 0);
        return kids_of(c, in, out);
    }
    if (IS_FN("descendants")) {
        ARGS(0, 0);
        coll work = *in;
        while (work.count) {
            coll next = {0};
            if ((rc = kids_of(c, &work, &next))) return rc;
            for (size_t i = 0; i < next.count && !rc; i++) rc = push(c, out, &next.items[i]);
            if (rc) return rc;
            work = next;
        }
        return TSG_OK;
    }
    /* utility */
    if (IS_FN("trace")) {
        ARGS(1, 2);
        const char *name;
        size_t name_len;
        int has;
        if ((rc = arg_str(c, n, 0, focus, &name, &name_len, &has))) return rc;
        *out = *in;
        if (!c->env || !c->env->trace) return TSG_OK;
        coll shown = *in;
        if (n->call.nargs > 1) {
            memset(&shown, 0, sizeof shown);
            for (size_t i = 0; i < in->count; i++) {
                if ((rc = eval_lambda(c, n->call.args[1], &in->items[i], (int32_t)i, NULL, &a)))
                    return rc;
                for (size_t j = 0; j < a.count; j++)
                    if ((rc = push(c, &shown, &a.items[j]))) return rc;
            }
        }
        c->env->trace(c->env->trace_user, has ? name : "", has ? name_len : 0, &shown);
        return TSG_OK;
    }
    if (IS_FN("now") || IS_FN("today") || IS_FN("timeOfDay")) {
        ARGS(0, 0);
        fp_item r = {.kind = fn[0] == 'n' ? IT_DATETIME : fn[1] == 'o' ? IT_DATE : IT_TIME};
        read_clock(c);
        fp_status st = fn[0] == 'n'   ? fp_dt_now(c->now_ms, c->tz, &r.v.dt)
                       : fn[1] == 'o' ? fp_dt_today(c->now_ms, c->tz, &r.v.dt)
                                      : fp_dt_time_of_day(c->now_ms, c->tz, &r.v.dt);
        if (st != FP_OK) return fail(c, n, TSG_EINVAL, "%s(): clock out of range", fn);
        return push(c, out, &r);
    }
    if ((rc = fn_more(c, n, fn, in, focus, out, &handled)) || handled) return rc;
    /* FHIR */
    if (IS_FN("extension")) {
        ARGS(1, 1);
        const char *u;
        size_t ul;
        int hu;
        if ((rc = arg_str(c, n, 0, focus, &u, &ul, &hu)) || !hu) return rc;
        for (size_t i = 0; i < in->count; i++) {
            if (in->items[i].kind != IT_NODE) continue;
            const fhir_node *p = in->items[i].node;
            for (uint32_t k = 0; k < p->nkids; k++) {
                const fhir_node *x = &p->kids[k];
                if (strcmp(x->elem->name, "extension")) continue;
                for (uint32_t j = 0; j < x->nkids; j++) {
                    const fhir_node *uu = &x->kids[j];
                    if (!strcmp(uu->elem->name, "url") && uu->value && uu->value_len == ul &&
                        !memcmp(uu->value, u, ul) && (rc = push_node(c, out, x)))
                        return rc;
                }
            }
        }
        return TSG_OK;
    }
    if (IS_FN("conformsTo")) {
        /* only the core StructureDefinitions of the model, for now */
        ARGS(1, 1);
        const char *u;
        size_t ul;
        int hu;
        if ((rc = arg_str(c, n, 0, focus, &u, &ul, &hu)) || !hu) return rc;
        const model *m = model_r4();
        const model_type *t = NULL;
        for (uint32_t i = 0; i < m->ntypes && !t; i++)
            if (m->types[i].url && strlen(m->types[i].url) == ul && !memcmp(m->types[i].url, u, ul))
                t = &m->types[i];
        if (!t) return fail(c, n, TSG_ENOTSUP, "conformsTo(): profile %s is not loaded", u);
        for (size_t i = 0; i < in->count; i++)
            if ((rc = push_bool(c, out,
                                in->items[i].kind == IT_NODE &&
                                    model_type_is(in->items[i].node->type, t))))
                return rc;
        return TSG_OK;
    }
    if (IS_FN("resolve")) {
        ARGS(0, 0);
        for (size_t i = 0; i < in->count; i++) {
            const fp_item *it = &in->items[i];
            const char *ref = NULL;
            uint32_t rl = 0;
            fp_item x;
            if (it->kind == IT_NODE && !model_is_primitive(it->node->type))
                ref = kid_value(it->node, "reference", &rl);
            else if (sysval(it, &x) && x.kind == IT_STRING)
                ref = x.v.s.s, rl = x.v.s.len;
            if (ref && rl && (rc = resolve_one(c, ref, rl, out))) return rc;
        }
        return TSG_OK;
    }
    if (IS_FN("memberOf")) {
        ARGS(1, 1);
        const char *u;
        size_t ul;
        int hu;
        if ((rc = arg_str(c, n, 0, focus, &u, &ul, &hu)) || !hu) return rc;
        const model_valueset *vs = model_valueset_find(u);
        if (!vs || vs->unavailable)
            return fail(c, n, TSG_ENOTSUP, "memberOf(): value set %s is not available%s%s", u,
                        vs ? ": " : "", vs ? vs->unavailable : "");
        if (in->count > 1) return fail(c, n, TSG_EINVAL, "memberOf() needs a single item");
        if (!in->count) return TSG_OK;
        if (in->items[0].kind != IT_NODE) {
            fp_item x = in->items[0];
            if (x.kind != IT_STRING) return TSG_OK;
            char *code = arena_cat(c, x.v.s.s, x.v.s.len, "", 0);
            return code ? push_bool(c, out, model_valueset_has(vs, NULL, code)) : nomem(c);
        }
        int m = member_of(in->items[0].node, vs);
        return m < 0 ? TSG_OK : push_bool(c, out, m);
    }
    if (IS_FN("htmlChecks")) {
        /* txt-1 and txt-2 on the narrative div (the R4 definitions use
         * htmlChecks() for both); an input that is not one div node: empty */
        ARGS(0, 0);
        if (in->count != 1 || in->items[0].kind != IT_NODE) return TSG_OK;
        const fhir_node *d = in->items[0].node;
        if (!d->value || strcmp(d->type->name, "xhtml")) return TSG_OK;
        tsg_error herr;
        tsg_rc hrc = model_xhtml_html_checks(d->value, d->value_len, &herr);
        if (hrc == TSG_ENOMEM) return nomem(c);
        return push_bool(c, out, hrc == TSG_OK);
    }
    if (IS_FN("hasValue")) {
        ARGS(0, 0);
        return push_bool(c, out,
                         in->count == 1 && (in->items[0].kind != IT_NODE ||
                                            (model_is_primitive(in->items[0].node->type) &&
                                             in->items[0].node->value)));
    }
    if (IS_FN("getValue")) {
        ARGS(0, 0);
        fp_item x;
        if (in->count == 1 && sysval(&in->items[0], &x)) return push(c, out, &x);
        return TSG_OK;
    }
    return fail(c, n, TSG_ENOTSUP, "function %s() is not supported", fn);
}

/* ------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------ */

tsg_rc fp_eval(const fp_expr *e, const fhir_node *resource, const fhir_node *context,
               const fp_env *env, tsg_arena *a, fp_collection *out, tsg_error *err)
{
    fp_ctx c = {.e = e, .resource = resource, .env = env, .a = a, .err = err};
    c.max_steps = env && env->max_steps ? env->max_steps : FP_LIMIT_STEPS;
    c.context = context ? context : resource;
    memset(out, 0, sizeof *out);
    tsg_error_clear(err);
    coll focus = {0};
    tsg_rc rc = TSG_OK;
    if (c.context) rc = push_node(&c, &focus, c.context);
    if (!rc) rc = eval(&c, e->root, &focus, out);
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

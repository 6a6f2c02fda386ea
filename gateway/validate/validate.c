/*
 * validate.c — the base R4 validator: one walk over a resource tree checking
 * cardinality, types, primitives, references, contained resources, the
 * narrative, Bundle rules, bindings and invariants (validate.h).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "../model/model_internal.h"
#include "validate_internal.h"

/* Cap on the expression text of one node (deeper paths are cut). */
#define VALIDATE_PATH_MAX (16u * 1024u)
/* The scratch arena of FHIRPath evaluations is replaced past this size, and
 * one evaluation may use at most VALIDATE_SCRATCH_CAP of it (beyond: the
 * invariant is reported as not evaluable). */
#define VALIDATE_SCRATCH_MAX (8u * 1024u * 1024u)
#define VALIDATE_SCRATCH_CAP (64u * 1024u * 1024u)
/* Work budget of one invariant evaluation (node visits; see fp_env). */
#define VALIDATE_INVARIANT_STEPS 20000000ull
/* R4: strings and markdown "SHALL NOT exceed 1MB". */
#define VALIDATE_STRING_MAX (1024u * 1024u)

/* ------------------------------------------------------------------------
 * Precomputed data (built once)
 * ------------------------------------------------------------------------ */

typedef enum prim_kind {
    PK_OTHER = 0,
    PK_STRING, /* string, markdown */
    PK_URI,    /* uri, url, canonical */
    PK_BASE64,
    PK_OID,
    PK_UUID,
    PK_XHTML
} prim_kind;

static struct {
    uint8_t *prim; /* prim_kind by model_type.id */
    const model_type *reference, *extension, *coding, *codeable_concept, *bundle, *domain_resource,
        *resource, *code_system, *element_definition;
    /* constraints checked natively (validate_invariants.c), for their text */
    const model_constraint *dom3, *csd1, *eld16, *eld19;
    const char **systems; /* every code system the model's value sets name, sorted */
    size_t nsystems;
} g;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void b64_init(void);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void g_build(void)
{
    const model *m = model_r4();
    g.prim = calloc(m->ntypes ? m->ntypes : 1, 1);
    size_t ncodes = 0;
    for (uint32_t i = 0; i < m->nvaluesets; i++) ncodes += m->valuesets[i].ncodes;
    for (size_t i = 0; i < validate_extensible_valuesets_count; i++)
        ncodes += validate_extensible_valuesets[i].ncodes;
    g.systems = calloc(ncodes ? ncodes : 1, sizeof *g.systems);
    if (!g.prim || !g.systems) abort(); /* at start-up */
    for (uint32_t i = 0; i < m->ntypes; i++) {
        const model_type *t = &m->types[i];
        if (t->kind != MODEL_PRIMITIVE) continue;
        const char *n = t->name;
        prim_kind k = PK_OTHER;
        if (!strcmp(n, "string") || !strcmp(n, "markdown"))
            k = PK_STRING;
        else if (!strcmp(n, "uri") || !strcmp(n, "url") || !strcmp(n, "canonical"))
            k = PK_URI;
        else if (!strcmp(n, "base64Binary"))
            k = PK_BASE64;
        else if (!strcmp(n, "oid"))
            k = PK_OID;
        else if (!strcmp(n, "uuid"))
            k = PK_UUID;
        else if (!strcmp(n, "xhtml"))
            k = PK_XHTML;
        g.prim[t->id] = (uint8_t)k;
    }
    b64_init();
    g.reference = model_type_find("Reference", 9);
    g.extension = model_type_find("Extension", 9);
    g.coding = model_type_find("Coding", 6);
    g.codeable_concept = model_type_find("CodeableConcept", 15);
    g.bundle = model_type_find("Bundle", 6);
    g.domain_resource = model_type_find("DomainResource", 14);
    g.resource = model_type_find("Resource", 8);
    g.code_system = model_type_find("CodeSystem", 10);
    g.element_definition = model_type_find("ElementDefinition", 17);
    for (uint32_t i = 0; i < m->nconstraints; i++) {
        const model_constraint *k = &m->constraints[i];
        if (!strcmp(k->key, "dom-3") && !g.dom3)
            g.dom3 = k;
        else if (!strcmp(k->key, "csd-1") && !g.csd1)
            g.csd1 = k;
        else if (!strcmp(k->key, "eld-16") && !g.eld16)
            g.eld16 = k;
        else if (!strcmp(k->key, "eld-19") && !g.eld19)
            g.eld19 = k;
    }
    for (uint32_t i = 0; i < m->nvaluesets; i++)
        for (uint32_t j = 0; j < m->valuesets[i].ncodes; j++)
            if (m->valuesets[i].codes[j].system)
                g.systems[g.nsystems++] = m->valuesets[i].codes[j].system;
    for (size_t i = 0; i < validate_extensible_valuesets_count; i++)
        for (uint32_t j = 0; j < validate_extensible_valuesets[i].ncodes; j++)
            if (validate_extensible_valuesets[i].codes[j].system)
                g.systems[g.nsystems++] = validate_extensible_valuesets[i].codes[j].system;
    qsort(g.systems, g.nsystems, sizeof *g.systems, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < g.nsystems; i++)
        if (!w || strcmp(g.systems[w - 1], g.systems[i])) g.systems[w++] = g.systems[i];
    g.nsystems = w;
}

/* 1 when the model's value sets know code system `system`. */
static int system_known(const char *system)
{
    return bsearch(&system, g.systems, g.nsystems, sizeof *g.systems, cmp_str) != NULL;
}

/* ------------------------------------------------------------------------
 * The walk's state and issue reporting
 * ------------------------------------------------------------------------ */

typedef struct vctx {
    validate_issue_fn report;
    void *rctx;
    unsigned flags;
    char *path; /* the current node's expression, NUL-terminated */
    size_t plen;
    tsg_arena *scratch;         /* FHIRPath results; replaced when large */
    const fhir_node *resource;  /* the resource being walked (%resource) */
    const fhir_node *container; /* whose contained resources '#id' resolves against */
    tsg_rc rc;                  /* TSG_ENOMEM once memory ran out */
    const vinv *inv;            /* validate_invariant_table() */
    const struct cidx *cidx;    /* the container's contained resources, sorted by id */
    size_t ncidx;
    const model_constraint *kbase; /* model_r4()->constraints, its index base */
} vctx;

static void issue(vctx *c, validate_severity sev, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reports one issue at the current path. */
static void issue(vctx *c, validate_severity sev, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->report(c->rctx, sev, code, c->path, msg);
}

/* Appends ".name" (and "[pos]" when the element repeats) for kid k; returns
 * the previous length for path_pop. */
static size_t path_push(vctx *c, const fhir_node *k)
{
    size_t mark = c->plen;
    char name[160];
    size_t n = model_property_name(k->elem, k->type, name, sizeof name);
    char idx[16];
    size_t il = 0;
    if (k->elem->max != 1) {
        char digits[12];
        size_t nd = 0;
        uint32_t p = k->pos;
        do {
            digits[nd++] = (char)('0' + p % 10);
            p /= 10;
        } while (p);
        idx[il++] = '[';
        while (nd) idx[il++] = digits[--nd];
        idx[il++] = ']';
    }
    if (c->plen + 1 + n + il < VALIDATE_PATH_MAX) {
        c->path[c->plen++] = '.';
        memcpy(c->path + c->plen, name, n);
        c->plen += n;
        memcpy(c->path + c->plen, idx, il);
        c->plen += il;
        c->path[c->plen] = '\0';
    }
    return mark;
}

static void path_pop(vctx *c, size_t mark)
{
    c->plen = mark;
    c->path[mark] = '\0';
}

/* 1 when element name nm is `name` (first byte compared inline: most
 * comparisons in the walk fail on it). */
static inline int name_is(const char *nm, const char *name)
{
    return nm[0] == name[0] && !strcmp(nm, name);
}

/* Value of the first child named `name` of n (a primitive), or NULL. */
static const fhir_node *kid(const fhir_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (name_is(n->kids[i].elem->name, name)) return &n->kids[i];
    return NULL;
}

static const char *kid_value(const fhir_node *n, const char *name)
{
    const fhir_node *k = kid(n, name);
    return k ? k->value : NULL;
}

/* ------------------------------------------------------------------------
 * Primitives
 * ------------------------------------------------------------------------ */

static int is_hex_lower(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

/* uuid: urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12} */
static int uuid_ok(const char *s, size_t n)
{
    if (n != 45 || memcmp(s, "urn:uuid:", 9)) return 0;
    for (size_t i = 9; i < n; i++) {
        size_t j = i - 9;
        if (j == 8 || j == 13 || j == 18 || j == 23) {
            if (s[i] != '-') return 0;
        } else if (!is_hex_lower(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* oid: urn:oid:[0-2](\.(0|[1-9][0-9]*))+ */
static int oid_ok(const char *s, size_t n)
{
    if (n < 11 || memcmp(s, "urn:oid:", 8)) return 0;
    size_t i = 8;
    if (s[i] < '0' || s[i] > '2') return 0;
    i++;
    int arcs = 0;
    while (i < n) {
        if (s[i++] != '.' || i >= n) return 0;
        if (s[i] == '0') {
            i++;
        } else if (s[i] >= '1' && s[i] <= '9') {
            while (i < n && s[i] >= '0' && s[i] <= '9') i++;
        } else {
            return 0;
        }
        arcs++;
    }
    return arcs >= 1;
}

/* base64Binary: (\s*([0-9a-zA-Z\+/=]){4}\s*)+ with '=' only as padding.
 * Attachments make this the validator's longest loop: one table lookup a byte. */
enum { B64_BAD = 0, B64_WS, B64_CHAR, B64_PAD };
static unsigned char b64_class[256];

static void b64_init(void)
{
    for (int ch = 'A'; ch <= 'Z'; ch++) b64_class[ch] = B64_CHAR;
    for (int ch = 'a'; ch <= 'z'; ch++) b64_class[ch] = B64_CHAR;
    for (int ch = '0'; ch <= '9'; ch++) b64_class[ch] = B64_CHAR;
    b64_class['+'] = b64_class['/'] = B64_CHAR;
    b64_class['='] = B64_PAD;
    b64_class[' '] = b64_class['\t'] = b64_class['\r'] = b64_class['\n'] = B64_WS;
}

static const char *base64_problem(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t count = 0, pad = 0, i = 0;
    unsigned seen = 0;
    /* the common case: only alphabet characters until the padding */
#ifdef __SSE2__
    /* 16 bytes at a time while each is A-Z, a-z, 0-9, '+', '/' or whitespace
     * (base64 is often wrapped in lines); the scalar loop takes the rest */
    size_t ws = 0;
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i up = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                                   _mm_cmplt_epi8(v, _mm_set1_epi8('Z' + 1)));
        __m128i lo = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('a' - 1)),
                                   _mm_cmplt_epi8(v, _mm_set1_epi8('z' + 1)));
        __m128i dg = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                   _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
        __m128i sy = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('+')),
                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('/')));
        __m128i sp = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(' ')),
                                               _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
                                  _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                                               _mm_cmpeq_epi8(v, _mm_set1_epi8('\t'))));
        __m128i ok = _mm_or_si128(_mm_or_si128(up, lo), _mm_or_si128(dg, sy));
        if (_mm_movemask_epi8(_mm_or_si128(ok, sp)) != 0xFFFF) break;
        /* whitespace bytes counted by summing the 0/1 lanes (no popcount needed) */
        __m128i sad = _mm_sad_epu8(_mm_and_si128(sp, _mm_set1_epi8(1)), _mm_setzero_si128());
        ws += (size_t)(_mm_cvtsi128_si32(sad) + _mm_extract_epi16(sad, 4));
        i += 16;
    }
    count = i - ws;
    size_t start = i;
#else
    size_t start = 0;
#endif
    while (i < n && b64_class[p[i]] == B64_CHAR) i++;
    count += i - start;
    for (; i < n; i++) {
        unsigned k = b64_class[p[i]];
        seen |= 1u << k;
        if (k == B64_WS) continue;
        if (k == B64_PAD)
            pad++;
        else if (k == B64_CHAR && pad)
            return "'=' padding may only end the value";
        count++;
    }
    if (seen & (1u << B64_BAD)) return "a character outside the base64 alphabet";
    if (count % 4) return "its length (without whitespace) is not a multiple of 4";
    if (pad > 2) return "more than two '=' padding characters";
    return NULL;
}

/* maxLength=N in an extras string ("maxLength=N;…"), or 0. */
static unsigned long extras_max_length(const char *extras)
{
    if (!extras) return 0;
    const char *p = strstr(extras, "maxLength=");
    if (!p) return 0;
    char *end;
    unsigned long v = strtoul(p + 10, &end, 10);
    return end == p + 10 ? 0 : v;
}

/* Number of Unicode characters of valid UTF-8 s[0..n). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

static void check_primitive(vctx *c, const fhir_node *n)
{
    const model_type *t = n->type;
    const char *v = n->value;
    if (!v) return;
    size_t len = n->value_len;
    tsg_error e;
    tsg_error_clear(&e);
    if (model_check_lexical(t, v, len, &e) != TSG_OK) {
        issue(c, VALIDATE_ERROR, "value", "%s", e.message);
        return;
    }
    switch ((prim_kind)g.prim[t->id]) {
    case PK_STRING:
        if (len > VALIDATE_STRING_MAX) {
            issue(c, VALIDATE_ERROR, "value", "a %s value must not exceed 1 MB (it has %zu bytes)",
                  t->name, len);
            return;
        }
        {
            /* no early exit, so the compiler can vectorise the common case */
            unsigned bad = 0;
            for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char)v[i];
                bad |= (unsigned)(ch < 0x20) & (unsigned)(ch != '\t') & (unsigned)(ch != '\r') &
                       (unsigned)(ch != '\n');
            }
            for (size_t i = 0; bad && i < len; i++) {
                unsigned char ch = (unsigned char)v[i];
                if (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') {
                    issue(c, VALIDATE_ERROR, "value",
                          "a %s value must not contain control characters (U+%04X at byte %zu)",
                          t->name, ch, i);
                    return;
                }
            }
        }
        break;
    case PK_URI:
        /* "oid:" and "uuid:" are not URI schemes: the urn: forms are meant (the
         * reference validator refuses these too; it does not check the urn:
         * forms of a plain uri, and R4's own examples use loose ones) */
        if ((len > 4 && !memcmp(v, "oid:", 4)) || (len > 5 && !memcmp(v, "uuid:", 5))) {
            issue(c, VALIDATE_ERROR, "value",
                  "'%.*s' is not a URI: OIDs and UUIDs are written urn:oid:… and urn:uuid:…",
                  len > 60 ? 60 : (int)len, v);
            return;
        }
        if (n->elem && n->elem->owner == g.coding && name_is(n->elem->name, "system") &&
            !memchr(v, ':', len)) {
            issue(c, VALIDATE_ERROR, "value",
                  "Coding.system must be an absolute URI, not a local reference ('%.*s')",
                  len > 60 ? 60 : (int)len, v);
            return;
        }
        for (size_t i = 0; i < len; i++)
            if (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n' ||
                (unsigned char)v[i] < 0x20) {
                issue(c, VALIDATE_ERROR, "value", "a %s must not contain whitespace ('%.*s')",
                      t->name, len > 60 ? 60 : (int)len, v);
                return;
            }
        break;
    case PK_BASE64: {
        const char *why = base64_problem(v, len);
        if (why) issue(c, VALIDATE_ERROR, "value", "the value is not valid base64Binary: %s", why);
        break;
    }
    case PK_OID:
        if (!oid_ok(v, len))
            issue(c, VALIDATE_ERROR, "value",
                  "'%.*s' is not an oid (urn:oid: then dot-separated numbers, the first 0-2)",
                  len > 60 ? 60 : (int)len, v);
        break;
    case PK_UUID:
        if (!uuid_ok(v, len))
            issue(c, VALIDATE_ERROR, "value",
                  "'%.*s' is not a uuid (urn:uuid: then 8-4-4-4-12 lower-case hex digits)",
                  len > 60 ? 60 : (int)len, v);
        break;
    case PK_XHTML: {
        tsg_error he;
        tsg_error_clear(&he);
        tsg_rc hrc = model_xhtml_html_checks(v, len, &he);
        if (hrc == TSG_ENOMEM)
            c->rc = TSG_ENOMEM;
        else if (hrc)
            issue(c, VALIDATE_ERROR, "value",
                  "txt-1: the narrative SHALL contain only the basic html formatting elements "
                  "and attributes: %s",
                  he.message);
        break;
    }
    default:
        break;
    }
    unsigned long maxlen = extras_max_length(n->elem ? n->elem->extras : NULL);
    if (maxlen && utf8_chars(v, len) > maxlen)
        issue(c, VALIDATE_ERROR, "value", "the value is longer than the maxLength %lu", maxlen);
}

/* ------------------------------------------------------------------------
 * References
 * ------------------------------------------------------------------------ */

/* The resource type of a `Type/id[/_history/v]` tail starting at s[0..n) —
 * returns the type (NULL when not of that shape) and sets *id_ok. */
static const model_type *rest_ref(const char *s, size_t n, int *id_ok, const char **idp,
                                  size_t *idl)
{
    const char *slash = memchr(s, '/', n);
    if (!slash) return NULL;
    const model_type *t = model_resource_find(s, (size_t)(slash - s));
    if (!t) return NULL;
    const char *id = slash + 1;
    const char *end = s + n;
    const char *hist = NULL;
    for (const char *p = id; p < end; p++)
        if (*p == '/') {
            hist = p;
            break;
        }
    size_t l = (size_t)((hist ? hist : end) - id);
    int ok = l >= 1 && l <= 64;
    for (size_t i = 0; ok && i < l; i++) {
        char ch = id[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '-' || ch == '.';
    }
    if (ok && hist) ok = (size_t)(end - hist) > 10 && !memcmp(hist, "/_history/", 10);
    *id_ok = ok;
    if (idp) *idp = id, *idl = l;
    return t;
}

/* 1 when `type` is allowed by the typeref's targets; -1 when the targets
 * name profiles this validator cannot resolve (not checkable). */
static int target_allowed(const model_typeref *tr, const model_type *type, char *list, size_t cap)
{
    static const char core[] = "http://hl7.org/fhir/StructureDefinition/";
    size_t ll = 0;
    list[0] = '\0';
    int unknown = 0;
    for (uint16_t i = 0; i < tr->ntargets; i++) {
        const char *tg = tr->targets[i];
        if (!strncmp(tg, core, sizeof core - 1)) tg += sizeof core - 1;
        const model_type *tt = model_type_find(tg, strlen(tg));
        if (!tt || (tt->kind != MODEL_RESOURCE)) {
            unknown = 1;
            continue;
        }
        if (model_type_is(type, tt)) return 1;
        int w = snprintf(list + ll, cap - ll, "%s%s", ll ? ", " : "", tt->name);
        if (w > 0 && (size_t)w < cap - ll) ll += (size_t)w;
    }
    return unknown ? -1 : 0;
}

/* The contained resources of a container, sorted by id, so that '#id'
 * references, duplicate ids and dom-3 cost O(n log n), not O(n²), however
 * many contained resources a write carries. */
typedef struct cidx {
    const char *id;
    const fhir_node *node;
} cidx;

static int cmp_cidx(const void *a, const void *b)
{
    const cidx *x = a, *y = b;
    int d = strcmp(x->id, y->id);
    return d ? d : (x->node->pos > y->node->pos) - (x->node->pos < y->node->pos);
}

/* Builds the sorted index of r's contained resources (with an id) into *out
 * (malloc'd; NULL and 0 when there are none). Returns TSG_OK or TSG_ENOMEM. */
static tsg_rc cidx_build(const fhir_node *r, cidx **out, size_t *n)
{
    size_t cnt = 0;
    *out = NULL;
    *n = 0;
    for (uint32_t i = 0; i < r->nkids; i++)
        if (name_is(r->kids[i].elem->name, "contained")) cnt++;
    if (!cnt) return TSG_OK;
    cidx *a = malloc(cnt * sizeof *a);
    if (!a) return TSG_ENOMEM;
    size_t k = 0;
    for (uint32_t i = 0; i < r->nkids; i++) {
        const fhir_node *ct = &r->kids[i];
        if (!name_is(ct->elem->name, "contained")) continue;
        const char *id = kid_value(ct, "id");
        if (id) a[k].id = id, a[k++].node = ct;
    }
    qsort(a, k, sizeof *a, cmp_cidx);
    *out = a;
    *n = k;
    return TSG_OK;
}

/* The contained resource of the current container with id `id` (len l). */
static const fhir_node *find_contained(vctx *c, const char *id, size_t l)
{
    size_t lo = 0, hi = c->ncidx;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *m = c->cidx[mid].id;
        int d = strncmp(m, id, l);
        if (!d && m[l]) d = 1;
        if (d < 0)
            lo = mid + 1;
        else if (d > 0)
            hi = mid;
        else
            return c->cidx[mid].node;
    }
    return NULL;
}

/* A Reference node: the format of Reference.reference and the target type. */
static void check_reference(vctx *c, const fhir_node *n, const model_typeref *tr)
{
    const fhir_node *rk = kid(n, "reference");
    const char *ref = rk ? rk->value : NULL;
    const model_type *target = NULL;
    const char *how = NULL;
    size_t mark = c->plen;
    if (ref) {
        size_t l = strlen(ref);
        path_push(c, rk);
        int id_ok = 1;
        if (ref[0] == '#') {
            if (l > 1) {
                const fhir_node *ct = find_contained(c, ref + 1, l - 1);
                if (!ct)
                    issue(c, VALIDATE_ERROR, "structure",
                          "ref-1: the contained resource '%s' is not found (a '#' reference "
                          "must name a contained resource of the same resource)",
                          ref);
                else
                    target = ct->type, how = "contained";
            }
        } else if (!strncmp(ref, "urn:uuid:", 9)) {
            if (!uuid_ok(ref, l))
                issue(c, VALIDATE_ERROR, "value", "the reference '%s' is not a valid urn:uuid",
                      ref);
        } else if (!strncmp(ref, "urn:oid:", 8)) {
            if (!oid_ok(ref, l))
                issue(c, VALIDATE_ERROR, "value", "the reference '%s' is not a valid urn:oid", ref);
        } else {
            const char *colon = strchr(ref, ':');
            const char *slash = strchr(ref, '/');
            int absolute = colon && (!slash || colon < slash);
            if (absolute) {
                /* an absolute URL: a RESTful tail Type/id[/_history/v] gives the type */
                const char *end = ref + l;
                const char *p = end;
                int slashes = 0;
                const char *cut[4] = {0};
                while (p > ref && slashes < 4) {
                    p--;
                    if (*p == '/') cut[slashes++] = p;
                }
                for (int i = 1; i < slashes && !target; i += 2) {
                    int ok = 0;
                    const model_type *t =
                        rest_ref(cut[i] + 1, (size_t)(end - cut[i] - 1), &ok, NULL, NULL);
                    if (t && ok) target = t, how = "URL";
                }
                for (const char *q = ref; *q; q++)
                    if (*q == ' ') {
                        issue(c, VALIDATE_ERROR, "value",
                              "the reference '%s' must not contain whitespace", ref);
                        break;
                    }
            } else {
                const char *q = strchr(ref, '?');
                if (q && q > ref) {
                    /* a conditional reference (Type?search), valid in transactions */
                    const model_type *t = model_resource_find(ref, (size_t)(q - ref));
                    if (!t)
                        issue(c, VALIDATE_ERROR, "value",
                              "the reference '%s' does not start with a known resource type", ref);
                    else
                        target = t, how = "search";
                } else {
                    const model_type *t = rest_ref(ref, l, &id_ok, NULL, NULL);
                    if (!t) {
                        issue(c, VALIDATE_ERROR, "value",
                              "the reference '%s' is not Type/id with a known resource type, an "
                              "absolute URL, '#id' or urn:uuid:/urn:oid:",
                              ref);
                    } else if (!id_ok) {
                        issue(c, VALIDATE_ERROR, "value",
                              "the reference '%s' has an invalid id (1-64 of A-Z a-z 0-9 - .) "
                              "or history part",
                              ref);
                    } else {
                        target = t, how = "reference";
                    }
                }
            }
        }
        path_pop(c, mark);
    }
    const char *type_v = kid_value(n, "type");
    if (type_v) {
        static const char core[] = "http://hl7.org/fhir/StructureDefinition/";
        const char *tn = type_v;
        if (!strncmp(tn, core, sizeof core - 1)) tn += sizeof core - 1;
        const model_type *tt = model_resource_find(tn, strlen(tn));
        if (tt && target && tt != target) {
            issue(c, VALIDATE_ERROR, "structure",
                  "Reference.type '%s' does not match the type %s of the reference", type_v,
                  target->name);
        }
        if (tt && !target) target = tt, how = "type";
    }
    if (target && tr && tr->ntargets) {
        char list[512];
        if (target_allowed(tr, target, list, sizeof list) == 0)
            issue(c, VALIDATE_ERROR, "structure",
                  "the %s names a %s, which is not a valid target of this element (allowed: %s)",
                  how, target->name, list);
    }
}

/* ------------------------------------------------------------------------
 * Terminology
 * ------------------------------------------------------------------------ */

/* ISO 4217 alphabetic codes (the currencies value set's code system, which R4
 * does not enumerate): the active codes and the funds/precious-metal codes. */
static const char *const iso4217[] = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
    "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP",
    "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HRK", "HTG", "HUF", "IDR",
    "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW",
    "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA",
    "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD",
    "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG",
    "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE",
    "SLL", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP",
    "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XDR",
    "XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWL"};

/* A BCP 13 media type: type "/" subtype, then optional ";" parameters, with
 * the top-level types of the IANA registry. */
static int mime_ok(const char *s)
{
    static const char *const top[] = {"application", "audio", "example",   "font", "image",
                                      "message",     "model", "multipart", "text", "video"};
    const char *slash = strchr(s, '/');
    if (!slash) return 0;
    size_t tl = (size_t)(slash - s);
    int known = 0;
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (strlen(top[i]) == tl && !strncasecmp(s, top[i], tl)) known = 1;
    if (!known) return 0;
    const char *p = slash + 1;
    size_t n = 0;
    /* RFC 6838 restricted-name characters */
    while (p[n] && ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
                    (p[n] >= '0' && p[n] <= '9') || strchr("!#$&-^_.+", p[n])))
        n++;
    if (!n || n > 127) return 0;
    p += n;
    while (*p == ' ') p++;
    if (!*p) return 1;
    if (*p != ';') return 0;
    for (p++; *p; p++) /* parameters: printable, no control characters */
        if ((unsigned char)*p < 0x20) return 0;
    return 1;
}

/*
 * Value sets whose code system R4 does not enumerate but whose codes a
 * grammar or a short list decides: 1 valid, 0 invalid, -1 not one of them.
 */
static int grammar_code(const model_valueset *vs, const char *system, const char *code)
{
    if (!strcmp(vs->url, "http://hl7.org/fhir/ValueSet/currencies")) {
        if (system && strcmp(system, "urn:iso:std:iso:4217")) return 0;
        for (size_t i = 0; i < sizeof iso4217 / sizeof iso4217[0]; i++)
            if (!strcmp(iso4217[i], code)) return 1;
        return 0;
    }
    if (!strcmp(vs->url, "http://hl7.org/fhir/ValueSet/mimetypes")) {
        if (system && strcmp(system, "urn:ietf:bcp:13")) return 0;
        /* FHIR's shorthands for its own formats (the _format parameter; R4 uses
         * them in CapabilityStatement.format and TestScript) */
        if (!strcmp(code, "xml") || !strcmp(code, "json") || !strcmp(code, "ttl")) return 1;
        return mime_ok(code);
    }
    return -1;
}

static int cmp_vs(const void *key, const void *el)
{
    return strcmp((const char *)key, ((const model_valueset *)el)->url);
}

/* The generated extensible value set with this url (no version), or NULL. */
static const model_valueset *extensible_valueset(const char *url)
{
    if (!url) return NULL;
    char u[256];
    const char *bar = strchr(url, '|');
    if (bar) {
        size_t n = (size_t)(bar - url);
        if (n >= sizeof u) return NULL;
        memcpy(u, url, n);
        u[n] = '\0';
        url = u;
    }
    return bsearch(url, validate_extensible_valuesets, validate_extensible_valuesets_count,
                   sizeof validate_extensible_valuesets[0], cmp_vs);
}

/* Result of checking one code against a value set. */
enum { CODE_IN = 0, CODE_OUT, CODE_UNKNOWN_SYSTEM };

static int code_status(const model_valueset *vs, const char *system, const char *code)
{
    if (model_valueset_has(vs, system, code)) return CODE_IN;
    if (system && !system_known(system)) return CODE_UNKNOWN_SYSTEM;
    return CODE_OUT;
}

static void check_binding(vctx *c, const fhir_node *n, const model_binding *b)
{
    if (b->strength != MODEL_BIND_REQUIRED && b->strength != MODEL_BIND_EXTENSIBLE) return;
    int required = b->strength == MODEL_BIND_REQUIRED;
    const model_valueset *vs = b->valueset ? b->valueset : model_valueset_find(b->valueset_url);
    if (!vs && !required) vs = extensible_valueset(b->valueset_url);
    const model_type *t = n->type;
    int is_code = model_is_primitive(t);
    int is_coding = t == g.coding, is_cc = t == g.codeable_concept;
    if (!is_code && !is_coding && !is_cc) return; /* Quantity units: not bound in base R4 */
    if (is_code && !n->value) return;
    if (vs && vs->unavailable && is_code) {
        int gc = grammar_code(vs, NULL, n->value);
        if (gc == 1) return;
        if (gc == 0) {
            issue(c, required ? VALIDATE_ERROR : VALIDATE_WARNING, "code-invalid",
                  "the code '%s' is not in the %s value set %s", n->value,
                  required ? "required" : "extensible", vs->url);
            return;
        }
    }
    if (vs && vs->unavailable && is_coding && kid_value(n, "code")) {
        int gc = grammar_code(vs, kid_value(n, "system"), kid_value(n, "code"));
        if (gc == 1) return;
        if (gc == 0) {
            issue(c, required ? VALIDATE_ERROR : VALIDATE_WARNING, "code-invalid",
                  "the code '%s' is not in the %s value set %s", kid_value(n, "code"),
                  required ? "required" : "extensible", vs->url);
            return;
        }
    }
    if (!vs || vs->unavailable) {
        if (required)
            issue(c, VALIDATE_WARNING, "not-supported",
                  "the code cannot be checked against the required value set %s: %s",
                  b->valueset_url,
                  vs ? vs->unavailable : "its codes are not available to this validator");
        return;
    }
    validate_severity sev = required ? VALIDATE_ERROR : VALIDATE_WARNING;
    const char *strength = required ? "required" : "extensible";
    if (is_code) {
        if (code_status(vs, NULL, n->value) != CODE_IN)
            issue(c, sev, "code-invalid", "the code '%s' is not in the %s value set %s", n->value,
                  strength, vs->url);
        return;
    }
    if (is_coding) {
        const char *code = kid_value(n, "code");
        const char *sys = kid_value(n, "system");
        if (!code) return;
        int st = code_status(vs, sys, code);
        if (st == CODE_UNKNOWN_SYSTEM)
            issue(c, VALIDATE_WARNING, "code-invalid",
                  "the code system %s is not known to this validator, so the code '%s' cannot be "
                  "checked against the %s value set %s",
                  sys, code, strength, vs->url);
        else if (st == CODE_OUT)
            issue(c, sev, "code-invalid", "the code '%s%s%s' is not in the %s value set %s",
                  sys ? sys : "", sys ? "#" : "", code, strength, vs->url);
        return;
    }
    /* CodeableConcept: one coding in the value set is enough */
    int ncodings = 0, unknown = 0;
    const char *unknown_sys = NULL;
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        if (k->type != g.coding) continue;
        const char *code = kid_value(k, "code");
        if (!code) continue;
        ncodings++;
        int st = code_status(vs, kid_value(k, "system"), code);
        if (st == CODE_IN) return;
        if (st == CODE_UNKNOWN_SYSTEM) unknown++, unknown_sys = kid_value(k, "system");
    }
    if (unknown)
        issue(c, VALIDATE_WARNING, "code-invalid",
              "the code system %s is not known to this validator, so the concept cannot be "
              "checked against the %s value set %s",
              unknown_sys, strength, vs->url);
    else if (ncodings)
        issue(c, sev, "code-invalid", "no code of the concept is in the %s value set %s", strength,
              vs->url);
    else if (required)
        issue(c, VALIDATE_ERROR, "code-invalid",
              "the concept has no code, but one from the required value set %s is needed", vs->url);
    else
        issue(c, VALIDATE_INFORMATION, "code-invalid",
              "the concept has no code; the extensible value set %s should be used", vs->url);
}

/* ------------------------------------------------------------------------
 * Invariants
 * ------------------------------------------------------------------------ */

/* 1 when the FHIRPath result counts as true (the reference validator's rule:
 * a single boolean is its value, anything else is true when not empty). */
static int result_true(const fp_collection *out)
{
    if (out->count != 1) return out->count > 0;
    const fp_item *it = fp_collection_item(out, 0);
    char tn[64];
    fp_item_type_name(it, tn, sizeof tn);
    if (strcmp(tn, "System.Boolean") && strcmp(tn, "FHIR.boolean")) return 1;
    tsg_buf b;
    char small[16];
    tsg_buf_init(&b, sizeof small);
    fp_item_write_text(it, &b);
    int t = tsg_buf_rc(&b) == TSG_OK && b.len == 4 && !memcmp(b.data, "true", 4);
    tsg_buf_free(&b);
    return t;
}

/* 1 when n has a descendant along the child names path[0..np) (lengths len). */
static int path_exists(const fhir_node *n, const char *const *path, const unsigned char *len,
                       unsigned np)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        const char *nm = k->elem->name;
        if (nm[0] != path[0][0] || strncmp(nm, path[0], len[0]) || nm[len[0]]) continue;
        if (np == 1 || path_exists(k, path + 1, len + 1, np - 1)) return 1;
    }
    return 0;
}

/* The value of a simple-form expression (validate_internal.h) on node n. */
static int simple_eval(const vinv_simple *sf, const fhir_node *n)
{
    int group_ok = 1;
    for (unsigned i = 0; i < sf->nterms; i++) {
        const vinv_term *t = &sf->terms[i];
        if (i && t->group != sf->terms[i - 1].group) {
            if (group_ok) return 1;
            group_ok = 1;
        }
        if (group_ok && path_exists(n, t->path, t->len, t->npath) != t->exists) group_ok = 0;
    }
    return group_ok;
}

static void eval_constraint(vctx *c, const fhir_node *n, const model_constraint *k)
{
    const vinv *v = &c->inv[k - c->kbase];
    if (v->mode == VINV_NATIVE || v->mode == VINV_BROKEN) return;
    int fast = !(c->flags & VALIDATE_FHIRPATH_ONLY);
    if (fast)
        for (const char *const *gd = v->guards; *gd; gd++)
            if (!kid(n, *gd)) return; /* true by its form (validate_internal.h) */
    if (fast && v->simple) {
        if (!simple_eval(v->simple, n)) {
            int warn = k->severity && !strcmp(k->severity, "warning");
            issue(c, warn ? VALIDATE_WARNING : VALIDATE_ERROR, "invariant", "%s: %s", k->key,
                  k->human);
        }
        return;
    }
    if (v->mode == VINV_UNCOMPILABLE) {
        issue(c, VALIDATE_INFORMATION, "informational",
              "the invariant %s cannot be evaluated (%s): %s", k->key, v->note, k->human);
        return;
    }
    if (!c->scratch || tsg_arena_used(c->scratch) > VALIDATE_SCRATCH_MAX) {
        tsg_arena_free(c->scratch);
        c->scratch = tsg_arena_new(VALIDATE_SCRATCH_MAX + VALIDATE_SCRATCH_CAP);
        if (!c->scratch) {
            c->rc = TSG_ENOMEM;
            return;
        }
    }
    fp_env env;
    memset(&env, 0, sizeof env);
    env.max_steps = VALIDATE_INVARIANT_STEPS;
    fp_collection out;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = fp_eval(v->expr, c->resource, n, &env, c->scratch, &out, &err);
    if (rc == TSG_ENOMEM) {
        /* the scratch arena's cap (or memory): too costly, not a failure */
        tsg_arena_free(c->scratch);
        c->scratch = NULL;
        issue(c, VALIDATE_INFORMATION, "informational",
              "the invariant %s cannot be evaluated (it needs more than the %u MB the validator "
              "gives one evaluation): %s",
              k->key, VALIDATE_SCRATCH_CAP >> 20, k->human);
        return;
    }
    if (rc) {
        issue(c, VALIDATE_INFORMATION, "informational",
              "the invariant %s cannot be evaluated (%s): %s", k->key, err.message, k->human);
        return;
    }
    if (result_true(&out)) return;
    int warn = k->severity && !strcmp(k->severity, "warning");
    issue(c, warn ? VALIDATE_WARNING : VALIDATE_ERROR, "invariant", "%s: %s", k->key, k->human);
}

static int in_list(const model_constraint *const *l, uint16_t n, const model_constraint *k)
{
    for (uint16_t i = 0; i < n; i++)
        if (l[i] == k) return 1;
    return 0;
}

static void check_invariants(vctx *c, const fhir_node *n, const model_typeref *tr)
{
    const model_elem *e = n->elem;
    const model_type *t = n->type;
    if (e)
        for (uint16_t i = 0; i < e->nconstraints; i++) eval_constraint(c, n, e->constraints[i]);
    if (t->kind != MODEL_BACKBONE)
        for (uint16_t i = 0; i < t->nconstraints; i++)
            if (!e || !in_list(e->constraints, e->nconstraints, t->constraints[i]))
                eval_constraint(c, n, t->constraints[i]);
    /* core profiles of the type (Quantity{SimpleQuantity}): their extra rules */
    for (uint16_t p = 0; tr && p < tr->nprofiles; p++) {
        const char *pn = tr->profiles[p];
        const model_type *pt = model_type_find(pn, strlen(pn));
        if (!pt || pt == t) continue;
        for (uint16_t i = 0; i < pt->nconstraints; i++)
            if (!in_list(t->constraints, t->nconstraints, pt->constraints[i]) &&
                (!e || !in_list(e->constraints, e->nconstraints, pt->constraints[i])))
                eval_constraint(c, n, pt->constraints[i]);
    }
}

/* ------------------------------------------------------------------------
 * Core extensions
 * ------------------------------------------------------------------------ */

static int cmp_ext(const void *key, const void *el)
{
    return strcmp((const char *)key, ((const validate_core_extension *)el)->url);
}

/* 1 when the space-separated list has the word w. */
static int word_in(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !memcmp(p, w, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/*
 * An Extension whose url is in the FHIR core namespace must be one of R4's
 * core extensions, and its value must have a type the definition allows (as
 * the reference validator does). Extensions of other namespaces are the
 * profile module's (validate_options.profile_validate): their definitions
 * come from the loaded packages.
 */
static void check_core_extension(vctx *c, const fhir_node *ext)
{
    static const char core[] = "http://hl7.org/fhir/StructureDefinition/";
    const char *url = kid_value(ext, "url");
    if (!url) return;
    const validate_core_extension *d =
        bsearch(url, validate_core_extensions, validate_core_extensions_count,
                sizeof validate_core_extensions[0], cmp_ext);
    if (!d) {
        if (!strncmp(url, core, sizeof core - 1))
            issue(c, VALIDATE_ERROR, "structure",
                  "the extension %s is unknown: it is in the FHIR core namespace but is not an "
                  "R4 core extension",
                  url);
        return;
    }
    const fhir_node *v = kid(ext, "value");
    if (!v) return;
    if (!d->value_types[0])
        issue(c, VALIDATE_ERROR, "structure",
              "the extension %s takes no value[x] (it is made of sub-extensions)", url);
    else if (!word_in(d->value_types, v->type->name))
        issue(c, VALIDATE_ERROR, "structure",
              "the extension %s does not allow a value of type %s (allowed: %s)", url,
              v->type->name, d->value_types);
}

/* ------------------------------------------------------------------------
 * Constraints checked natively (see validate_invariants.c for why)
 * ------------------------------------------------------------------------ */

/* Reports native constraint k as failed (its severity; NULL k: error). */
static void native_fail(vctx *c, const model_constraint *k, const char *key, const char *detail)
{
    int warn = k && k->severity && !strcmp(k->severity, "warning");
    issue(c, warn ? VALIDATE_WARNING : VALIDATE_ERROR, "invariant", "%s: %s%s%s", key,
          k ? k->human : "", detail ? " — " : "", detail ? detail : "");
}

/* 1 when a reference-like value under n (Reference.reference, uri, url,
 * canonical) equals s (len l). */
static int refers_to(const fhir_node *n, const char *s, size_t l)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        if (model_is_primitive(k->type)) {
            if (k->value && k->value_len == l && !memcmp(k->value, s, l) &&
                (g.prim[k->type->id] == PK_URI || name_is(k->elem->name, "reference")))
                return 1;
        } else if (refers_to(k, s, l)) {
            return 1;
        }
    }
    return 0;
}

/* Appends to refs every '#…' value under n that can refer to a contained
 * resource (Reference.reference, uri, url, canonical). */
typedef struct refset {
    const char **v;
    size_t n, cap;
    int nomem;
} refset;

static void collect_refs(const fhir_node *n, refset *rs)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        if (!model_is_primitive(k->type)) {
            collect_refs(k, rs);
            continue;
        }
        if (!k->value || k->value[0] != '#' ||
            !(g.prim[k->type->id] == PK_URI || name_is(k->elem->name, "reference")))
            continue;
        if (rs->n == rs->cap) {
            size_t nc = rs->cap ? rs->cap * 2 : 16;
            const char **nv = realloc(rs->v, nc * sizeof *nv);
            if (!nv) {
                rs->nomem = 1;
                return;
            }
            rs->v = nv;
            rs->cap = nc;
        }
        rs->v[rs->n++] = k->value + 1;
    }
}

/* dom-3: each contained resource is referenced from the resource (or refers to
 * the container with '#'). */
static void check_dom3(vctx *c, const fhir_node *r)
{
    if (c->container != r || !c->ncidx) return;
    refset rs = {0};
    collect_refs(r, &rs);
    if (rs.nomem) {
        free(rs.v);
        c->rc = TSG_ENOMEM;
        return;
    }
    if (rs.n) qsort(rs.v, rs.n, sizeof *rs.v, cmp_str);
    for (size_t i = 0; i < c->ncidx; i++) {
        const char *id = c->cidx[i].id;
        const fhir_node *k = c->cidx[i].node;
        if (rs.n && bsearch(&id, rs.v, rs.n, sizeof *rs.v, cmp_str)) continue;
        if (refers_to(k, "#", 1)) continue;
        size_t mark = path_push(c, k);
        native_fail(c, g.dom3, "dom-3", "nothing refers to it");
        path_pop(c, mark);
    }
    free(rs.v);
}

/* csd-1: the codes of a CodeSystem (at every level of concept) are unique. */
static int csd1_collect(const fhir_node *n, const char **codes, size_t *nc, size_t cap)
{
    for (uint32_t i = 0; i < n->nkids; i++) {
        const fhir_node *k = &n->kids[i];
        if (!name_is(k->elem->name, "concept")) continue;
        const char *code = kid_value(k, "code");
        if (code) {
            if (*nc == cap) return -1;
            codes[(*nc)++] = code;
        }
        if (csd1_collect(k, codes, nc, cap) < 0) return -1;
    }
    return 0;
}

static void check_csd1(vctx *c, const fhir_node *cs)
{
    size_t cap = 1u << 16, nc = 0;
    const char **codes = malloc(cap * sizeof *codes);
    if (!codes) {
        c->rc = TSG_ENOMEM;
        return;
    }
    if (csd1_collect(cs, codes, &nc, cap) < 0) {
        issue(c, VALIDATE_INFORMATION, "informational",
              "csd-1 not checked: the CodeSystem has more than %zu concepts", cap);
    } else {
        qsort(codes, nc, sizeof *codes, cmp_str);
        for (size_t i = 1; i < nc; i++)
            if (!strcmp(codes[i - 1], codes[i])) {
                char d[200];
                snprintf(d, sizeof d, "the code '%.120s' occurs more than once", codes[i]);
                native_fail(c, g.csd1, "csd-1", d);
                break;
            }
    }
    free(codes);
}

/* eld-16 (sliceName tokens) and eld-19 (path syntax) of an ElementDefinition. */
static int eld_path_char(unsigned char ch)
{
    return ch > ' ' && !strchr(".,:;'\"/|?!@#$%&*()[]{}", ch);
}

static int eld19_ok(const char *p)
{
    int first = 1;
    for (;;) {
        size_t n = 0;
        while (eld_path_char((unsigned char)p[n])) n++;
        if (n < 1 || n > 64) return 0;
        p += n;
        if (!first) {
            if (!strncmp(p, "[x]", 3)) p += 3;
            if (*p == ':') {
                p++;
                size_t m = 0;
                while (p[m] && p[m] != '.' && (unsigned char)p[m] > ' ') m++;
                if (!m) return 0;
                p += m;
            }
        }
        if (!*p) return 1;
        if (*p != '.') return 0;
        p++;
        first = 0;
    }
}

static void check_eld(vctx *c, const fhir_node *ed)
{
    const char *slice = kid_value(ed, "sliceName");
    if (slice) {
        for (const char *p = slice; *p; p++) {
            char ch = *p;
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("/-_[]@", ch))) {
                native_fail(c, g.eld16, "eld-16", NULL);
                break;
            }
        }
    }
    const char *path = kid_value(ed, "path");
    if (path && !eld19_ok(path)) native_fail(c, g.eld19, "eld-19", NULL);
}

/* ------------------------------------------------------------------------
 * Resources: contained, Bundle
 * ------------------------------------------------------------------------ */

static void check_contained(vctx *c, const fhir_node *r)
{
    for (uint32_t i = 0; i < r->nkids; i++) {
        const fhir_node *k = &r->kids[i];
        if (!name_is(k->elem->name, "contained") || kid(k, "id")) continue;
        size_t mark = path_push(c, k);
        issue(c, VALIDATE_ERROR, "required",
              "a contained resource must have an id (references to it are '#id')");
        path_pop(c, mark);
    }
    if (c->container != r) return; /* a contained resource: its container's index */
    for (size_t i = 1; i < c->ncidx; i++) {
        if (strcmp(c->cidx[i - 1].id, c->cidx[i].id)) continue;
        size_t mark = path_push(c, c->cidx[i].node);
        issue(c, VALIDATE_ERROR, "duplicate",
              "the contained resources %u and %u have the same id '%s'", c->cidx[i - 1].node->pos,
              c->cidx[i].node->pos, c->cidx[i].id);
        path_pop(c, mark);
    }
}

/* Bundle.entry: a RESTful fullUrl (…/Type/id) agrees with the resource. */
static void check_bundle(vctx *c, const fhir_node *b)
{
    for (uint32_t i = 0; i < b->nkids; i++) {
        const fhir_node *entry = &b->kids[i];
        if (!name_is(entry->elem->name, "entry")) continue;
        const char *full = kid_value(entry, "fullUrl");
        const fhir_node *res = kid(entry, "resource");
        if (!full || !res) continue;
        if (!strncmp(full, "urn:", 4)) continue;
        const char *id = kid_value(res, "id");
        size_t fl = strlen(full);
        /* find the last "/Type/id" (optionally followed by /_history/v) */
        const char *end = full + fl;
        const char *hist = strstr(full, "/_history/");
        if (hist) end = hist;
        const char *p = end;
        int slashes = 0;
        const char *s1 = NULL;
        while (p > full && slashes < 2) {
            p--;
            if (*p == '/') {
                slashes++;
                if (slashes == 2) s1 = p;
            }
        }
        if (!s1) continue;
        int ok = 0;
        const char *fid;
        size_t fidl;
        const model_type *t = rest_ref(s1 + 1, (size_t)(end - s1 - 1), &ok, &fid, &fidl);
        if (!t || !ok) continue; /* not a RESTful URL: nothing to compare */
        size_t mark = path_push(c, entry);
        if (t != res->type) {
            issue(c, VALIDATE_ERROR, "invalid",
                  "the fullUrl '%s' names a %s but the entry's resource is a %s", full, t->name,
                  res->type->name);
        } else if (!id) {
            issue(c, VALIDATE_WARNING, "invalid",
                  "the fullUrl '%s' names an id but the entry's resource has none", full);
        } else if (strlen(id) != fidl || memcmp(id, fid, fidl)) {
            issue(c, VALIDATE_ERROR, "invalid",
                  "the fullUrl '%s' does not match the resource id '%s' (it must end with "
                  "/%s/%s)",
                  full, id, t->name, id);
        }
        path_pop(c, mark);
    }
}

/* ------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------ */

/* The typeref of element e that a node of type t uses, or NULL. */
static const model_typeref *typeref_of(const model_elem *e, const model_type *t)
{
    for (uint16_t i = 0; i < e->ntypes; i++)
        if (e->types[i].type == t) return &e->types[i];
    for (uint16_t i = 0; i < e->ntypes; i++)
        if (model_type_is(t, e->types[i].type)) return &e->types[i];
    return NULL;
}

static void walk(vctx *c, const fhir_node *n, const model_typeref *tr, unsigned depth);

/* Cardinality of every element of n's type, and the walk into its children. */
static void walk_children(vctx *c, const fhir_node *n, unsigned depth)
{
    const model_type *t = n->type;
    uint32_t k = 0;
    for (uint16_t ei = 0; ei < t->nelems; ei++) {
        const model_elem *e = &t->elems[ei];
        uint32_t start = k;
        while (k < n->nkids && n->kids[k].elem == e) k++;
        uint32_t count = k - start;
        if (count < e->min)
            issue(c, VALIDATE_ERROR, "required", "%s: minimum required = %u, but only found %u",
                  e->path, e->min, count);
        if (e->max != MODEL_MANY && count > e->max)
            issue(c, VALIDATE_ERROR, "structure", "%s: max allowed = %u, but found %u", e->path,
                  e->max, count);
        for (uint32_t i = start; i < k && c->rc == TSG_OK; i++) {
            const fhir_node *kn = &n->kids[i];
            size_t mark = path_push(c, kn);
            const model_typeref *ktr = typeref_of(e, kn->type);
            if (!ktr && !(kn->type->kind == MODEL_RESOURCE && e->ntypes == 1 &&
                          e->types[0].type == g.resource))
                issue(c, VALIDATE_ERROR, "structure", "the type %s is not allowed for %s",
                      kn->type->name, e->path);
            walk(c, kn, ktr, depth + 1);
            path_pop(c, mark);
        }
    }
    if (k < n->nkids) {
        const fhir_node *kn = &n->kids[k];
        size_t mark = path_push(c, kn);
        issue(c, VALIDATE_ERROR, "structure",
              "the element %s is not an element of %s or is out of order", kn->elem->path, t->name);
        path_pop(c, mark);
    }
}

static void walk(vctx *c, const fhir_node *n, const model_typeref *tr, unsigned depth)
{
    const model_type *t = n->type;
    if (depth > TSG_LIMIT_DEPTH * 2) {
        issue(c, VALIDATE_ERROR, "too-costly", "the resource nests deeper than %u elements",
              TSG_LIMIT_DEPTH * 2);
        return;
    }
    int is_res = t->kind == MODEL_RESOURCE;
    const fhir_node *saved_res = c->resource, *saved_cont = c->container;
    cidx *own = NULL;
    const cidx *saved_cidx = c->cidx;
    size_t saved_ncidx = c->ncidx;
    if (is_res) {
        c->resource = n;
        /* '#id' inside a contained resource resolves in its container */
        if (!n->elem || !name_is(n->elem->name, "contained")) {
            c->container = n; /* nested contained resources: dom-2 on the container */
            size_t nown = 0;
            if (cidx_build(n, &own, &nown) != TSG_OK) {
                c->rc = TSG_ENOMEM;
                c->resource = saved_res;
                c->container = saved_cont;
                return;
            }
            c->cidx = own;
            c->ncidx = nown;
        }
        check_contained(c, n);
        if (!(c->flags & VALIDATE_NO_INVARIANTS)) {
            check_dom3(c, n);
            if (t == g.code_system) check_csd1(c, n);
        }
        if (t == g.bundle) check_bundle(c, n);
    }
    if (model_is_primitive(t)) {
        check_primitive(c, n);
        if (n->elem && !n->value && n->nkids == 0)
            issue(c, VALIDATE_ERROR, "invariant",
                  "ele-1: all FHIR elements must have a @value or children");
    } else if (n->elem && !is_res) {
        /* children besides Element.id: id is the first element and occurs once */
        uint32_t real = n->nkids - (n->nkids && n->kids[0].elem->index == 0);
        if (!real)
            issue(c, VALIDATE_ERROR, "invariant",
                  "ele-1: all FHIR elements must have a @value or children");
    }
    walk_children(c, n, depth);
    if (t == g.extension) {
        int has_value = 0, has_ext = 0;
        for (uint32_t i = 0; i < n->nkids; i++) {
            const char *nm = n->kids[i].elem->name;
            if (!strcmp(nm, "value"))
                has_value = 1;
            else if (!strcmp(nm, "extension"))
                has_ext = 1;
        }
        if (has_value == has_ext)
            issue(c, VALIDATE_ERROR, "invariant",
                  "ext-1: an extension must have either extensions or value[x], not both");
        check_core_extension(c, n);
    } else if (t == g.reference) {
        check_reference(c, n, tr);
    } else if (t == g.element_definition && !(c->flags & VALIDATE_NO_INVARIANTS)) {
        check_eld(c, n);
    }
    if (n->elem && n->elem->binding && !(c->flags & VALIDATE_NO_TERMINOLOGY))
        check_binding(c, n, n->elem->binding);
    if (!(c->flags & VALIDATE_NO_INVARIANTS)) check_invariants(c, n, tr);
    c->resource = saved_res;
    c->container = saved_cont;
    c->cidx = saved_cidx;
    c->ncidx = saved_ncidx;
    free(own);
}

/* ------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------ */

/* Validates against one profile through the hook; reports a missing one. */
static void apply_profile(vctx *c, const fhir_node *root, const validate_options *opt,
                          const char *url, int requested)
{
    tsg_rc rc = TSG_ENOTSUP;
    if (opt->profile_validate)
        rc = opt->profile_validate(opt->profile_ctx, root, url, c->report, c->rctx);
    if (rc == TSG_OK) return;
    if (rc == TSG_ENOTSUP) {
        if (requested)
            issue(c, VALIDATE_ERROR, "not-supported",
                  "the profile %s is not loaded, so the resource cannot be validated against it",
                  url);
        else
            issue(c, VALIDATE_WARNING, "not-supported",
                  "the profile %s in meta.profile is not loaded, so it has not been checked", url);
    } else if (rc == TSG_ENOMEM) {
        c->rc = TSG_ENOMEM;
    } else {
        issue(c, VALIDATE_ERROR, "exception", "validating against the profile %s failed: %s", url,
              tsg_rc_name(rc));
    }
}

tsg_rc validate_resource_fn(const fhir_node *root, const validate_options *opt,
                            validate_issue_fn report, void *report_ctx)
{
    pthread_once(&g_once, g_build);
    static const validate_options none;
    if (!opt) opt = &none;
    vctx c;
    memset(&c, 0, sizeof c);
    c.report = report;
    c.rctx = report_ctx;
    c.flags = opt->flags;
    c.inv = validate_invariant_table();
    c.kbase = model_r4()->constraints;
    c.path = malloc(VALIDATE_PATH_MAX);
    if (!c.path) return TSG_ENOMEM;
    size_t tl = strlen(root->type->name);
    if (tl >= VALIDATE_PATH_MAX) tl = VALIDATE_PATH_MAX - 1;
    memcpy(c.path, root->type->name, tl);
    c.path[tl] = '\0';
    c.plen = tl;
    if (!model_is_resource(root->type) || (root->type->flags & MODEL_TYPE_ABSTRACT))
        issue(&c, VALIDATE_FATAL, "structure", "the input is not a resource (%s)",
              root->type->name);
    else
        walk(&c, root, NULL, 0);
    for (size_t i = 0; i < opt->nprofiles && c.rc == TSG_OK; i++)
        apply_profile(&c, root, opt, opt->profiles[i], 1);
    if (opt->meta_profiles && c.rc == TSG_OK) {
        const fhir_node *meta = kid(root, "meta");
        for (uint32_t i = 0; meta && i < meta->nkids; i++) {
            const fhir_node *p = &meta->kids[i];
            if (!name_is(p->elem->name, "profile") || !p->value) continue;
            int dup = 0;
            for (size_t j = 0; j < opt->nprofiles; j++)
                if (!strcmp(opt->profiles[j], p->value)) dup = 1;
            if (!dup) apply_profile(&c, root, opt, p->value, 0);
        }
    }
    tsg_arena_free(c.scratch);
    free(c.path);
    return c.rc;
}

tsg_rc validate_resource(const fhir_node *root, const validate_options *opt, validate_result *r)
{
    return validate_resource_fn(root, opt, validate_result_add, r);
}

tsg_rc validate_text(tsg_arena *a, const char *text, size_t len, const validate_options *opt,
                     validate_result *r, fhir_node **root)
{
    if (root) *root = NULL;
    size_t i = 0;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) i = 3;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    if (i >= len || (text[i] != '<' && text[i] != '{')) {
        validate_result_add_at(r, VALIDATE_FATAL, "structure", "",
                               "the input is neither FHIR JSON nor FHIR XML (expected '{' or '<')",
                               0, 0);
        return TSG_OK;
    }
    fhir_node *n = NULL;
    tsg_error err;
    tsg_error_clear(&err);
    tsg_rc rc = text[i] == '<' ? fhir_xml_parse(a, text, len, NULL, &n, &err)
                               : fhir_json_parse(a, text, len, NULL, &n, &err);
    if (rc == TSG_ENOMEM) return rc;
    if (rc) {
        char msg[TSG_ERR_MESSAGE_MAX + 64];
        if (err.line)
            snprintf(msg, sizeof msg, "%s (line %u, column %u)",
                     err.message[0] ? err.message : tsg_rc_name(rc), err.line, err.column);
        else
            snprintf(msg, sizeof msg, "%s", err.message[0] ? err.message : tsg_rc_name(rc));
        validate_result_add_at(r, VALIDATE_FATAL, err.code ? err.code : tsg_rc_code(rc),
                               err.location, msg, err.line, err.column);
        return TSG_OK;
    }
    if (root) *root = n;
    return validate_resource(n, opt, r);
}

tsg_rc validate_for_rest(const fhir_node *root, validate_level level, const validate_options *opt,
                         tsg_arena *a, tsg_buf *outcome, int *rejected, const char **first_error)
{
    validate_result r;
    validate_result_init(&r, a);
    *rejected = 0;
    if (first_error) *first_error = NULL;
    if (level == VALIDATE_LEVEL_OFF) return TSG_OK;
    validate_options o;
    if (opt)
        o = *opt;
    else
        memset(&o, 0, sizeof o);
    if (level == VALIDATE_LEVEL_BASE) {
        o.nprofiles = 0;
        o.meta_profiles = 0;
    } else {
        o.meta_profiles = 1;
    }
    tsg_rc rc = validate_resource(root, &o, &r);
    if (rc) return rc;
    *rejected = validate_result_failed(&r);
    for (size_t i = 0; first_error && *rejected && i < r.count; i++) {
        const validate_issue *is = &r.items[i];
        if (is->severity > VALIDATE_ERROR) continue;
        size_t len = strlen(is->expression) + strlen(is->message) + 3;
        char *m = tsg_arena_alloc(a, len);
        if (!m) return TSG_ENOMEM;
        snprintf(m, len, "%s%s%s", is->expression, *is->expression ? ": " : "", is->message);
        *first_error = m;
        break;
    }
    if (outcome) return validate_outcome_json(&r, outcome, 0);
    return TSG_OK;
}

/*
 * fp_parse.c — the FHIRPath lexer and parser: source text to the tree of
 * fp_ast.h, with error positions. See fhirpath.h for what is accepted.
 *
 * The lexer hands out one token at a time (the parser needs one token of
 * look-ahead, never more); string escapes are decoded as the token is read.
 * The parser is precedence climbing over the spec's operator table:
 *
 *   1 implies (right)   2 or xor   3 and   4 in contains   5 = ~ != !~
 *   6 < > <= >=   7 |   8 is as (right side: a type name)   9 + - &
 *   10 * / div mod   then unary + -, then postfix . [] on a term.
 *
 * Bounds: the source is at most FP_LIMIT_EXPR_BYTES; every recursive descent
 * (parenthesis, argument, operator operand, unary sign) counts against
 * FP_LIMIT_DEPTH, and so does the height of every node built, so neither the
 * parser nor any later walker of the tree can exhaust the C stack. Work is
 * linear in the input: each byte is lexed once.
 *
 * Errors: the first one wins (fail() ignores later ones); a function that
 * fails returns NULL and the caller unwinds.
 */
#include "fhirpath.h"
#include "fp_ast.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The arena of one compiled expression; far above what FP_LIMIT_EXPR_BYTES of
 * source can need (about 100 bytes per token), so reaching it is ENOMEM. */
#define FP_ARENA_CAP (32u * 1024u * 1024u)

/* ------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------ */

typedef enum tok_kind {
    T_EOF,
    T_INTEGER,
    T_DECIMAL,
    T_STRING,
    T_DATE,
    T_DATETIME,
    T_TIME,
    T_WORD,      /* identifier or keyword: kw says which */
    T_DELIMITED, /* `name` */
    T_THIS,
    T_INDEX,
    T_TOTAL,
    T_PERCENT,
    T_DOT,
    T_COMMA,
    T_LPAREN,
    T_RPAREN,
    T_LBRACKET,
    T_RBRACKET,
    T_LBRACE,
    T_RBRACE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_AMP,
    T_PIPE,
    T_EQ,
    T_TILDE,
    T_NE,
    T_NTILDE,
    T_LT,
    T_GT,
    T_LE,
    T_GE
} tok_kind;

typedef enum keyword {
    KW_NONE,
    KW_TRUE,
    KW_FALSE,
    KW_AND,
    KW_OR,
    KW_XOR,
    KW_IMPLIES,
    KW_DIV,
    KW_MOD,
    KW_IN,
    KW_CONTAINS,
    KW_IS,
    KW_AS,
    KW_UNIT /* year(s) … millisecond(s) */
} keyword;

typedef struct token {
    tok_kind kind;
    keyword kw;
    uint32_t pos, end; /* byte range in the source */
    fp_str text;       /* T_STRING, T_DELIMITED: the unescaped text */
    bool zone;         /* T_TIME with a zone offset */
} token;

typedef struct parser {
    const char *src; /* the expression's own copy */
    uint32_t n;
    uint32_t i; /* lexer position */
    token cur;
    uint32_t prev_pos, prev_end; /* the token consumed last */
    tsg_arena *a;
    tsg_error *err;
    tsg_rc rc;
    unsigned depth;
} parser;

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */

static unsigned column_of(const char *s, uint32_t pos)
{
    unsigned col = 1;
    for (uint32_t k = 0; k < pos; k++)
        if (((unsigned char)s[k] & 0xC0) != 0x80) col++;
    return col;
}

/* Records the first error: rc, the message, and the column of byte pos. */
static void fail(parser *p, tsg_rc rc, uint32_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(parser *p, tsg_rc rc, uint32_t pos, const char *fmt, ...)
{
    if (p->rc != TSG_OK) return;
    p->rc = rc;
    if (!p->err) return;
    char msg[TSG_ERR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tsg_error_set(p->err, rc, NULL, "%s", msg);
    p->err->line = 0;
    p->err->column = column_of(p->src, pos);
}

static void fail_nomem(parser *p)
{
    fail(p, TSG_ENOMEM, p->cur.pos, "out of memory while compiling the expression");
}

/* Copies at most about 32 bytes of s into buf (whole UTF-8 characters),
 * with "…" when cut. Returns buf. */
static const char *snip(const char *s, size_t len, char *buf, size_t n)
{
    size_t max = n - 4 < 32 ? n - 4 : 32;
    size_t k = len;
    bool cut = false;
    if (k > max) {
        k = max;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        cut = true;
    }
    memcpy(buf, s, k);
    if (cut) {
        memcpy(buf + k, "\xE2\x80\xA6", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

/* "end of expression", "'foo'", "'+'" … for messages. */
static const char *describe(const parser *p, const token *t, char *buf, size_t n)
{
    if (t->kind == T_EOF) return "end of expression";
    char in[48];
    snip(p->src + t->pos, t->end - t->pos, in, sizeof in);
    if (t->kind == T_STRING)
        snprintf(buf, n, "the string %s", in);
    else
        snprintf(buf, n, "'%s'", in);
    return buf;
}

/* One character at s (valid UTF-8) for a message: "'é'" or "U+0001". */
static const char *describe_char(const char *s, size_t avail, char *buf, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    if (c < 0x20 || c == 0x7F) {
        snprintf(buf, n, "U+%04X", c);
        return buf;
    }
    size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (k > avail) k = avail;
    snprintf(buf, n, "'%.*s'", (int)k, s);
    return buf;
}

/* ------------------------------------------------------------------------
 * Lexer
 * ------------------------------------------------------------------------ */

static inline int at(const parser *p, uint32_t j)
{
    return j < p->n ? (unsigned char)p->src[j] : -1;
}

static inline bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_word_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool is_word_char(int c)
{
    return is_word_start(c) || is_digit(c);
}

static bool digits_at(const parser *p, uint32_t j, unsigned count)
{
    for (unsigned k = 0; k < count; k++)
        if (!is_digit(at(p, j + k))) return false;
    return true;
}

static const struct {
    const char *word;
    uint8_t len;
    keyword kw;
} keywords[] = {
    {"true", 4, KW_TRUE},
    {"false", 5, KW_FALSE},
    {"and", 3, KW_AND},
    {"or", 2, KW_OR},
    {"xor", 3, KW_XOR},
    {"implies", 7, KW_IMPLIES},
    {"div", 3, KW_DIV},
    {"mod", 3, KW_MOD},
    {"in", 2, KW_IN},
    {"contains", 8, KW_CONTAINS},
    {"is", 2, KW_IS},
    {"as", 2, KW_AS},
    {"year", 4, KW_UNIT},
    {"years", 5, KW_UNIT},
    {"month", 5, KW_UNIT},
    {"months", 6, KW_UNIT},
    {"week", 4, KW_UNIT},
    {"weeks", 5, KW_UNIT},
    {"day", 3, KW_UNIT},
    {"days", 4, KW_UNIT},
    {"hour", 4, KW_UNIT},
    {"hours", 5, KW_UNIT},
    {"minute", 6, KW_UNIT},
    {"minutes", 7, KW_UNIT},
    {"second", 6, KW_UNIT},
    {"seconds", 7, KW_UNIT},
    {"millisecond", 11, KW_UNIT},
    {"milliseconds", 12, KW_UNIT},
};

static keyword classify(const char *s, uint32_t len)
{
    if (len < 2 || len > 12 || s[0] < 'a' || s[0] > 'y') return KW_NONE;
    for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
        if (keywords[k].len == len && memcmp(keywords[k].word, s, len) == 0) return keywords[k].kw;
    return KW_NONE;
}

/* Skips whitespace and comments; false (with the error recorded) on an
 * unterminated block comment. */
static bool skip_blank(parser *p)
{
    for (;;) {
        int c = at(p, p->i);
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            p->i++;
        } else if (c == '/' && at(p, p->i + 1) == '/') {
            while (p->i < p->n && p->src[p->i] != '\n') p->i++;
        } else if (c == '/' && at(p, p->i + 1) == '*') {
            uint32_t start = p->i;
            p->i += 2;
            for (;;) {
                if (p->i + 1 >= p->n) {
                    fail(p, TSG_EINVAL, start, "unterminated comment: '/*' without '*/'");
                    p->i = p->n;
                    return false;
                }
                if (p->src[p->i] == '*' && p->src[p->i + 1] == '/') break;
                p->i++;
            }
            p->i += 2;
        } else {
            return true;
        }
    }
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads \uXXXX at j (the backslash); -1 when the four hex digits are missing. */
static long read_u4(const parser *p, uint32_t j)
{
    if (at(p, j) != '\\' || at(p, j + 1) != 'u') return -1;
    long v = 0;
    for (unsigned k = 0; k < 4; k++) {
        int h = hex_value(at(p, j + 2 + k));
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* A string 'text' or a delimited identifier `text`, at p->i; decodes the
 * escapes into t->text. */
static void lex_quoted(parser *p, token *t, int quote)
{
    const char *what = quote == '\'' ? "string" : "delimited identifier";
    uint32_t open = p->i;
    uint32_t j = open + 1;
    for (;;) { /* find the closing quote first: it bounds the output */
        int c = at(p, j);
        if (c < 0) {
            fail(p, TSG_EINVAL, open, "unterminated %s: no closing %c", what, quote);
            return;
        }
        if (c == quote) break;
        j += c == '\\' ? 2 : 1;
    }
    uint32_t close = j;
    char *out = tsg_arena_alloc(p->a, close - open); /* decoded text never grows */
    if (!out) {
        fail_nomem(p);
        return;
    }
    uint32_t len = 0;
    for (j = open + 1; j < close;) {
        char c = p->src[j];
        if (c != '\\') {
            out[len++] = c;
            j++;
            continue;
        }
        int e = at(p, j + 1);
        switch (e) {
        case '\'':
        case '"':
        case '`':
        case '\\':
        case '/':
            out[len++] = (char)e;
            j += 2;
            continue;
        case 'f':
            out[len++] = '\f';
            j += 2;
            continue;
        case 'n':
            out[len++] = '\n';
            j += 2;
            continue;
        case 'r':
            out[len++] = '\r';
            j += 2;
            continue;
        case 't':
            out[len++] = '\t';
            j += 2;
            continue;
        case 'u': {
            long cp = read_u4(p, j);
            if (cp < 0) {
                fail(p, TSG_EINVAL, j, "the escape \\u needs four hexadecimal digits");
                return;
            }
            uint32_t used = 6;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = read_u4(p, j + 6);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail(p, TSG_EINVAL, j, "the escape \\u%04lX is half of a surrogate pair", cp);
                    return;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                used = 12;
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail(p, TSG_EINVAL, j, "the escape \\u%04lX is half of a surrogate pair", cp);
                return;
            }
            len += (uint32_t)tsg_utf8_encode((uint32_t)cp, out + len);
            j += used;
            continue;
        }
        default: {
            char ch[16];
            describe_char(p->src + j + 1, close - (j + 1), ch, sizeof ch);
            if (ch[0] == '\'') { /* "'q'" -> "\q" reads better */
                fail(p, TSG_EINVAL, j, "unknown escape \\%.*s in a %s", (int)strlen(ch) - 2, ch + 1,
                     what);
            } else {
                fail(p, TSG_EINVAL, j, "unknown escape \\ followed by %s in a %s", ch, what);
            }
            return;
        }
        }
    }
    out[len] = '\0';
    if (quote == '`' && len == 0) {
        fail(p, TSG_EINVAL, open, "empty delimited identifier ``");
        return;
    }
    t->kind = quote == '\'' ? T_STRING : T_DELIMITED;
    t->text.s = out;
    t->text.len = len;
    p->i = close + 1;
}

/* hh[:mm[:ss[.fff]]] at j (two digits known to be there); returns the end. */
static uint32_t lex_clock(const parser *p, uint32_t j)
{
    j += 2;
    if (at(p, j) == ':' && digits_at(p, j + 1, 2)) {
        j += 3;
        if (at(p, j) == ':' && digits_at(p, j + 1, 2)) {
            j += 3;
            if (at(p, j) == '.' && is_digit(at(p, j + 1))) {
                j++;
                while (is_digit(at(p, j))) j++;
            }
        }
    }
    return j;
}

/* Z or +hh:mm / -hh:mm at j; returns the end (j when there is none). */
static uint32_t lex_zone(const parser *p, uint32_t j)
{
    int c = at(p, j);
    if (c == 'Z') return j + 1;
    if ((c == '+' || c == '-') && digits_at(p, j + 1, 2) && at(p, j + 3) == ':' &&
        digits_at(p, j + 4, 2))
        return j + 6;
    return j;
}

static unsigned num2(const char *s)
{
    return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

static bool valid_clock(const char *s, size_t len)
{
    if (num2(s) > 23) return false;
    if (len >= 5 && num2(s + 3) > 59) return false;
    if (len >= 8 && num2(s + 6) > 59) return false;
    return true;
}

static bool valid_zone(const char *s, size_t len)
{
    if (len == 1) return true; /* Z */
    unsigned h = num2(s + 1), m = num2(s + 4);
    return m <= 59 && (h < 14 || (h == 14 && m == 0));
}

static bool valid_date(const char *s, size_t len)
{
    unsigned year = num2(s) * 100 + num2(s + 2);
    if (year == 0) return false;
    if (len < 7) return true;
    unsigned month = num2(s + 5);
    if (month < 1 || month > 12) return false;
    if (len < 10) return true;
    static const unsigned char mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned day = num2(s + 8);
    unsigned max = mdays[month - 1];
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) max = 29;
    return day >= 1 && day <= max;
}

/* A date, date-time or time at p->i (the '@'). The shapes are those of the
 * grammar: optional parts are taken only when complete, so `@2014-1` is the
 * date @2014 followed by `-1`, as in the reference parser. */
static void lex_temporal(parser *p, token *t)
{
    uint32_t start = p->i, j = start + 1;
    uint32_t clock = 0, zone = 0; /* where the time of day and the zone start */
    const char *what;
    if (at(p, j) == 'T') {
        if (!digits_at(p, j + 1, 2)) {
            fail(p, TSG_EINVAL, start, "expected a time after '@T' (hh, hh:mm or hh:mm:ss)");
            return;
        }
        clock = j + 1;
        j = lex_clock(p, clock);
        zone = j;
        j = lex_zone(p, j);
        t->kind = T_TIME;
        t->zone = j > zone;
        what = "time";
    } else if (digits_at(p, j, 4)) {
        j += 4;
        if (at(p, j) == '-' && digits_at(p, j + 1, 2)) {
            j += 3;
            if (at(p, j) == '-' && digits_at(p, j + 1, 2)) j += 3;
        }
        t->kind = T_DATE;
        what = "date";
        if (at(p, j) == 'T') {
            j++;
            t->kind = T_DATETIME;
            what = "date-time";
            if (digits_at(p, j, 2)) {
                clock = j;
                j = lex_clock(p, j);
                zone = j;
                j = lex_zone(p, j);
            }
        }
    } else {
        fail(p, TSG_EINVAL, start, "expected a date or a time after '@' (@2014-01-25, @T14:30)");
        return;
    }
    const char *s = p->src;
    uint32_t date_end = clock ? clock - 1 : (t->kind == T_DATETIME ? j - 1 : j);
    bool ok = true;
    if (t->kind != T_TIME) ok = valid_date(s + start + 1, date_end - (start + 1));
    if (ok && clock) ok = valid_clock(s + clock, zone - clock);
    if (ok && clock && j > zone) ok = valid_zone(s + zone, j - zone);
    if (!ok) {
        char in[48];
        fail(p, TSG_EINVAL, start, "'%s' is not a valid %s",
             snip(s + start, j - start, in, sizeof in), what);
        return;
    }
    p->i = j;
}

/* Reads the next token into p->cur. On a lexical error the error is recorded
 * and the token is T_EOF, so the parser winds down. */
static void lex(parser *p)
{
    token *t = &p->cur;
    t->kw = KW_NONE;
    t->text.s = NULL;
    t->text.len = 0;
    t->zone = false;
    t->kind = T_EOF;
    if (p->rc != TSG_OK || !skip_blank(p)) {
        t->pos = t->end = p->i;
        return;
    }
    uint32_t start = p->i;
    t->pos = start;
    int c = at(p, start);
    int c1 = at(p, start + 1);
    if (c < 0) {
        t->end = start;
        return;
    }
    tok_kind k = T_EOF;
    uint32_t len = 1;
    switch (c) {
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9': {
        uint32_t j = start;
        while (is_digit(at(p, j))) j++;
        k = T_INTEGER;
        if (at(p, j) == '.' && is_digit(at(p, j + 1))) {
            j++;
            while (is_digit(at(p, j))) j++;
            k = T_DECIMAL;
        }
        len = j - start;
        break;
    }
    case '\'':
    case '`':
        lex_quoted(p, t, c);
        if (p->rc != TSG_OK) t->kind = T_EOF;
        t->end = p->i;
        return;
    case '@':
        lex_temporal(p, t);
        if (p->rc != TSG_OK) t->kind = T_EOF;
        t->end = p->i;
        return;
    case '$': {
        uint32_t j = start + 1;
        while (is_word_char(at(p, j))) j++;
        len = j - start;
        const char *w = p->src + start + 1;
        if (len == 5 && memcmp(w, "this", 4) == 0)
            k = T_THIS;
        else if (len == 6 && memcmp(w, "index", 5) == 0)
            k = T_INDEX;
        else if (len == 6 && memcmp(w, "total", 5) == 0)
            k = T_TOTAL;
        else {
            char in[48];
            fail(p, TSG_EINVAL, start,
                 "unknown variable '%s' (the variables are $this, $index and $total)",
                 snip(p->src + start, len, in, sizeof in));
            t->end = start;
            return;
        }
        break;
    }
    case '%':
        k = T_PERCENT;
        break;
    case '.':
        k = T_DOT;
        break;
    case ',':
        k = T_COMMA;
        break;
    case '(':
        k = T_LPAREN;
        break;
    case ')':
        k = T_RPAREN;
        break;
    case '[':
        k = T_LBRACKET;
        break;
    case ']':
        k = T_RBRACKET;
        break;
    case '{':
        k = T_LBRACE;
        break;
    case '}':
        k = T_RBRACE;
        break;
    case '+':
        k = T_PLUS;
        break;
    case '-':
        k = T_MINUS;
        break;
    case '*':
        k = T_STAR;
        break;
    case '/':
        k = T_SLASH;
        break;
    case '&':
        k = T_AMP;
        break;
    case '|':
        k = T_PIPE;
        break;
    case '=':
        k = T_EQ;
        break;
    case '~':
        k = T_TILDE;
        break;
    case '!':
        if (c1 == '=')
            k = T_NE;
        else if (c1 == '~')
            k = T_NTILDE;
        else {
            fail(p, TSG_EINVAL, start, "unexpected '!' (the operators are '!=' and '!~')");
            t->end = start;
            return;
        }
        len = 2;
        break;
    case '<':
        k = c1 == '=' ? T_LE : T_LT;
        len = c1 == '=' ? 2 : 1;
        break;
    case '>':
        k = c1 == '=' ? T_GE : T_GT;
        len = c1 == '=' ? 2 : 1;
        break;
    default:
        if (is_word_start(c)) {
            uint32_t j = start + 1;
            while (is_word_char(at(p, j))) j++;
            len = j - start;
            k = T_WORD;
            t->kw = classify(p->src + start, len);
        } else {
            char ch[16];
            fail(p, TSG_EINVAL, start, "unexpected character %s",
                 describe_char(p->src + start, p->n - start, ch, sizeof ch));
            t->end = start;
            return;
        }
    }
    t->kind = k;
    p->i = start + len;
    t->end = p->i;
}

/* ------------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------------ */

static void next(parser *p)
{
    p->prev_pos = p->cur.pos;
    p->prev_end = p->cur.end;
    lex(p);
}

static unsigned height(const fp_node *n)
{
    return n ? n->height : 0;
}

static fp_node *node_new(parser *p, fp_kind kind, uint32_t pos, unsigned child_height)
{
    if (child_height + 1 > FP_LIMIT_DEPTH) {
        fail(p, TSG_ELIMIT, pos, "the expression nests deeper than %u levels (FP_LIMIT_DEPTH)",
             FP_LIMIT_DEPTH);
        return NULL;
    }
    fp_node *n = tsg_arena_zalloc(p->a, sizeof *n);
    if (!n) {
        fail_nomem(p);
        return NULL;
    }
    n->kind = (uint8_t)kind;
    n->pos = pos;
    n->height = (uint16_t)(child_height + 1);
    return n;
}

/* Counts one level of recursion; false (error recorded) beyond the limit. The
 * caller calls leave() whatever the result. */
static bool enter(parser *p)
{
    if (++p->depth > FP_LIMIT_DEPTH) {
        fail(p, TSG_ELIMIT, p->cur.pos,
             "the expression nests deeper than %u levels (FP_LIMIT_DEPTH)", FP_LIMIT_DEPTH);
        return false;
    }
    return true;
}

static void leave(parser *p)
{
    p->depth--;
}

/* The source text of token t, NUL-terminated in the arena. */
static bool token_text(parser *p, const token *t, fp_str *out)
{
    char *s = tsg_arena_strndup(p->a, p->src + t->pos, t->end - t->pos);
    if (!s) {
        fail_nomem(p);
        return false;
    }
    out->s = s;
    out->len = t->end - t->pos;
    return true;
}

/* Keywords that can never name anything at the start of a term. */
static bool reserved(keyword kw)
{
    return kw == KW_TRUE || kw == KW_FALSE || kw == KW_AND || kw == KW_OR || kw == KW_XOR ||
           kw == KW_IMPLIES || kw == KW_DIV || kw == KW_MOD;
}

/* Whether t can be a name: a delimited identifier, or a word (any word when
 * any_word, else not a reserved keyword). */
static bool is_name(const token *t, bool any_word)
{
    return t->kind == T_DELIMITED || (t->kind == T_WORD && (any_word || !reserved(t->kw)));
}

static bool name_of(parser *p, const token *t, fp_str *out)
{
    if (t->kind == T_DELIMITED || t->kind == T_STRING) {
        *out = t->text;
        return true;
    }
    return token_text(p, t, out);
}

static fp_node *parse_expr(parser *p, int min_prec);

/* The arguments after '(' (the current token) up to and including ')'. */
static bool parse_args(parser *p, fp_node *call)
{
    char nm[48], found[64];
    next(p);
    if (p->cur.kind == T_RPAREN) {
        next(p);
        return true;
    }
    const fp_node **args = NULL;
    uint32_t n = 0, cap = 0;
    unsigned h = height(call->call.target);
    for (;;) {
        if (n == FP_LIMIT_ARGS) {
            fail(p, TSG_ELIMIT, p->cur.pos, "more than %u arguments to %s (FP_LIMIT_ARGS)",
                 FP_LIMIT_ARGS, snip(call->call.name.s, call->call.name.len, nm, sizeof nm));
            return false;
        }
        fp_node *arg = parse_expr(p, 1);
        if (!arg) return false;
        if (n == cap) {
            uint32_t ncap = cap ? cap * 2 : 4;
            const fp_node **grown = tsg_arena_alloc(p->a, ncap * sizeof *grown);
            if (!grown) {
                fail_nomem(p);
                return false;
            }
            if (n) memcpy(grown, args, n * sizeof *grown);
            args = grown;
            cap = ncap;
        }
        args[n++] = arg;
        if (arg->height > h) h = arg->height;
        if (p->cur.kind == T_COMMA) {
            next(p);
            continue;
        }
        if (p->cur.kind == T_RPAREN) break;
        fail(p, TSG_EINVAL, p->cur.pos, "expected ')' after the arguments of %s, found %s",
             snip(call->call.name.s, call->call.name.len, nm, sizeof nm),
             describe(p, &p->cur, found, sizeof found));
        return false;
    }
    if (h + 1 > FP_LIMIT_DEPTH) {
        fail(p, TSG_ELIMIT, call->pos,
             "the expression nests deeper than %u levels (FP_LIMIT_DEPTH)", FP_LIMIT_DEPTH);
        return false;
    }
    call->height = (uint16_t)(h + 1);
    call->call.args = args;
    call->call.nargs = n;
    next(p);
    return true;
}

/* A name (current token) with its optional argument list: a member or a call
 * on target (NULL: the focus). */
static fp_node *parse_named(parser *p, const fp_node *target)
{
    token t = p->cur;
    fp_node *n = node_new(p, FP_MEMBER, t.pos, height(target));
    if (!n || !name_of(p, &t, &n->call.name)) return NULL;
    n->call.target = target;
    next(p);
    if (p->cur.kind == T_LPAREN) {
        n->kind = FP_CALL;
        if (!parse_args(p, n)) return NULL;
    }
    return n;
}

/* After '.': a name, a call, or $this/$index/$total. */
static fp_node *parse_invocation(parser *p, const fp_node *target)
{
    char found[64];
    tok_kind k = p->cur.kind;
    if (k == T_THIS || k == T_INDEX || k == T_TOTAL) {
        fp_node *n = node_new(p,
                              k == T_THIS    ? FP_THIS
                              : k == T_INDEX ? FP_INDEX
                                             : FP_TOTAL,
                              p->cur.pos, height(target));
        if (!n) return NULL;
        n->call.target = target;
        next(p);
        return n;
    }
    if (!is_name(&p->cur, true)) {
        fail(p, TSG_EINVAL, p->cur.pos, "expected a name after '.', found %s",
             describe(p, &p->cur, found, sizeof found));
        return NULL;
    }
    return parse_named(p, target);
}

/* A number, then a quantity's unit when one follows. */
static fp_node *parse_number(parser *p)
{
    token num = p->cur;
    fp_node *n = node_new(p, num.kind == T_DECIMAL ? FP_DECIMAL : FP_INTEGER, num.pos, 0);
    if (!n) return NULL;
    fp_str text;
    if (!token_text(p, &num, &text)) return NULL;
    next(p);
    if (p->cur.kind == T_STRING || (p->cur.kind == T_WORD && p->cur.kw == KW_UNIT)) {
        n->kind = FP_QUANTITY;
        n->quantity.number = text;
        n->quantity.decimal = num.kind == T_DECIMAL;
        if (p->cur.kind == T_STRING) {
            n->quantity.unit = p->cur.text;
        } else {
            n->quantity.calendar = true;
            if (!token_text(p, &p->cur, &n->quantity.unit)) return NULL;
        }
        next(p);
    } else {
        n->text = text;
    }
    return n;
}

static fp_node *parse_temporal(parser *p)
{
    token t = p->cur;
    fp_kind kind = t.kind == T_DATE       ? FP_LIT_DATE
                   : t.kind == T_DATETIME ? FP_LIT_DATETIME
                                          : FP_LIT_TIME;
    fp_node *n = node_new(p, kind, t.pos, 0);
    if (!n) return NULL;
    const char *s = p->src + t.pos + 1;
    uint32_t len = t.end - t.pos - 1;
    char *text = tsg_arena_strndup(p->a, s, len);
    if (!text) {
        fail_nomem(p);
        return NULL;
    }
    n->temporal.text.s = text;
    n->temporal.text.len = len;
    /* the FHIR lexical form: no trailing T on a date-time, no leading T on a time */
    if (kind == FP_LIT_DATETIME && text[len - 1] == 'T') {
        n->temporal.value.s = tsg_arena_strndup(p->a, s, len - 1);
        n->temporal.value.len = len - 1;
    } else if (kind == FP_LIT_TIME) {
        n->temporal.value.s = text + 1;
        n->temporal.value.len = len - 1;
        n->temporal.has_zone = t.zone;
    } else {
        n->temporal.value = n->temporal.text;
    }
    if (!n->temporal.value.s) {
        fail_nomem(p);
        return NULL;
    }
    next(p);
    return n;
}

static fp_node *parse_term(parser *p)
{
    char found[64], prev[48];
    token t = p->cur;
    switch (t.kind) {
    case T_INTEGER:
    case T_DECIMAL:
        return parse_number(p);
    case T_STRING: {
        fp_node *n = node_new(p, FP_STRING, t.pos, 0);
        if (!n) return NULL;
        n->text = t.text;
        next(p);
        return n;
    }
    case T_DATE:
    case T_DATETIME:
    case T_TIME:
        return parse_temporal(p);
    case T_LBRACE: {
        next(p);
        if (p->cur.kind != T_RBRACE) {
            fail(p, TSG_EINVAL, p->cur.pos,
                 "expected '}' after '{' (the only collection literal is the empty {}), found %s",
                 describe(p, &p->cur, found, sizeof found));
            return NULL;
        }
        next(p);
        return node_new(p, FP_LIT_EMPTY, t.pos, 0);
    }
    case T_WORD:
        if (t.kw == KW_TRUE || t.kw == KW_FALSE) {
            fp_node *n = node_new(p, FP_BOOLEAN, t.pos, 0);
            if (!n) return NULL;
            n->boolean = t.kw == KW_TRUE;
            next(p);
            return n;
        }
        if (reserved(t.kw)) break;
        return parse_named(p, NULL);
    case T_DELIMITED:
        return parse_named(p, NULL);
    case T_THIS:
    case T_INDEX:
    case T_TOTAL: {
        fp_node *n = node_new(p,
                              t.kind == T_THIS    ? FP_THIS
                              : t.kind == T_INDEX ? FP_INDEX
                                                  : FP_TOTAL,
                              t.pos, 0);
        if (n) next(p);
        return n;
    }
    case T_PERCENT: {
        next(p);
        if (!is_name(&p->cur, true) && p->cur.kind != T_STRING) {
            fail(p, TSG_EINVAL, p->cur.pos,
                 "expected the name of an environment variable after '%%', found %s",
                 describe(p, &p->cur, found, sizeof found));
            return NULL;
        }
        fp_node *n = node_new(p, FP_EXTERNAL, t.pos, 0);
        if (!n || !name_of(p, &p->cur, &n->name)) return NULL;
        next(p);
        return n;
    }
    case T_LPAREN: {
        next(p);
        fp_node *e = parse_expr(p, 1);
        if (!e) return NULL;
        if (p->cur.kind != T_RPAREN) {
            fail(p, TSG_EINVAL, p->cur.pos, "expected ')' to close the '(' at column %u, found %s",
                 column_of(p->src, t.pos), describe(p, &p->cur, found, sizeof found));
            return NULL;
        }
        next(p);
        return e;
    }
    default:
        break;
    }
    const char *what = describe(p, &t, found, sizeof found);
    if (p->prev_end > p->prev_pos)
        fail(p, TSG_EINVAL, t.pos, "expected an expression after '%s', found %s",
             snip(p->src + p->prev_pos, p->prev_end - p->prev_pos, prev, sizeof prev), what);
    else
        fail(p, TSG_EINVAL, t.pos, "expected an expression, found %s", what);
    return NULL;
}

static fp_node *parse_postfix(parser *p)
{
    char found[64];
    fp_node *e = parse_term(p);
    while (e) {
        if (p->cur.kind == T_DOT) {
            next(p);
            e = parse_invocation(p, e);
        } else if (p->cur.kind == T_LBRACKET) {
            uint32_t open = p->cur.pos;
            next(p);
            fp_node *index = parse_expr(p, 1);
            if (!index) return NULL;
            if (p->cur.kind != T_RBRACKET) {
                fail(p, TSG_EINVAL, p->cur.pos,
                     "expected ']' to close the '[' at column %u, found %s",
                     column_of(p->src, open), describe(p, &p->cur, found, sizeof found));
                return NULL;
            }
            next(p);
            unsigned h = height(e) > height(index) ? height(e) : height(index);
            fp_node *n = node_new(p, FP_INDEXER, open, h);
            if (!n) return NULL;
            n->bin.lhs = e;
            n->bin.rhs = index;
            e = n;
        } else {
            break;
        }
    }
    return e;
}

static fp_node *parse_unary(parser *p)
{
    if (p->cur.kind != T_PLUS && p->cur.kind != T_MINUS) return parse_postfix(p);
    token t = p->cur;
    fp_node *n = NULL;
    if (enter(p)) {
        next(p);
        fp_node *operand = parse_unary(p);
        if (operand) n = node_new(p, FP_UNARY, t.pos, operand->height);
        if (n) {
            n->op = t.kind == T_MINUS ? FP_OP_NEG : FP_OP_POS;
            n->bin.lhs = operand;
        }
    }
    leave(p);
    return n;
}

/* The precedence of the current token as an infix operator (0: it is not one). */
static int infix(const token *t, fp_op *op)
{
    switch (t->kind) {
    case T_WORD:
        switch (t->kw) {
        case KW_IMPLIES:
            *op = FP_OP_IMPLIES;
            return 1;
        case KW_OR:
            *op = FP_OP_OR;
            return 2;
        case KW_XOR:
            *op = FP_OP_XOR;
            return 2;
        case KW_AND:
            *op = FP_OP_AND;
            return 3;
        case KW_IN:
            *op = FP_OP_IN;
            return 4;
        case KW_CONTAINS:
            *op = FP_OP_CONTAINS;
            return 4;
        case KW_IS:
            *op = FP_OP_IS;
            return 8;
        case KW_AS:
            *op = FP_OP_AS;
            return 8;
        case KW_DIV:
            *op = FP_OP_IDIV;
            return 10;
        case KW_MOD:
            *op = FP_OP_MOD;
            return 10;
        default:
            return 0;
        }
    case T_EQ:
        *op = FP_OP_EQ;
        return 5;
    case T_TILDE:
        *op = FP_OP_EQUIV;
        return 5;
    case T_NE:
        *op = FP_OP_NE;
        return 5;
    case T_NTILDE:
        *op = FP_OP_NEQUIV;
        return 5;
    case T_LT:
        *op = FP_OP_LT;
        return 6;
    case T_GT:
        *op = FP_OP_GT;
        return 6;
    case T_LE:
        *op = FP_OP_LE;
        return 6;
    case T_GE:
        *op = FP_OP_GE;
        return 6;
    case T_PIPE:
        *op = FP_OP_UNION;
        return 7;
    case T_PLUS:
        *op = FP_OP_ADD;
        return 9;
    case T_MINUS:
        *op = FP_OP_SUB;
        return 9;
    case T_AMP:
        *op = FP_OP_CONCAT;
        return 9;
    case T_STAR:
        *op = FP_OP_MUL;
        return 10;
    case T_SLASH:
        *op = FP_OP_DIV;
        return 10;
    default:
        return 0;
    }
}

/* The type name after 'is'/'as' (the current token): qualified identifier. */
static fp_node *parse_type(parser *p, const fp_node *operand, fp_op op, uint32_t op_pos)
{
    char found[64];
    if (!is_name(&p->cur, false)) {
        fail(p, TSG_EINVAL, p->cur.pos, "expected a type name after '%s', found %s",
             op == FP_OP_IS ? "is" : "as", describe(p, &p->cur, found, sizeof found));
        return NULL;
    }
    fp_node *n = node_new(p, FP_TYPE, op_pos, operand->height);
    if (!n) return NULL;
    n->op = (uint8_t)op;
    n->type.operand = operand;
    fp_str first;
    if (!name_of(p, &p->cur, &first)) return NULL;
    next(p);
    if (p->cur.kind != T_DOT) {
        n->type.name = first;
        n->type.ns.s = "";
        return n;
    }
    /* qualified: the first part is the namespace, the rest (usually one part) the name */
    n->type.ns = first;
    tsg_buf rest;
    tsg_buf_init(&rest, FP_LIMIT_EXPR_BYTES + 1);
    while (p->cur.kind == T_DOT) {
        next(p);
        fp_str part;
        if (!is_name(&p->cur, false)) {
            fail(p, TSG_EINVAL, p->cur.pos, "expected a type name after '.', found %s",
                 describe(p, &p->cur, found, sizeof found));
            break;
        }
        if (!name_of(p, &p->cur, &part)) break;
        if (rest.len) tsg_buf_putc(&rest, '.');
        tsg_buf_append(&rest, part.s, part.len);
        next(p);
    }
    if (p->rc == TSG_OK && tsg_buf_rc(&rest) == TSG_OK) {
        n->type.name.s = tsg_arena_strndup(p->a, rest.data, rest.len);
        n->type.name.len = (uint32_t)rest.len;
        if (!n->type.name.s) fail_nomem(p);
    } else if (p->rc == TSG_OK) {
        fail_nomem(p);
    }
    tsg_buf_free(&rest);
    return p->rc == TSG_OK ? n : NULL;
}

/* An expression whose operators all bind at least as tightly as min_prec. */
static fp_node *parse_expr(parser *p, int min_prec)
{
    fp_node *lhs = NULL;
    if (enter(p)) lhs = parse_unary(p);
    while (lhs) {
        fp_op op = FP_OP_NONE;
        int prec = infix(&p->cur, &op);
        if (prec == 0 || prec < min_prec) break;
        uint32_t op_pos = p->cur.pos;
        next(p);
        if (op == FP_OP_IS || op == FP_OP_AS) {
            lhs = parse_type(p, lhs, op, op_pos);
            continue;
        }
        /* implies is right-associative, every other operator left-associative */
        fp_node *rhs = parse_expr(p, op == FP_OP_IMPLIES ? prec : prec + 1);
        if (!rhs) {
            lhs = NULL;
            break;
        }
        fp_node *n =
            node_new(p, FP_BINARY, op_pos, lhs->height > rhs->height ? lhs->height : rhs->height);
        if (n) {
            n->op = (uint8_t)op;
            n->bin.lhs = lhs;
            n->bin.rhs = rhs;
        }
        lhs = n;
    }
    leave(p);
    return lhs;
}

/* ------------------------------------------------------------------------
 * API
 * ------------------------------------------------------------------------ */

tsg_rc fp_compile(const char *src, size_t len, fp_expr **out, tsg_error *err)
{
    assert(out != NULL);
    *out = NULL;
    tsg_error_clear(err);
    if (!src) len = 0;
    if (len > FP_LIMIT_EXPR_BYTES) {
        tsg_rc rc = tsg_error_set(err, TSG_ELIMIT, NULL,
                                  "the expression is longer than %u bytes (FP_LIMIT_EXPR_BYTES)",
                                  FP_LIMIT_EXPR_BYTES);
        if (err) err->column = 0;
        return rc;
    }
    size_t valid = len ? tsg_utf8_valid_prefix(src, len) : 0;
    if (valid < len) {
        tsg_rc rc = tsg_error_set(err, TSG_EINVAL, NULL, "the expression is not valid UTF-8");
        if (err) err->column = column_of(src, (uint32_t)valid);
        return rc;
    }
    tsg_arena *a = tsg_arena_new(FP_ARENA_CAP);
    if (!a) return tsg_error_set(err, TSG_ENOMEM, NULL, "out of memory");
    fp_expr *e = tsg_arena_zalloc(a, sizeof *e);
    char *copy = e ? tsg_arena_strndup(a, len ? src : "", len) : NULL;
    if (!copy) {
        tsg_arena_free(a);
        return tsg_error_set(err, TSG_ENOMEM, NULL, "out of memory");
    }
    e->arena = a;
    e->source.s = copy;
    e->source.len = (uint32_t)len;

    parser p = {.src = copy, .n = (uint32_t)len, .a = a, .err = err, .rc = TSG_OK};
    lex(&p);
    p.prev_pos = p.prev_end = 0;
    if (p.rc == TSG_OK && p.cur.kind == T_EOF)
        fail(&p, TSG_EINVAL, p.cur.pos, "the expression is empty");
    fp_node *root = p.rc == TSG_OK ? parse_expr(&p, 1) : NULL;
    if (root && p.cur.kind != T_EOF) {
        char found[64];
        fail(&p, TSG_EINVAL, p.cur.pos,
             "expected an operator or the end of the expression, found %s",
             describe(&p, &p.cur, found, sizeof found));
    }
    if (p.rc != TSG_OK || !root) {
        if (p.rc == TSG_OK) /* cannot happen: a NULL tree always records why */
            fail(&p, TSG_EINTERNAL, 0, "the parser failed without an error");
        tsg_arena_free(a);
        return p.rc;
    }
    e->root = root;
    fp_regex_precompile(e);
    *out = e;
    return TSG_OK;
}

void fp_expr_free(fp_expr *e)
{
    if (!e) return;
    fp_regex_release(e);
    tsg_arena_free(e->arena);
}

unsigned fp_expr_column(const fp_expr *e, uint32_t pos)
{
    if (pos > e->source.len) pos = e->source.len;
    return column_of(e->source.s, pos);
}

/* ------------------------------------------------------------------------
 * Dump
 * ------------------------------------------------------------------------ */

const char *fp_op_name(fp_op op)
{
    static const char *const names[] = {
        [FP_OP_NONE] = "?",
        [FP_OP_IMPLIES] = "implies",
        [FP_OP_OR] = "or",
        [FP_OP_XOR] = "xor",
        [FP_OP_AND] = "and",
        [FP_OP_IN] = "in",
        [FP_OP_CONTAINS] = "contains",
        [FP_OP_EQ] = "=",
        [FP_OP_EQUIV] = "~",
        [FP_OP_NE] = "!=",
        [FP_OP_NEQUIV] = "!~",
        [FP_OP_LT] = "<",
        [FP_OP_GT] = ">",
        [FP_OP_LE] = "<=",
        [FP_OP_GE] = ">=",
        [FP_OP_UNION] = "|",
        [FP_OP_IS] = "is",
        [FP_OP_AS] = "as",
        [FP_OP_ADD] = "+",
        [FP_OP_SUB] = "-",
        [FP_OP_CONCAT] = "&",
        [FP_OP_MUL] = "*",
        [FP_OP_DIV] = "/",
        [FP_OP_IDIV] = "div",
        [FP_OP_MOD] = "mod",
        [FP_OP_POS] = "+",
        [FP_OP_NEG] = "-",
    };
    return (unsigned)op < sizeof names / sizeof names[0] ? names[op] : "?";
}

/* Text between quotes q, with q, '\' and control characters escaped. */
static void dump_quoted(tsg_buf *b, fp_str s, char q)
{
    tsg_buf_putc(b, q);
    for (uint32_t k = 0; k < s.len; k++) {
        unsigned char c = (unsigned char)s.s[k];
        switch (c) {
        case '\n':
            tsg_buf_puts(b, "\\n");
            break;
        case '\r':
            tsg_buf_puts(b, "\\r");
            break;
        case '\t':
            tsg_buf_puts(b, "\\t");
            break;
        case '\f':
            tsg_buf_puts(b, "\\f");
            break;
        case '\\':
            tsg_buf_puts(b, "\\\\");
            break;
        default:
            if (c == (unsigned char)q) {
                tsg_buf_putc(b, '\\');
                tsg_buf_putc(b, q);
            } else if (c < 0x20 || c == 0x7F) {
                tsg_buf_printf(b, "\\u%04x", c);
            } else {
                tsg_buf_putc(b, (char)c);
            }
        }
    }
    tsg_buf_putc(b, q);
}

static void dump_name(tsg_buf *b, fp_str s)
{
    bool plain = s.len > 0 && is_word_start((unsigned char)s.s[0]);
    for (uint32_t k = 1; plain && k < s.len; k++) plain = is_word_char((unsigned char)s.s[k]);
    if (plain)
        tsg_buf_append(b, s.s, s.len);
    else
        dump_quoted(b, s, '`');
}

void fp_node_dump(const fp_node *n, tsg_buf *b)
{
    switch ((fp_kind)n->kind) {
    case FP_LIT_EMPTY:
        tsg_buf_puts(b, "{}");
        return;
    case FP_BOOLEAN:
        tsg_buf_puts(b, n->boolean ? "true" : "false");
        return;
    case FP_STRING:
        dump_quoted(b, n->text, '\'');
        return;
    case FP_INTEGER:
    case FP_DECIMAL:
        tsg_buf_append(b, n->text.s, n->text.len);
        return;
    case FP_LIT_DATE:
    case FP_LIT_DATETIME:
    case FP_LIT_TIME:
        tsg_buf_putc(b, '@');
        tsg_buf_append(b, n->temporal.text.s, n->temporal.text.len);
        return;
    case FP_QUANTITY:
        tsg_buf_puts(b, "(quantity ");
        tsg_buf_append(b, n->quantity.number.s, n->quantity.number.len);
        tsg_buf_putc(b, ' ');
        if (n->quantity.calendar)
            tsg_buf_append(b, n->quantity.unit.s, n->quantity.unit.len);
        else
            dump_quoted(b, n->quantity.unit, '\'');
        tsg_buf_putc(b, ')');
        return;
    case FP_THIS:
    case FP_INDEX:
    case FP_TOTAL: {
        const char *v = n->kind == FP_THIS ? "$this" : n->kind == FP_INDEX ? "$index" : "$total";
        if (n->call.target) {
            tsg_buf_puts(b, "(. ");
            fp_node_dump(n->call.target, b);
            tsg_buf_putc(b, ' ');
            tsg_buf_puts(b, v);
            tsg_buf_putc(b, ')');
        } else {
            tsg_buf_puts(b, v);
        }
        return;
    }
    case FP_EXTERNAL:
        tsg_buf_putc(b, '%');
        dump_name(b, n->name);
        return;
    case FP_MEMBER:
    case FP_CALL:
        if (n->call.target) {
            tsg_buf_puts(b, "(. ");
            fp_node_dump(n->call.target, b);
            tsg_buf_putc(b, ' ');
        }
        if (n->kind == FP_CALL) {
            tsg_buf_puts(b, "(call ");
            dump_name(b, n->call.name);
            for (uint32_t k = 0; k < n->call.nargs; k++) {
                tsg_buf_putc(b, ' ');
                fp_node_dump(n->call.args[k], b);
            }
            tsg_buf_putc(b, ')');
        } else {
            dump_name(b, n->call.name);
        }
        if (n->call.target) tsg_buf_putc(b, ')');
        return;
    case FP_INDEXER:
    case FP_UNARY:
    case FP_BINARY:
        tsg_buf_putc(b, '(');
        tsg_buf_puts(b, n->kind == FP_INDEXER ? "[]" : fp_op_name((fp_op)n->op));
        tsg_buf_putc(b, ' ');
        fp_node_dump(n->bin.lhs, b);
        if (n->bin.rhs) {
            tsg_buf_putc(b, ' ');
            fp_node_dump(n->bin.rhs, b);
        }
        tsg_buf_putc(b, ')');
        return;
    case FP_TYPE:
        tsg_buf_putc(b, '(');
        tsg_buf_puts(b, fp_op_name((fp_op)n->op));
        tsg_buf_putc(b, ' ');
        fp_node_dump(n->type.operand, b);
        tsg_buf_putc(b, ' ');
        if (n->type.ns.len) {
            dump_name(b, n->type.ns);
            tsg_buf_putc(b, '.');
        }
        dump_name(b, n->type.name);
        tsg_buf_putc(b, ')');
        return;
    }
    tsg_buf_puts(b, "(?)");
}

size_t fp_expr_dump(const fp_expr *e, tsg_buf *out)
{
    size_t before = out->len;
    fp_node_dump(e->root, out);
    return out->len - before;
}

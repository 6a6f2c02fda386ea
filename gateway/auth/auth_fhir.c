/*
 * auth_fhir.c — which SMART permission a FHIR interaction needs (auth.h,
 * "Scopes"): the same path/method table as the router of fhir_rest.c, seen
 * from the gate, and the per-entry check of transaction and batch Bundles.
 */
#include "auth.h"

#include <stdio.h>
#include <string.h>

#include "../model/model.h"

/* http_method bits (rest/http.h), repeated here so this file needs only auth.h */
enum { M_GET = 1u << 0, M_POST = 1u << 2, M_PUT = 1u << 3, M_DELETE = 1u << 4, M_PATCH = 1u << 5 };

static bool is_type(const char *s)
{
    return model_resource_find(s, strlen(s)) != NULL;
}

bool auth_fhir_requirement(const char *const *s, size_t n, unsigned m, bool has_getpages,
                           const char **type, unsigned *perms, bool *extra_everything,
                           bool *public_, bool *bundle)
{
    *type = NULL;
    *perms = 0;
    *extra_everything = *public_ = *bundle = false;
    if (n == 0) {
        if (m == M_GET && has_getpages) {
            *type = ""; /* a page of an earlier search: search on any type */
            *perms = AUTH_PERM_S;
            return true;
        }
        if (m == M_POST) {
            *bundle = true;
            return true;
        }
        return false;
    }
    if (!strcmp(s[0], "metadata")) {
        *public_ = n == 1 && m == M_GET;
        return *public_;
    }
    if (!strcmp(s[0], "_history")) {
        if (n != 1 || m != M_GET) return false;
        *type = "*";
        *perms = AUTH_PERM_S;
        return true;
    }
    if (!is_type(s[0])) return false;
    *type = s[0];
    if (n == 1) {
        *perms = m == M_GET      ? AUTH_PERM_S
                 : m == M_POST   ? AUTH_PERM_C
                 : m == M_PUT    ? AUTH_PERM_U | AUTH_PERM_C | AUTH_PERM_S
                 : m == M_DELETE ? AUTH_PERM_D | AUTH_PERM_S
                 : m == M_PATCH  ? AUTH_PERM_U | AUTH_PERM_S
                                 : 0;
    } else if (n == 2 && !strcmp(s[1], "_search")) {
        *perms = m == M_POST ? AUTH_PERM_S : 0;
    } else if (n == 2 && !strcmp(s[1], "_history")) {
        *perms = m == M_GET ? AUTH_PERM_S : 0;
    } else if (n == 2) {
        *perms = m == M_GET      ? AUTH_PERM_R
                 : m == M_PUT    ? AUTH_PERM_U
                 : m == M_DELETE ? AUTH_PERM_D
                 : m == M_PATCH  ? AUTH_PERM_U
                                 : 0;
    } else if (n == 3 && !strcmp(s[2], "_history")) {
        *perms = m == M_GET ? AUTH_PERM_R : 0;
    } else if (n == 3 && !strcmp(s[2], "$everything") && !strcmp(s[0], "Patient")) {
        *perms = m == M_GET ? AUTH_PERM_R : 0;
        *extra_everything = true;
    } else if (n == 4 && !strcmp(s[2], "_history")) {
        *perms = m == M_GET ? AUTH_PERM_R : 0;
    }
    return *perms != 0;
}

/* The method bit of an entry's request.method, 0 when unknown. */
static unsigned method_bit(const char *s)
{
    if (!s) return 0;
    if (!strcmp(s, "GET") || !strcmp(s, "HEAD")) return M_GET;
    if (!strcmp(s, "POST")) return M_POST;
    if (!strcmp(s, "PUT")) return M_PUT;
    if (!strcmp(s, "DELETE")) return M_DELETE;
    if (!strcmp(s, "PATCH")) return M_PATCH;
    return 0;
}

#define ENTRY_URL_MAX  2048
#define ENTRY_SEGS_MAX 8

/* Whether one entry's request is allowed by sc. */
static bool entry_allowed(const auth_scopes *sc, const json_t *req)
{
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *url = json_string_value(json_object_get(req, "url"));
    unsigned m = method_bit(method);
    if (!m || !url || strstr(url, "://") || strlen(url) >= ENTRY_URL_MAX) return false;
    char buf[ENTRY_URL_MAX];
    size_t ul = strcspn(url, "?");
    memcpy(buf, url, ul);
    buf[ul] = '\0';
    const char *segs[ENTRY_SEGS_MAX];
    size_t n = 0;
    char *p = buf;
    while (*p) {
        while (*p == '/') *p++ = '\0';
        if (!*p) break;
        if (n == ENTRY_SEGS_MAX) return false;
        segs[n++] = p;
        while (*p && *p != '/') p++;
    }
    const char *type;
    unsigned perms;
    bool every, pub, bundle;
    bool has_getpages = strstr(url, "_getpages=") != NULL;
    if (!auth_fhir_requirement(segs, n, m, has_getpages, &type, &perms, &every, &pub, &bundle))
        return pub;
    if (bundle) return false; /* no Bundles inside Bundles */
    if (json_object_get(req, "ifNoneExist")) perms |= AUTH_PERM_R | AUTH_PERM_S;
    if (every && !auth_scopes_allow(sc, "*", AUTH_PERM_S)) return false;
    if (type && !*type) {
        for (size_t i = 0; i < sc->n; i++)
            if (sc->s[i].perms & AUTH_PERM_S) return true;
        return false;
    }
    return auth_scopes_allow(sc, type, perms);
}

bool auth_bundle_allowed(const auth_scopes *s, const char *body, size_t n, bool json,
                         tsg_error *err)
{
    if (auth_scopes_allow(s, "*", AUTH_PERM_ALL)) return true;
    if (!json) {
        tsg_error_set(err, TSG_EINVAL, "forbidden",
                      "an XML transaction or batch needs the scope system/*.cruds (post it as "
                      "JSON to have each entry checked)");
        return false;
    }
    json_t *doc = json_loadb(body ? body : "", body ? n : 0, 0, NULL);
    if (!doc) {
        /* what jansson cannot read (numbers beyond its range, …) is not
         * inspected, so it is not let through either */
        tsg_error_set(err, TSG_EINVAL, "forbidden",
                      "the Bundle could not be inspected entry by entry; without the scope "
                      "system/*.cruds it is refused");
        return false;
    }
    json_t *entries = json_object_get(doc, "entry");
    bool ok = true;
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e)
    {
        json_t *req = json_object_get(e, "request");
        if (!entry_allowed(s, req)) {
            const char *method = json_string_value(json_object_get(req, "method"));
            const char *url = json_string_value(json_object_get(req, "url"));
            tsg_error_set(err, TSG_EINVAL, "forbidden",
                          "the token's scopes do not allow %.10s %.200s (Bundle.entry[%zu])",
                          method ? method : "?", url ? url : "?", i);
            if (err) snprintf(err->location, sizeof err->location, "Bundle.entry[%zu]", i);
            ok = false;
            break;
        }
    }
    json_decref(doc);
    return ok;
}

/*
 * package.c — reading FHIR packages: gzip (zlib) + ustar, package folders,
 * bare folders of JSON resources (see profile.h, "Loading").
 *
 * The tar reader works on the whole decompressed stream in memory (packages
 * are a few MiB; PACKAGE_MAX_UNPACKED_BYTES caps it) and hands out pointers
 * into it, so an entry costs no copy. Every header is checked before it is
 * trusted: checksum, an octal size that fits the remaining stream, a path
 * that is relative and has no `..` component.
 */
#include "profile.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ------------------------------------------------------------------------
 * gzip
 * ------------------------------------------------------------------------ */

/* Inflates all gzip members of data into a malloc'd buffer (*out, caller
 * frees). */
static tsg_rc gunzip(const void *data, size_t len, char **out, size_t *outlen, tsg_error *err)
{
    *out = NULL;
    *outlen = 0;
    if (len < 18)
        return tsg_error_set(err, TSG_EINVAL, "structure", "not a gzip stream (too short)");
    const unsigned char *p = data;
    if (p[0] != 0x1f || p[1] != 0x8b)
        return tsg_error_set(err, TSG_EINVAL, "structure", "not a gzip stream (bad magic)");
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
        return tsg_error_set(err, TSG_ENOMEM, "exception", "zlib: cannot start inflate");
    size_t cap = len * 4 < 65536 ? 65536 : len * 4, n = 0;
    if (cap > PACKAGE_MAX_UNPACKED_BYTES) cap = PACKAGE_MAX_UNPACKED_BYTES;
    char *buf = malloc(cap);
    tsg_rc rc = buf ? TSG_OK : TSG_ENOMEM;
    if (!buf) tsg_error_set(err, rc, "exception", "out of memory");
    s.next_in = (unsigned char *)(uintptr_t)p;
    s.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    while (rc == TSG_OK) {
        if (n == cap) {
            if (cap >= PACKAGE_MAX_UNPACKED_BYTES) {
                rc = tsg_error_set(err, TSG_ELIMIT, "too-costly",
                                   "archive unpacks to more than PACKAGE_MAX_UNPACKED_BYTES (%u)",
                                   PACKAGE_MAX_UNPACKED_BYTES);
                break;
            }
            size_t ncap =
                cap * 2 > PACKAGE_MAX_UNPACKED_BYTES ? PACKAGE_MAX_UNPACKED_BYTES : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                break;
            }
            buf = nb;
            cap = ncap;
        }
        s.next_out = (unsigned char *)buf + n;
        s.avail_out = (uInt)(cap - n);
        int z = inflate(&s, Z_NO_FLUSH);
        n = cap - s.avail_out;
        if (z == Z_STREAM_END) {
            /* another member follows (concatenated gzip)? */
            if (s.avail_in >= 2 && s.next_in[0] == 0x1f && s.next_in[1] == 0x8b) {
                if (inflateReset(&s) != Z_OK)
                    rc = tsg_error_set(err, TSG_EINVAL, "structure", "corrupt gzip stream");
                continue;
            }
            break;
        }
        if (z == Z_BUF_ERROR && s.avail_in == 0) {
            rc = tsg_error_set(err, TSG_EINVAL, "structure",
                               "truncated gzip stream (ends after %zu bytes unpacked)", n);
        } else if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = tsg_error_set(err, TSG_EINVAL, "structure", "corrupt gzip stream: %s",
                               s.msg ? s.msg : "inflate failed");
        }
    }
    inflateEnd(&s);
    if (rc != TSG_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = n;
    return TSG_OK;
}

/* ------------------------------------------------------------------------
 * tar
 * ------------------------------------------------------------------------ */

/* Parses an octal (or base-256, refused) numeric header field. */
static int tar_octal(const char *f, size_t n, uint64_t *v)
{
    size_t i = 0;
    *v = 0;
    while (i < n && (f[i] == ' ' || f[i] == '\0')) i++;
    if (i == n) return 1; /* empty field = 0 */
    int digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (*v > (UINT64_MAX >> 3)) return 0;
        *v = (*v << 3) | (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != '\0') return 0;
    return digits > 0;
}

/* 1 when path is relative, not empty, has no `..` component and no NUL. */
static int tar_path_safe(const char *p)
{
    if (!*p || *p == '/') return 0;
    const char *c = p;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 2 && c[0] == '.' && c[1] == '.') return 0;
        if (!e) break;
        c = e + 1;
    }
    return 1;
}

/* Finds `path=` in a pax extended header; copies it into out. */
static int pax_path(const char *d, size_t n, char *out, size_t cap)
{
    size_t i = 0;
    while (i < n) {
        /* record: "LEN key=value\n" */
        size_t len = 0, j = i;
        while (j < n && d[j] >= '0' && d[j] <= '9' && len < n)
            len = len * 10 + (size_t)(d[j++] - '0');
        if (j >= n || d[j] != ' ' || len == 0 || len > n - i) return 0;
        const char *kv = d + j + 1, *end = d + i + len;
        if (end - kv > 5 && memcmp(kv, "path=", 5) == 0) {
            size_t vl = (size_t)(end - kv - 5);
            if (vl && kv[5 + vl - 1] == '\n') vl--;
            if (vl == 0 || vl >= cap || memchr(kv + 5, '\0', vl)) return 0;
            memcpy(out, kv + 5, vl);
            out[vl] = '\0';
            return 1;
        }
        i += len;
    }
    return 0;
}

tsg_rc package_read_tar(const void *data, size_t len, package_entry_fn fn, void *ctx,
                        tsg_error *err)
{
    const char *d = data;
    size_t off = 0, entries = 0;
    char longname[4096];
    int have_long = 0;
    while (off + 512 <= len) {
        const char *h = d + off;
        int zero = 1;
        for (int i = 0; i < 512; i++)
            if (h[i]) {
                zero = 0;
                break;
            }
        if (zero) return TSG_OK; /* end-of-archive block */
        uint64_t sum, size;
        if (!tar_octal(h + 148, 8, &sum) || !tar_octal(h + 124, 12, &size))
            return tsg_error_set(err, TSG_EINVAL, "structure",
                                 "tar header at byte %zu has a malformed number field", off);
        uint64_t calc = 0;
        for (int i = 0; i < 512; i++) calc += (i >= 148 && i < 156) ? 32u : (unsigned char)h[i];
        if (calc != sum)
            return tsg_error_set(err, TSG_EINVAL, "structure",
                                 "tar header at byte %zu has a bad checksum", off);
        off += 512;
        if (size > PACKAGE_MAX_ENTRY_BYTES)
            return tsg_error_set(
                err, TSG_ELIMIT, "too-costly",
                "tar entry at byte %zu is larger than PACKAGE_MAX_ENTRY_BYTES (%u)", off - 512,
                PACKAGE_MAX_ENTRY_BYTES);
        if (size > len - off)
            return tsg_error_set(err, TSG_EINVAL, "structure",
                                 "truncated tar: entry at byte %zu claims %llu bytes, %zu remain",
                                 off - 512, (unsigned long long)size, len - off);
        const char *body = d + off;
        size_t padded = (size_t)((size + 511) & ~(uint64_t)511);
        if (padded > len - off) padded = len - off;
        char type = h[156];
        if (++entries > PACKAGE_MAX_ENTRIES)
            return tsg_error_set(err, TSG_ELIMIT, "too-costly",
                                 "archive has more than PACKAGE_MAX_ENTRIES (%u) entries",
                                 PACKAGE_MAX_ENTRIES);
        if (type == 'x' || type == 'L') {
            if (type == 'x')
                have_long = pax_path(body, (size_t)size, longname, sizeof longname);
            else {
                size_t n = (size_t)size;
                while (n && body[n - 1] == '\0') n--;
                have_long = n > 0 && n < sizeof longname && !memchr(body, '\0', n);
                if (have_long) {
                    memcpy(longname, body, n);
                    longname[n] = '\0';
                }
            }
            off += padded;
            continue;
        }
        char name[sizeof longname];
        if (have_long) {
            memcpy(name, longname, strlen(longname) + 1);
        } else {
            size_t nl = strnlen(h, 100), pl = 0;
            name[0] = '\0';
            if (memcmp(h + 257, "ustar", 5) == 0) pl = strnlen(h + 345, 155);
            if (pl) {
                memcpy(name, h + 345, pl);
                name[pl] = '/';
                memcpy(name + pl + 1, h, nl);
                name[pl + 1 + nl] = '\0';
            } else {
                memcpy(name, h, nl);
                name[nl] = '\0';
            }
        }
        have_long = 0;
        off += padded;
        if (type != '0' && type != '\0' && type != '7') continue; /* dirs, links, others */
        const char *pth = name;
        while (pth[0] == '.' && pth[1] == '/') pth += 2;
        if (!tar_path_safe(pth))
            return tsg_error_set(err, TSG_EINVAL, "security",
                                 "tar entry '%.200s' has an unsafe path (absolute or '..')", name);
        tsg_rc rc = fn(ctx, pth, body, (size_t)size, err);
        if (rc != TSG_OK) return rc;
    }
    if (off != len)
        return tsg_error_set(err, TSG_EINVAL, "structure",
                             "truncated tar: %zu stray bytes after the last entry", len - off);
    return TSG_OK; /* no end blocks: accepted, as GNU tar does with a warning */
}

tsg_rc package_read_tgz(const void *data, size_t len, package_entry_fn fn, void *ctx,
                        tsg_error *err)
{
    char *tar = NULL;
    size_t n = 0;
    tsg_rc rc = gunzip(data, len, &tar, &n, err);
    if (rc == TSG_OK) rc = package_read_tar(tar, n, fn, ctx, err);
    free(tar);
    return rc;
}

/* ------------------------------------------------------------------------
 * Loading into the registry
 * ------------------------------------------------------------------------ */

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

typedef struct tgz_ctx {
    profile_registry *r;
    const char *file;
} tgz_ctx;

/* Entries `package/NAME.json` (no deeper folder) are resources. */
static tsg_rc tgz_entry(void *vctx, const char *path, const char *data, size_t len, tsg_error *err)
{
    tgz_ctx *c = vctx;
    if (strncmp(path, "package/", 8) != 0) return TSG_OK;
    const char *base = path + 8;
    if (strchr(base, '/') || !has_suffix(base, ".json")) return TSG_OK;
    if (strcmp(base, "package.json") == 0 || base[0] == '.') return TSG_OK;
    char origin[1024];
    snprintf(origin, sizeof origin, "%s: %s", c->file, path);
    return profile_registry_add_json(c->r, data, len, origin, err);
}

static tsg_rc load_file_json(profile_registry *r, const char *path, tsg_error *err)
{
    char *data = NULL;
    size_t len = 0;
    tsg_rc rc = tsg_read_file(path, PACKAGE_MAX_ENTRY_BYTES, &data, &len, err);
    if (rc == TSG_OK) rc = profile_registry_add_json(r, data, len, path, err);
    free(data);
    return rc;
}

static tsg_rc load_tgz(profile_registry *r, const char *path, tsg_error *err)
{
    char *data = NULL;
    size_t len = 0;
    tsg_rc rc = tsg_read_file(path, PACKAGE_MAX_ARCHIVE_BYTES, &data, &len, err);
    if (rc != TSG_OK) return rc;
    tgz_ctx c = {r, path};
    tsg_error e;
    tsg_error_clear(&e);
    rc = package_read_tgz(data, len, tgz_entry, &c, &e);
    free(data);
    if (rc != TSG_OK && err) {
        if (strncmp(e.message, path, strlen(path)) == 0)
            *err = e;
        else
            tsg_error_set(err, rc, e.code ? e.code : tsg_rc_code(rc), "%s: %s", path, e.message);
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads folder dir: its package/ subfolder when it is a package, else its
 * *.json, *.tgz and subfolders (sorted, so the first-loaded rule is stable). */
static tsg_rc load_dir(profile_registry *r, const char *dir, unsigned depth, tsg_error *err)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/package/package.json", dir);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        snprintf(p, sizeof p, "%s/package", dir);
        dir = p; /* a package folder: only package/NAME.json */
        depth = PACKAGE_MAX_DEPTH;
    }
    char dirbuf[4096];
    snprintf(dirbuf, sizeof dirbuf, "%s", dir);
    DIR *dh = opendir(dirbuf);
    if (!dh) return tsg_error_set(err, TSG_EIO, "exception", "%s: cannot open folder", dirbuf);
    char **names = NULL;
    size_t n = 0, cap = 0;
    tsg_rc rc = TSG_OK;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **nn = realloc(names, nc * sizeof *nn);
            if (!nn) {
                rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
                break;
            }
            names = nn;
            cap = nc;
        }
        names[n] = strdup(de->d_name);
        if (!names[n]) {
            rc = tsg_error_set(err, TSG_ENOMEM, "exception", "out of memory");
            break;
        }
        n++;
    }
    closedir(dh);
    if (rc == TSG_OK && n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == TSG_OK; i++) {
        char f[4096];
        int w = snprintf(f, sizeof f, "%s/%s", dirbuf, names[i]);
        if (w < 0 || (size_t)w >= sizeof f) {
            rc = tsg_error_set(err, TSG_ELIMIT, "too-costly", "%s/%s: path too long", dirbuf,
                               names[i]);
            break;
        }
        if (stat(f, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 < PACKAGE_MAX_DEPTH) rc = load_dir(r, f, depth + 1, err);
        } else if (S_ISREG(st.st_mode)) {
            if (has_suffix(names[i], ".tgz") || has_suffix(names[i], ".tar.gz"))
                rc = load_tgz(r, f, err);
            else if (has_suffix(names[i], ".json") && strcmp(names[i], "package.json") != 0)
                rc = load_file_json(r, f, err);
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

tsg_rc profile_registry_load(profile_registry *r, const char *path, tsg_error *err)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return tsg_error_set(err, TSG_EIO, "exception", "%s: no such file or folder",
                             path ? path : "(null)");
    if (S_ISDIR(st.st_mode)) return load_dir(r, path, 0, err);
    if (has_suffix(path, ".json")) return load_file_json(r, path, err);
    return load_tgz(r, path, err);
}

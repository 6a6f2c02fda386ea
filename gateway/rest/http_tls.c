/*
 * http_tls.c — the certificate and key of the HTTPS listener (http.h,
 * "HTTPS"): read from the PEM files of tls_cert / tls_key and checked with
 * OpenSSL's libcrypto before anything listens, so that a wrong file stops
 * `serve` with a message that names it instead of a TLS error at the first
 * client. libmicrohttpd (GnuTLS) then gets the same PEM text.
 */
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* The reason of OpenSSL's last error, or "" (clears the queue). */
static const char *ssl_reason(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    buf[0] = '\0';
    if (e) {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, size, " (OpenSSL: %s)", r ? r : "unknown error");
    }
    ERR_clear_error();
    return buf;
}

/* A password callback that refuses: encrypted keys are not supported (no
 * prompt on a terminal, no password in the configuration). */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static tsg_rc read_pem(const char *key, const char *path, char **out, size_t *len, tsg_error *err)
{
    tsg_error e;
    tsg_error_clear(&e);
    tsg_rc rc = tsg_read_file(path, HTTP_TLS_PEM_MAX, out, len, &e);
    if (rc == TSG_ELIMIT)
        return tsg_error_set(err, rc, "invalid", "%s %s: larger than %u bytes, not a PEM file", key,
                             path, HTTP_TLS_PEM_MAX);
    if (rc != TSG_OK) return tsg_error_set(err, rc, "invalid", "%s: %s", key, e.message);
    return TSG_OK;
}

tsg_rc http_tls_load(const http_config *cfg, char **cert_pem, char **key_pem, tsg_error *err)
{
    *cert_pem = NULL;
    *key_pem = NULL;
    if (!cfg->tls_cert[0] && !cfg->tls_key[0]) return TSG_OK;
    if (!cfg->tls_cert[0] || !cfg->tls_key[0])
        return tsg_error_set(err, TSG_EINVAL, "invalid",
                             "tls_cert and tls_key must be set together");
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    X509 *x = NULL;
    EVP_PKEY *pk = NULL;
    BIO *bio = NULL;
    char why[200];
    tsg_rc rc = read_pem("tls_cert", cfg->tls_cert, &cert, &cert_len, err);
    if (rc == TSG_OK) rc = read_pem("tls_key", cfg->tls_key, &key, &key_len, err);
    if (rc == TSG_OK) {
        bio = BIO_new_mem_buf(cert, (int)cert_len);
        x = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;
        BIO_free(bio);
        if (!x)
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "tls_cert %s: no PEM certificate (BEGIN CERTIFICATE) could be "
                               "read%s",
                               cfg->tls_cert, ssl_reason(why, sizeof why));
    }
    if (rc == TSG_OK && strstr(key, "ENCRYPTED"))
        rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                           "tls_key %s: the key is encrypted; give the unencrypted key "
                           "(readable only by the gateway's user)",
                           cfg->tls_key);
    if (rc == TSG_OK) {
        bio = BIO_new_mem_buf(key, (int)key_len);
        pk = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
        BIO_free(bio);
        if (!pk)
            rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                               "tls_key %s: no PEM private key (BEGIN PRIVATE KEY, BEGIN RSA or "
                               "EC PRIVATE KEY) could be read%s",
                               cfg->tls_key, ssl_reason(why, sizeof why));
    }
    if (rc == TSG_OK && X509_check_private_key(x, pk) != 1)
        rc = tsg_error_set(err, TSG_EINVAL, "invalid",
                           "tls_key %s is not the key of the certificate in tls_cert %s "
                           "(the first certificate of the file must be the server's own)",
                           cfg->tls_key, cfg->tls_cert);
    if (rc == TSG_OK && X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
        rc = tsg_error_set(err, TSG_EINVAL, "invalid", "tls_cert %s: the certificate has expired",
                           cfg->tls_cert);
    ERR_clear_error();
    X509_free(x);
    EVP_PKEY_free(pk);
    if (rc != TSG_OK) {
        free(cert);
        if (key) OPENSSL_cleanse(key, key_len);
        free(key);
        return rc;
    }
    *cert_pem = cert;
    *key_pem = key;
    return TSG_OK;
}

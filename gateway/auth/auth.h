/*
 * auth.h — who may call the gateway (issue 5, capability C7): API clients,
 * OAuth 2.0 client-credentials tokens as SMART Backend Services describes
 * them, SMART v2 system scopes, the request gate, per-client rate limits.
 *
 * ## The flow
 *
 *   1. An administrator registers a client (`tsunagu admin client create`):
 *      it belongs to one Organization, has scopes, a role (member|admin), an
 *      area, optionally a JWKS (its public keys), and gets a secret that is
 *      printed once and stored only as a slow hash.
 *   2. The client asks POST /auth/token for an access token
 *      (grant_type=client_credentials), authenticating with its secret (HTTP
 *      Basic) or with a signed JWT assertion (private_key_jwt: RS384 or ES384
 *      against its registered JWKS).
 *   3. The gateway answers a short-lived ES256 JWT signed with its own key
 *      (`kid`, published at /auth/jwks), carrying iss, sub (client id), aud,
 *      exp, iat, jti, scope, org, role, area.
 *   4. Every other request carries `Authorization: Bearer <token>`; the gate
 *      (auth_http_gate) checks it and the scope of the FHIR interaction
 *      before the handler runs: 401 + WWW-Authenticate without a valid
 *      token, 403 when the scopes do not allow the interaction, 429 +
 *      Retry-After past the client's rate.
 *
 * ## What a request costs (the 15 % budget of issue 5)
 *
 * A token is verified once (ES256, ~100 µs) and then kept, with the audience
 * it was checked for, in a cache of AUTH_CACHE_SLOTS slots (until exp); later
 * requests with it cost a fast hash and a byte comparison, no cryptography. The client's state
 * (revoked?) and its rate bucket live in Redis and are read by one Lua script
 * that also hands out a lease of up to AUTH_RATE_LEASE_MAX requests (a tenth
 * of the burst); the gateway trusts that answer for AUTH_REVOCATION_CACHE_MS.
 * While one thread asks for the next lease, the client's other requests are
 * admitted on credit (at most a lease, taken off the new one) instead of all
 * running the script at once (that stampede cost busy clients a fifth of their
 * reads). So a busy client costs one script call per lease, not one per request, and
 * the consequences are bounded and documented: a revocation takes effect
 * within AUTH_REVOCATION_CACHE_MS, and each gateway admits at most one lease
 * beyond what the bucket held. The bucket is not written to the AOF (it is
 * ephemeral state; an fsync per read would cost more than the read).
 *
 * ## What is public (no token)
 *
 *   /fhir/metadata, /healthz, /readyz, /.well-known/…, /auth/token,
 *   /auth/jwks. Everything else needs a token, /metrics included: its
 *   counters by interaction and status tell how busy which part of the API
 *   is, which is activity data; /metrics needs a token with role admin (a
 *   scraper gets one through /auth/token like any client).
 *
 * ## Tokens we accept (auth_jwt_parse, auth_jwt_verify)
 *
 *   - at most AUTH_TOKEN_MAX_BYTES; exactly three base64url parts (no
 *     padding, canonical encoding); header and payload JSON objects (jansson,
 *     duplicate keys refused); the header's `alg` must be in the caller's
 *     allowlist — `none` and every HS* are never in it (an HMAC "signed" with
 *     a public key is the classic algorithm-confusion attack), and a key is
 *     used only for the algorithm of its type and curve (ES256 = P-256,
 *     ES384 = P-384, RS384 = RSA ≥ 2048 bits), so a token cannot pick how a
 *     key is used;
 *   - `crit` is refused; `kid` at most AUTH_KID_MAX - 1 bytes;
 *   - exp/nbf/iat are integers; exp is required, now < exp + skew, nbf ≤ now +
 *     skew, iat ≤ now + skew (skew AUTH_CLOCK_SKEW_S); a client assertion's
 *     exp is at most AUTH_ASSERTION_MAX_LIFETIME_S ahead;
 *   - aud: a string or an array holding the expected audience.
 *
 * ## The gateway's signing key (decision: in Redis)
 *
 * A P-256 key generated on first start and kept in Redis (tsg:auth:keys), not
 * in a file under TSUNAGU_DATA_DIR: every gateway on the same Redis (and the
 * admin command) then shares it, and it has the same protection as the
 * patient data it guards (the embedded Redis listens only on a 0700 Unix
 * socket in a 0700 directory; its AOF is in that directory). Whoever can
 * read the Redis data can read every patient anyway. `kid` is the RFC 7638
 * thumbprint of the public key. Rotation (`tsunagu admin key rotate`): a new
 * key becomes current and signs from then on; the old key is marked retired
 * and stays in the JWKS, and is still accepted, until retired time + the
 * longest token lifetime (AUTH_TOKEN_LIFETIME_MAX_S) + skew have passed. A
 * running gateway notices a rotation at its next token request or when a
 * token names a kid it does not know (reloads at most once a second).
 *
 * ## Redis keys (prefix tsg:auth:)
 *
 *   tsg:auth:clients            SET   ids of every client
 *   tsg:auth:client:<id>        HASH  org       "Organization/<id>"
 *                                     name      free text
 *                                     scope     granted scopes, space-separated
 *                                     role      "member" | "admin"
 *                                     area      free text ("" = none)
 *                                     jwks      the client's JWKS JSON ("" = none)
 *                                     secret    "pbkdf2-sha256$<iter>$<salt b64url>$<hash b64url>"
 *                                     revoked   "0" | "1"
 *                                     created   ms since the epoch
 *                                     rotated   ms since the epoch of the last secret rotation
 *   tsg:auth:keys               HASH  <kid> → {"jwk": {private P-256 JWK}, "created": ms,
 *                                     "retired": ms or 0}
 *   tsg:auth:key:current        STRING the kid that signs
 *   tsg:auth:jti:<client>:<jti> STRING "1" with expiry = the assertion's exp (+ skew):
 *                                     SET NX refuses a replayed assertion
 *   tsg:auth:fail:a:<address>   STRING failed client authentications from an address,
 *   tsg:auth:fail:c:<client>    STRING … and of a client id, expiring after
 *                                     AUTH_TOKEN_FAILURE_WINDOW_S (auth_token_request)
 *   tsg:auth:rl:<client>        HASH  t (tokens left ×1000), ts (ms): the rate bucket,
 *                                     expiring when idle
 *
 * ## Client secrets
 *
 * 32 random bytes, base64url (43 characters), shown once. Stored as
 * PBKDF2-HMAC-SHA256 (OpenSSL) with a 16-byte per-client salt and
 * AUTH_PBKDF2_ITERATIONS iterations (the count is stored with the hash, so it
 * can be raised later); compared in constant time (CRYPTO_memcmp).
 *
 * ## Scopes (SMART App Launch v2, system context only)
 *
 *   system/<Type|*>.<c?r?u?d?s?>   v2: create, read, update, delete, search
 *                                   (letters in this order, at least one)
 *   system/<Type|*>.read|write|*   v1: read = rs, write = cud, * = cruds
 *
 * patient/ and user/ scopes, `?param=` restrictions and other scopes are
 * refused (invalid_scope): this gateway only serves backend services. How an
 * interaction maps to a permission: read, vread, history-instance → r;
 * search, history-type → s; create → c; update (also create with a client
 * id), conditional update, patch → u; delete, conditional delete → d;
 * history of the whole system and /fhir?_getpages → s on `*` resp. s on any
 * type; Patient/<id>/$everything → r on Patient and s on `*`; a transaction
 * or batch (JSON) → each entry's interaction on its type; an XML Bundle (not
 * inspected) → `*.cruds`; any other path below /fhir (an operation
 * such as $validate, a malformed path) → `*.cruds`: deny by default until the
 * table in auth_fhir.c names it.
 *
 * ## Whose data: care teams and consents (the REST layer)
 *
 * Scopes say *what kind* of data a client may touch; the patient compartment
 * rule says *whose*. It needs the store and FHIR resources (CareTeam,
 * PractitionerRole, Consent), so it lives in the REST layer:
 * gateway/rest/fhir_access.c, designed in rest_internal.h "Access". It reads
 * the principal (http_request.principal: org, role, area) that the gate set.
 *
 * ## Threads
 *
 * One auth_service is shared by every HTTP thread: the key ring is behind a
 * read-write lock, the verified-token cache behind striped mutexes, Redis
 * calls use each thread's own connection.
 */
#ifndef TSG_AUTH_H
#define TSG_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "../util/util.h"

/* ------------------------------------------------------------------------
 * Limits (every input cap of this module, in one place)
 * ------------------------------------------------------------------------ */

#define AUTH_TOKEN_MAX_BYTES          8192u  /* a JWT (access token or assertion) */
#define AUTH_FORM_MAX_BYTES           16384u /* the body of POST /auth/token */
#define AUTH_JSON_MAX_DEPTH           16u    /* nesting inside a JWT header/payload */
#define AUTH_KID_MAX                  128u   /* kid, NUL included */
#define AUTH_ID_MAX                   64u    /* client id, NUL included */
#define AUTH_TEXT_MAX                 256u   /* org, name, area, jti, NUL included */
#define AUTH_URL_MAX                  1024u  /* audience / issuer URL, NUL included */
#define AUTH_SCOPES_MAX               64u    /* scopes of one client or request */
#define AUTH_SCOPE_TEXT_MAX           2048u  /* a scope string */
#define AUTH_JWKS_MAX_BYTES           65536u /* a client's JWKS */
#define AUTH_JWKS_MAX_KEYS            16u    /* keys in a client's JWKS */
#define AUTH_RSA_MIN_BITS             2048   /* smaller RSA keys are refused */
#define AUTH_CLOCK_SKEW_S             60     /* tolerated clock difference */
#define AUTH_ASSERTION_MAX_LIFETIME_S 300    /* a client assertion's exp - now */
#define AUTH_TOKEN_LIFETIME_DEFAULT_S 300    /* access tokens */
#define AUTH_TOKEN_LIFETIME_MAX_S     3600   /* the largest configurable lifetime */
#define AUTH_PBKDF2_ITERATIONS        120000 /* client secret hashing */
#define AUTH_SECRET_BYTES             32     /* random bytes of a client secret */
#define AUTH_SALT_BYTES               16
#define AUTH_GATEWAY_KEYS_MAX         16u   /* signing keys kept (current + retired) */
#define AUTH_CACHE_SLOTS              1024u /* verified access tokens kept in memory (~4 KB each) */
#define AUTH_CACHE_TOKEN_MAX          1024u /* longer tokens are verified every time */
#define AUTH_CACHE_AUD_MAX            160u  /* … and so are tokens for longer audiences */
#define AUTH_REVOCATION_CACHE_MS                                                                   \
    1000                                /* how long what Redis said about a client                 \
                                           (revoked, a rate lease) is trusted */
#define AUTH_RATE_LEASE_MAX         64  /* requests taken from a bucket at once */
#define AUTH_TOKEN_FAILURES_MAX     20  /* failed logins of an address or client id … */
#define AUTH_TOKEN_FAILURE_WINDOW_S 300 /* … within this window, then 429 until it ends */

/* ------------------------------------------------------------------------
 * base64url (RFC 4648 §5, no padding)
 * ------------------------------------------------------------------------ */

/* Encodes in[0..n) into out (room for AUTH_B64URL_LEN(n) + 1 bytes), NUL-terminated;
 * returns the length written, or 0 when cap is too small (and n > 0). */
#define AUTH_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
size_t auth_b64url_encode(const unsigned char *in, size_t n, char *out, size_t cap);

/* Decodes s[0..n) strictly: alphabet A-Z a-z 0-9 - _, no padding, no
 * whitespace, length mod 4 != 1, unused trailing bits zero (one encoding per
 * value). Writes at most cap bytes to out. TSG_EINVAL for bad input,
 * TSG_ELIMIT when it does not fit. */
tsg_rc auth_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *out_len);

/* ------------------------------------------------------------------------
 * JWT / JWS (RFC 7515, 7519) with the rules of the top comment
 * ------------------------------------------------------------------------ */

typedef enum auth_alg {
    AUTH_ALG_ES256 = 1u << 0,
    AUTH_ALG_ES384 = 1u << 1,
    AUTH_ALG_RS384 = 1u << 2
} auth_alg;

#define AUTH_SIG_MAX 1024 /* RSA up to 8192 bits */

/* A parsed (not yet verified) JWT. header and payload are owned (json_decref
 * through auth_jwt_clear); signing_input points into the caller's token. */
typedef struct auth_jwt {
    auth_alg alg;
    char kid[AUTH_KID_MAX]; /* "" when absent */
    json_t *header;
    json_t *payload;
    const char *signing_input; /* "<header>.<payload>" of the token */
    size_t signing_input_len;
    unsigned char sig[AUTH_SIG_MAX];
    size_t sig_len;
} auth_jwt;

/*
 * Parses token[0..n) with the limits above; `algs` is an OR of auth_alg that
 * may appear. On TSG_OK *out holds the parts (free with auth_jwt_clear); on
 * failure *out is cleared and err says why (TSG_ELIMIT oversized, TSG_EINVAL
 * otherwise: "malformed", "alg none refused", "alg HS256 not allowed", …).
 * Any bytes are safe.
 */
tsg_rc auth_jwt_parse(const char *token, size_t n, unsigned algs, auth_jwt *out, tsg_error *err);

/* Frees what auth_jwt_parse kept (safe on a cleared or failed jwt). */
void auth_jwt_clear(auth_jwt *j);

/* Checks j's signature with key. The key must fit j->alg (type, curve, RSA
 * size): anything else is TSG_EINVAL "algorithm does not match the key"
 * (algorithm confusion). TSG_EINVAL "bad signature" when it does not verify. */
tsg_rc auth_jwt_verify(const auth_jwt *j, EVP_PKEY *key, tsg_error *err);

/*
 * Checks the time claims of payload at now (seconds): exp required, integer,
 * now < exp + skew; nbf/iat, when present, ≤ now + skew; max_lifetime_s > 0
 * also requires exp ≤ now + max_lifetime_s + skew. *exp_out gets exp.
 * TSG_EINVAL "expired" / "not yet valid" / "exp too far ahead" / "… not an integer".
 */
tsg_rc auth_jwt_check_times(const json_t *payload, long long now, int skew, int max_lifetime_s,
                            long long *exp_out, tsg_error *err);

/* True when payload's aud is want or an array holding want. */
bool auth_jwt_aud_ok(const json_t *payload, const char *want);

/* Signs payload (compact JSON, keys sorted) as an ES256 JWT with header
 * {"alg":"ES256","typ":"JWT","kid":kid}. *out is malloc'd (caller frees).
 * TSG_EINVAL when key is not P-256, TSG_EINTERNAL when OpenSSL fails. */
tsg_rc auth_jwt_sign_es256(EVP_PKEY *key, const char *kid, const json_t *payload, char **out,
                           tsg_error *err);

/* ------------------------------------------------------------------------
 * JWK (RFC 7517, 7518, 7638)
 * ------------------------------------------------------------------------ */

/* Builds a public key (or a private one when jwk has "d" and private_ok)
 * from a JWK: kty EC with crv P-256 or P-384, or kty RSA (n, e; at least
 * AUTH_RSA_MIN_BITS). The point must be on the curve. Caller frees *out with
 * EVP_PKEY_free. TSG_EINVAL naming the member that is wrong. */
tsg_rc auth_jwk_to_pkey(const json_t *jwk, bool private_ok, EVP_PKEY **out, tsg_error *err);

/* The public JWK of an EC P-256/P-384 or RSA key ({"kty","crv","x","y"} or
 * {"kty","n","e"}); with_private adds "d" (EC only). New reference, NULL on
 * failure. */
json_t *auth_pkey_to_jwk(EVP_PKEY *key, bool with_private);

/* RFC 7638 thumbprint (SHA-256, base64url, 43 chars + NUL) of a public JWK. */
tsg_rc auth_jwk_thumbprint(const json_t *jwk, char out[48], tsg_error *err);

/* A new P-256 key (caller frees), NULL when OpenSSL fails. */
EVP_PKEY *auth_key_generate_p256(void);

/* ------------------------------------------------------------------------
 * Scopes
 * ------------------------------------------------------------------------ */

typedef enum auth_perm {
    AUTH_PERM_C = 1u << 0,
    AUTH_PERM_R = 1u << 1,
    AUTH_PERM_U = 1u << 2,
    AUTH_PERM_D = 1u << 3,
    AUTH_PERM_S = 1u << 4
} auth_perm;
#define AUTH_PERM_ALL 0x1fu

typedef struct auth_scope {
    char type[40]; /* a resource type name (the longest R4 name has 30 bytes), or "*" */
    unsigned perms;
} auth_scope;

typedef struct auth_scopes {
    size_t n;
    auth_scope s[AUTH_SCOPES_MAX];
} auth_scopes;

/* Parses a space-separated scope list (the forms of the top comment). An
 * empty string gives no scopes. Repeated blanks are fine. TSG_EINVAL naming
 * the bad scope; TSG_ELIMIT past AUTH_SCOPES_MAX or AUTH_SCOPE_TEXT_MAX. A
 * type must be an R4 resource type (or *). */
tsg_rc auth_scopes_parse(const char *text, auth_scopes *out, tsg_error *err);

/* True when some scope grants every bit of perms on type. */
bool auth_scopes_allow(const auth_scopes *s, const char *type, unsigned perms);

/* True when every permission of want is granted by have. */
bool auth_scopes_subset(const auth_scopes *want, const auth_scopes *have);

/* Writes s in v2 form ("system/Patient.rs system/Observation.cruds") into out (cap
 * bytes, NUL-terminated). TSG_ELIMIT when it does not fit. */
tsg_rc auth_scopes_format(const auth_scopes *s, char *out, size_t cap);

/* ------------------------------------------------------------------------
 * Client secrets
 * ------------------------------------------------------------------------ */

#define AUTH_SECRET_HASH_MAX 192

/* A new secret: AUTH_SECRET_BYTES random bytes, base64url, into out[64]. */
tsg_rc auth_secret_new(char out[64], tsg_error *err);

/* Hashes secret with a fresh salt and `iterations` (0 = AUTH_PBKDF2_ITERATIONS)
 * into out (the stored form of the top comment). */
tsg_rc auth_secret_hash(const char *secret, unsigned iterations, char out[AUTH_SECRET_HASH_MAX],
                        tsg_error *err);

/* True when secret matches stored (constant-time compare of the hashes);
 * false for a malformed stored value too. */
bool auth_secret_verify(const char *secret, size_t secret_len, const char *stored);

/* ------------------------------------------------------------------------
 * The service: clients, keys, tokens, the gate
 * ------------------------------------------------------------------------ */

typedef struct auth_service auth_service;
typedef struct redis_client redis_client;

/* The authenticated caller of a request (http_request.principal). */
typedef struct auth_principal {
    char client_id[AUTH_ID_MAX];
    char org[AUTH_TEXT_MAX];
    char area[AUTH_TEXT_MAX];
    bool admin;
    long long exp; /* token expiry, seconds */
    auth_scopes scopes;
} auth_principal;

typedef struct auth_config {
    bool enabled;                /* false: the gate lets everything through */
    unsigned token_lifetime_s;   /* access tokens, 60..AUTH_TOKEN_LIFETIME_MAX_S */
    unsigned rate_per_s;         /* requests per second per client; 0 = no limit */
    unsigned rate_burst;         /* bucket size (0 = 2 × rate_per_s) */
    char audience[AUTH_URL_MAX]; /* the FHIR base URL: aud and iss of our tokens;
                                    "" = derived per request from Host */
} auth_config;

/* Creates the service on client (borrowed; must outlive it): loads the
 * gateway's keys from Redis, generating the first one when there is none.
 * Fails with TSG_EIO (Redis), TSG_EINVAL (a stored key is broken). */
tsg_rc auth_service_new(redis_client *client, const auth_config *cfg, auth_service **out,
                        tsg_error *err);
void auth_service_free(auth_service *svc);

/* A client record as the admin command shows it. */
typedef struct auth_client_info {
    char id[AUTH_ID_MAX];
    char org[AUTH_TEXT_MAX];
    char name[AUTH_TEXT_MAX];
    char scope[AUTH_SCOPE_TEXT_MAX];
    char role[16];
    char area[AUTH_TEXT_MAX];
    bool has_jwks;
    bool revoked;
    long long created_ms;
} auth_client_info;

/* Registers a client; *secret_out gets the new secret (64 bytes). jwks_json
 * may be NULL; it must be a JWKS whose every key auth_jwk_to_pkey accepts.
 * org must be "Organization/<id>", role "member" or "admin", scope parse. */
tsg_rc auth_client_create(redis_client *c, const auth_client_info *in, const char *jwks_json,
                          char id_out[AUTH_ID_MAX], char secret_out[64], tsg_error *err);

/* Every client (malloc'd array; caller frees). */
tsg_rc auth_client_list(redis_client *c, auth_client_info **out, size_t *n, tsg_error *err);

/* Marks the client revoked (its tokens are refused from then on). TSG_EINVAL
 * "no client <id>". */
tsg_rc auth_client_revoke(redis_client *c, const char *id, tsg_error *err);

/* Gives the client a new secret (the old one stops working). */
tsg_rc auth_client_rotate(redis_client *c, const char *id, char secret_out[64], tsg_error *err);

/* Makes a new gateway signing key current; the old one is retired (kept in
 * the JWKS for the longest token lifetime). *kid_out gets the new kid. */
tsg_rc auth_key_rotate(redis_client *c, char kid_out[48], tsg_error *err);

/* `tsunagu admin client|key …` (auth_admin.c; argv[0] = "admin"): 0 done,
 * 1 failed (the reason on stderr), 2 usage. Prints JSON on stdout. */
int auth_admin_main(int argc, char **argv);

/* An OAuth answer: status and a JSON body (malloc'd, caller frees). */
typedef struct auth_answer {
    int status;
    char *body;
    char retry_after[16];        /* "" or seconds, for 429 */
    bool www_authenticate;       /* 401 from Basic: add WWW-Authenticate: Basic */
    char client_id[AUTH_ID_MAX]; /* the client, once known ("" before) */
} auth_answer;

/*
 * POST /auth/token. form[0..n) is the x-www-form-urlencoded body,
 * authorization the Authorization header (or NULL), audience the URL of the
 * token endpoint as the client addresses it (the `aud` of assertions),
 * issuer the FHIR base URL (iss and aud of the token we issue), addr the
 * caller's address (NULL: unknown). Fills *ans: 200 {access_token,
 * token_type, expires_in, scope}, or an RFC 6749 error {error,
 * error_description} with 400/401 (503 when Redis fails), or 429 with
 * retry_after once an address or a client id has failed to authenticate
 * AUTH_TOKEN_FAILURES_MAX times within AUTH_TOKEN_FAILURE_WINDOW_S (each
 * failure costs a PBKDF2 or a signature check: the limit bounds the CPU one
 * caller can burn; behind a reverse proxy every caller shares its address).
 */
void auth_token_request(auth_service *svc, const char *form, size_t n, const char *authorization,
                        const char *token_url, const char *issuer, const char *addr,
                        auth_answer *ans);

/* The JWKS of the gateway's public keys (current and not yet expired
 * retired ones), malloc'd JSON. */
char *auth_jwks_json(auth_service *svc);

/* The result of checking a bearer token. */
typedef enum auth_verdict {
    AUTH_OK = 0,
    AUTH_NO_TOKEN,     /* 401, no error code (RFC 6750 §3.1) */
    AUTH_BAD_TOKEN,    /* 401 invalid_token */
    AUTH_FORBIDDEN,    /* 403 insufficient_scope */
    AUTH_RATE_LIMITED, /* 429 */
    AUTH_UNAVAILABLE   /* 503: Redis */
} auth_verdict;

/*
 * Checks "Bearer <token>" (authorization may be NULL) for audience: the
 * signature by a gateway key (kid known, not expired), times, aud, the
 * client not revoked, and the client's rate. Fills *who. err says why for
 * every verdict but AUTH_OK; *retry_after_s is set for AUTH_RATE_LIMITED.
 */
auth_verdict auth_check_bearer(auth_service *svc, const char *authorization, const char *audience,
                               auth_principal *who, unsigned *retry_after_s, tsg_error *err);

/*
 * The permission a FHIR request needs, from its path segments below /fhir
 * and its method (http_method bits): fills up to 1 requirement as (type,
 * perms); *public_ set for /fhir/metadata; *bundle set for POST /fhir (the
 * caller checks the body with auth_bundle_allowed). Returns false when the
 * path is not a FHIR interaction (the handler will answer 404/405 — the gate
 * then requires nothing more than a valid token).
 */
bool auth_fhir_requirement(const char *const *segs, size_t n, unsigned method, bool has_getpages,
                           const char **type, unsigned *perms, bool *extra_everything,
                           bool *public_, bool *bundle);

/* Checks every entry of a JSON transaction/batch body against s; false with
 * err naming the entry (Bundle.entry[i]) the scopes do not allow. Bodies that
 * are not JSON Bundles need *.cruds. */
bool auth_bundle_allowed(const auth_scopes *s, const char *body, size_t n, bool json,
                         tsg_error *err);

/* ------------------------------------------------------------------------
 * Audit (issue 5, item 3)
 *
 * Every request that reaches a route (except the probes /healthz, /readyz,
 * /metrics, /.well-known/…, /auth/jwks and /fhir/metadata) leaves one record
 * in the Redis stream tsg:audit — FHIR interactions, token requests, and the
 * refusals of the gate (401, 403, 429) — before its answer is sent:
 *
 *   tsg:audit  STREAM  id "<ms>-<seq>" (Redis' clock: one trusted, monotonic
 *                      clock for the whole trail), fields i (interaction:
 *                      read, search-type, create, token, …), m (method), p
 *                      (path), q (query), s (HTTP status), c (client id), o
 *                      (its Organization), a (client address), e (the entity:
 *                      Type/id), v (the version a write made of e; "" for
 *                      other requests), d (detail: the error, if any)
 *
 * Durability: the answer leaves only once Redis has acknowledged the record,
 * which with the embedded Redis' appendfsync always is after the AOF fsync.
 *
 *   - A write (create, update, patch, delete, conditional create, a
 *     transaction) carries its record as one more XADD inside its own MULTI
 *     … EXEC (rest_commit → auth_http_record → store_commit_with), with the
 *     status the write answers and the version it made, and sets
 *     http_response.audited to that status. No extra round trip or fsync,
 *     and the write and its record are one atomic step: both are in the AOF
 *     or neither. When EXEC does not run (a version conflict, a watched key
 *     changed) neither is written, and the retry or the answer gets its own
 *     record. One limit of Redis transactions: an XADD that fails while EXEC
 *     runs (tsg:audit is not a stream, which only tampering does) does not
 *     undo the write; the request is still answered 503.
 *   - Every other request (reads, searches, history, a batch, token
 *     requests, the gate's refusals, failures) gets its record from the
 *     finish hook: an XADD on the thread's own connection, waiting for the
 *     reply (auth_audit_record). So does a write whose answer changed after
 *     its commit (its record then says what was sent).
 *
 * A record that cannot be written fails the request with 503.
 *
 * What was measured (tests/bench/auth/run, and A/B runs of the variants
 * alternating on the same machine: 2 shared cores, a virtual disk whose
 * fdatasync takes 66 µs idle and 0.12–0.46 ms under the bench, wrk -c32).
 * A create with its record in its EXEC costs about what it costs with auth
 * alone (one XADD more in a block that is fsynced anyway): the audit's share
 * fell from 11 to 1.4 points of req/s and from +51 to +13 µs of CPU (gateway
 * and Redis) per create. A read is another matter: it wrote nothing before
 * and now waits for an fsync, which Redis does in its main thread, serving
 * nobody meanwhile (one per 3–6 reads; 25–50 % of Redis' time). Reads with
 * auth alone: 43–49 k/s, 30–34 µs CPU; with the record: 17–18 k/s, 62 µs;
 * with the same record and appendfsync no: 27–31 k/s, 49–55 µs. So about
 * two thirds of the loss is the wait for the fsync and the rest the XADD
 * round trip (~10 µs of gateway and ~10 µs of Redis CPU). Two ways to make
 * it cheaper measured no better than an XADD per request, so neither is
 * built:
 *   - group commit, a writer thread batching the records of concurrent
 *     requests into one pipelined write (1 or 2 writers, with or without a
 *     300 µs gathering window): Redis already commits every XADD of one
 *     event-loop turn, from all connections and gateways, with one fsync
 *     (0.16–0.47 fsyncs per read with the writer, 0.17–0.34 without), and
 *     the hand-off to the writer cost the gateway more CPU than the blocking
 *     round trip it replaced (an earlier attempt that also took the creates
 *     made them 4x slower: one batch, one fsync at a time);
 *   - the record in the read's own round trip, by a script that reads and
 *     appends the record with the status it implies (200, 410, 404): the
 *     same req/s within the noise, 8–10 µs less gateway CPU but 4–7 µs more
 *     Redis CPU per read (Lua) — and Redis is the one resource all gateways
 *     share.
 * Reads within the 15 % bar would need the record to become durable after
 * the answer (appendfsync everysec, or a Redis of its own for the trail
 * whose fsyncs do not stop the data's), which the requirement rules out.
 *
 * Reading: GET /fhir/AuditEvent (role admin) renders the records as R4
 * AuditEvent resources (type rest or DICOM 110114 User Authentication,
 * subtype the interaction, action, recorded, outcome 0/4/8, agent = the
 * client (identifier urn:tsunagu:client) and its Organization, source,
 * entity what + query), newest first, with the parameters date (prefixes),
 * agent (client id or Organization/…), entity (Type/id), subtype, outcome,
 * _id, _count (≤ 1000) and _before (the paging cursor of the next link). A
 * request scans at most AUTH_AUDIT_SCAN_MAX records.
 *
 * Retention: records older than audit_retention_days are trimmed (XTRIM
 * MINID, approximately, about once a minute); 0 keeps everything.
 * ------------------------------------------------------------------------ */

#define AUTH_AUDIT_SCAN_MAX  100000u /* records one search looks at */
#define AUTH_AUDIT_COUNT_MAX 1000u   /* _count */

typedef struct auth_audit auth_audit;
typedef struct store_append store_append;

/* What one record holds (strings may be NULL = ""). */
typedef struct auth_audit_event {
    const char *interaction, *method, *path, *query, *client, *org, *addr, *entity, *detail;
    const char *version; /* the version a write of entity made ("" other requests) */
    int status;
} auth_audit_event;

/* The audit trail on client c (borrowed; free the audit first). */
tsg_rc auth_audit_new(redis_client *c, unsigned retention_days, auth_audit **out, tsg_error *err);

/* Frees a (NULL is ignored). */
void auth_audit_free(auth_audit *a);

/* Writes one record and waits until Redis acknowledged it (TSG_EIO with the
 * reason otherwise). Thread-safe. */
tsg_rc auth_audit_record(auth_audit *a, const auth_audit_event *e, tsg_error *err);

/* Trims the records older than the retention (XTRIM MINID ~: whole stream
 * nodes), at most once a minute across threads: otherwise it only reads the
 * clock. The finish hook calls it after every request that leaves a record
 * (however it was written). Failures are logged on stderr. */
void auth_audit_trim(auth_audit *a);

/* The record e as a stream entry for the MULTI … EXEC of a write
 * (store_commit_with): the same stream and fields auth_audit_record writes.
 * The arrays are in arena; the strings are e's (they must outlive the commit).
 * false when the arena is exhausted. */
bool auth_audit_entry(const auth_audit_event *e, tsg_arena *arena, store_append *out);

typedef struct auth_audit_query {
    const char *dates[8];
    size_t n_dates;
    const char *agent, *entity, *subtype, *outcome, *id, *before;
    size_t count; /* 0 = 100 */
} auth_audit_query;

/* Searches the records (see above). Returns the HTTP status: 200 with *out a
 * searchset Bundle (JSON, malloc'd; the next link is next_prefix + "_before=…"),
 * or 400/503/500 with err. */
int auth_audit_search(auth_audit *a, const auth_audit_query *q, const char *next_prefix, char **out,
                      tsg_error *err);

#endif

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
 *      exp, iat, jti (96 bits), scope, org, role (only "admin": a token
 *      without role is a member's), area (omitted when empty). Every
 *      request carries the token, and libmicrohttpd reads it byte by byte
 *      (~10 instructions a byte), so the token says nothing twice: no `typ`,
 *      a 16-character `kid`, no empty or default claims (~430 bytes with a
 *      typical issuer, ~530 before).
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
 * reads). So a busy client costs one script call per lease, not one per request (the
 * cap of 1,024 matters only for bursts over 10,240; at 64 a client reading 75k/s made
 * Redis run the script 1,200 times a second, ~0.35 µs of Redis CPU per read), and
 * the consequences are bounded and documented: a revocation takes effect
 * within AUTH_REVOCATION_CACHE_MS, and each gateway admits at most one lease
 * beyond what the bucket held. The bucket is not written to the AOF (it is
 * ephemeral state; an fsync per read would cost more than the read). Each
 * HTTP thread also keeps the last token it found valid and a 64th of a lease
 * (auth_service.c, thread_memo): a busy client's requests, spread over every
 * thread, then take no shared lock (with the locks, futex calls per read at
 * 32 connections were 2.5 times those with auth off; now about the same).
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
 * read the Redis data can read every patient anyway. `kid` is the first 16
 * characters (96 bits) of the RFC 7638 thumbprint of the public key (keys
 * made before 2026-12-06 keep their whole thumbprint as kid). Rotation (`tsunagu admin key
 * rotate`): a new key becomes current and signs from then on; the old key is marked retired and
 * stays in the JWKS, and is still accepted, until retired time + the longest token lifetime
 * (AUTH_TOKEN_LIFETIME_MAX_S) + skew have passed. A running gateway notices a rotation at its next
 * token request or when a token names a kid it does not know (reloads at most once a second).
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
    1000                                 /* how long what Redis said about a client                \
                                            (revoked, a rate lease) is trusted */
#define AUTH_RATE_LEASE_MAX         1024 /* requests taken from a bucket at once */
#define AUTH_TOKEN_FAILURES_MAX     20   /* failed logins of an address or client id … */
#define AUTH_TOKEN_FAILURE_WINDOW_S 300  /* … within this window, then 429 until it ends */

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
 * {"alg":"ES256","kid":kid}. *out is malloc'd (caller frees).
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
 * — FHIR interactions, token requests, and the refusals of the gate (401,
 * 403, 429) — durable before its answer is sent. The records end up in the
 * Redis stream tsg:audit, where administrators search them:
 *
 *   tsg:audit  STREAM  id "<ms>-<seq>" (when the entry reached Redis), one
 *                      field: r, one or more records as they are, or z, the
 *                      same zstd-compressed (one zstd frame that declares its
 *                      size, at most AUTH_AUDIT_BATCH_MAX bytes unpacked).
 *                      Records, each a frame:
 *     u32 LE payload length, u32 LE CRC-32C of the payload, payload:
 *       u8 1 (the format), i64 LE recorded (µs since 1970, the gateway's
 *       clock when the answer was decided), u16 LE HTTP status, then ten
 *       texts, each u16 LE length + bytes (at most AUTH_AUDIT_FIELD_MAX,
 *       longer ones are cut; no NUL byte): interaction (read, search-type, create, token,
 *       …), method, path, query, client id, its Organization, client
 *       address, entity (Type/id), version (that a write made of the
 *       entity; "" for other requests), detail (the error, if any).
 *   tsg:audit:shipped:<journal id>  STRING  bytes of that journal in tsg:audit
 *
 * Two ways in, one format:
 *
 *   - A write (create, update, patch, delete, conditional create, a
 *     transaction) carries its record as one more XADD (one frame) inside
 *     its own MULTI … EXEC (rest_commit → auth_http_record →
 *     store_commit_with), with the status the write answers and the version
 *     it made, and sets http_response.audited to that status: the write and
 *     its record are one atomic step, durable by the same AOF fsync. When
 *     EXEC does not run (a version conflict, a watched key changed) neither
 *     is written, and the retry or the answer gets its own record. One limit
 *     of Redis transactions: an XADD that fails while EXEC runs (tsg:audit is
 *     not a stream, which only tampering does) does not undo the write; the
 *     request is still answered 503.
 *   - Every other request (reads, searches, history, a batch, token
 *     requests, the gate's refusals, failures, a write whose answer changed
 *     after its commit) appends its frame to the gateway's local journal
 *     (auth_journal_append) before its answer leaves.
 *
 * The journal: a file per gateway process in <data_dir>/audit-journal
 * ("<16 hex digits>.journal": a 32-byte header — "TSGAUDITJOURNAL1" and the
 * id — then frames, then zeros), 128 MiB allocated on disk at once and
 * mapped, held with flock() while its gateway lives; made as "<id>.new" and
 * renamed once locked and with its header on disk, so that no drain sees it
 * half made. How far a record is
 * written before its answer is audit_fsync:
 *   - "interval" (the default): the request copies its frame into the
 *     mapping (the file's page cache: it outlives any crash of the gateway
 *     or of Redis, and a kill -9 loses nothing), and a syncer thread
 *     fdatasyncs the file every AUTH_JOURNAL_SYNC_MS — a power loss or a
 *     kernel crash can lose the records of the last 10 ms. Costs a read
 *     about 1–2 µs (no system call, no waiting).
 *   - "always": the request hands its frame to the syncer thread, which
 *     writes what was handed over meanwhile, fdatasyncs it once for all of
 *     them (group commit), and wakes them; only then does the answer leave.
 *     Survives power loss; each answer waits for the disk (0.1–0.5 ms on
 *     the bench machine's virtual disk), so with few connections req/s fall
 *     by half (tests/bench/auth/run prints both).
 * Either way no Redis round trip, and Redis' main thread never waits for
 * this disk. A shipper thread moves the written frames to Redis every
 * ship_interval_ms (AUTH_JOURNAL_SHIP_MS; at once when AUTH_AUDIT_BATCH_MAX
 * bytes or half of audit_journal_max_mb wait, or a search asks),
 * compressed (zstd level 1: records of one gateway repeat client,
 * organisation, path and clock, and pack about 10:1, at ~900 MB/s; field r
 * when packing would not make them smaller): one
 * script runs XADD tsg:audit * z <packed frames> and then SET
 * tsg:audit:shipped:<id> <offset> — so each frame reaches the stream
 * exactly once, even across crashes (a script, because in MULTI … EXEC the
 * SET would run even when the XADD fails). A full file is fdatasynced and closed, the next one
 * (made ahead by the syncer) takes over, and a closed file is removed once shipped. At start, and
 * every 10 s, the shipper drains journals no process holds (a stopped or crashed gateway's, or
 * another gateway's on the same data dir; not one another gateway drained and removed between
 * our open and flock): their frames after the shipped offset, up to the first
 * torn or damaged frame (a write the crash cut short, whose request was never answered; logged
 * unless only zeros follow). While Redis refuses or is down, frames stay in the journal and
 * shipping retries (50 ms … 1 s); the journal keeps at most audit_journal_max_mb of unshipped
 * records, then requests fail.
 *
 * A record that cannot be written fails the request with 503: the journal
 * failed (a file could not be made, an fdatasync failed: the records not yet
 * on disk fail, a new file is tried every second, the old one is shipped up
 * to what was written), its limit is reached, or a write's XADD failed.
 * (With "interval", an fdatasync that fails in the background cannot fail
 * the requests already answered; it is logged and the journal fails.)
 *
 * Clocks: the recorded time is the gateway's clock (run NTP, as the
 * guideline asks); the entry id is Redis' clock when the entry arrived. A
 * search lists entries newest first by arrival and, within an entry, the
 * newest record first; the date filter is on the recorded time, looking at
 * entries that arrived from 5 minutes before the range to a day after it (a
 * record shipped more than a day late — the journal held it through a
 * longer Redis outage — is found by searches without an upper date bound).
 *
 * What was measured (2026-12-06; README "Security" has the figures): a
 * read's record costs the gateway about 1,200 instructions (callgrind), half
 * of them building the event, and packing it for shipment ~5 instructions a
 * byte at full batches. Unpacked, the shipments made Redis' own CPU per read
 * 0.9 µs higher (perf, per process: reading 256 KiB per XADD off the socket,
 * into the stream, into the AOF, fsynced); packed they no longer show. The
 * kernel's share is not in the instruction count: the syncer's
 * writeback write-protects the mapping's pages, so appending faults again
 * (perf stat at 55k reads/s: ~1,150 page faults, ~5,800 TLB flushes and
 * ~1,100 IPIs per second in the gateway); paired A/B runs put the whole
 * audit at 0 to 3 µs of gateway CPU per read (this VM's noise); shipping
 * every 250 ms instead of 50, zero-filling the files instead of
 * fallocate (no extent conversion at writeback), or the journal on tmpfs
 * measured no different one request at a time. Before the journal, a read's record
 * was an XADD of its own that waited for Redis' AOF fsync, which Redis does in its main thread
 * (serving nobody meanwhile: one per 3–6 reads, 25–50 % of its time): reads
 * lost about 70 % of req/s, and still 35 % with the fsync off (the round
 * trip). Redis-side group commit (a writer thread batching XADDs) and a
 * script that reads and records in one round trip measured no better. In
 * the journal, a syncer thread taking the records and waking their requests
 * (audit_fsync always) cost ~30 % of req/s even without the fdatasync (two
 * hand-offs per request on 2 busy cores), a write() per record ~1 µs: hence
 * the copy into a mapping by the request itself. Waiting appenders sleep on
 * a futex word, not the mutex (with the mutex, the wake-ups queued behind
 * the syncer as long as the fdatasync took).
 *
 * Why shipments gather for 250 ms, not 50: each is one script in Redis, and
 * with appendfsync always one AOF write and fsync in Redis' main thread
 * (LATENCY: aof-fsync-always up to 2 ms), during which every read that needs
 * Redis waits. 20 shipments a second cost reads under load 2–3 % of their
 * rate (9 rotating rounds at 32 connections: 70.4k reads/s shipping every
 * 50 ms, 72.5k every 1,000 ms, 77.4k without audit). At 250 ms a busy gateway
 * ships about 4 times a second (its batches reach AUTH_AUDIT_BATCH_MAX about
 * then), as at 1,000 ms; a search on the same gateway ships first, so only
 * another gateway's newest records are up to 250 ms late.
 *
 * Reading: GET /fhir/AuditEvent (role admin) first ships this gateway's
 * pending records (auth_journal_flush; other gateways' arrive within their
 * ship interval), then renders the records as R4 AuditEvent resources (type
 * rest or DICOM 110114 User Authentication, subtype the interaction, action,
 * recorded, outcome 0/4/8, agent = the client (identifier
 * urn:tsunagu:client) and its Organization, source, entity what + query),
 * with the parameters date (prefixes), agent (client id or
 * Organization/…), entity (Type/id), subtype, outcome, _id, _count (≤ 1000)
 * and _before (the paging cursor of the next link). An AuditEvent's id is
 * "<entry id>-<index of the record in the entry>". A request scans at most
 * AUTH_AUDIT_SCAN_MAX records.
 *
 * Retention: entries older than audit_retention_days are trimmed (XTRIM
 * MINID, approximately, about once a minute); 0 keeps everything.
 * ------------------------------------------------------------------------ */

#define AUTH_AUDIT_SCAN_MAX  100000u /* records one search looks at */
#define AUTH_AUDIT_COUNT_MAX 1000u   /* _count */

#define AUTH_AUDIT_KEY       "tsg:audit"
#define AUTH_AUDIT_BATCH_MAX (1u << 20) /* bytes of records in one entry (unpacked) */
#define AUTH_AUDIT_FIELD_MAX 2048u      /* bytes of one text of a record; longer ones are cut */
#define AUTH_AUDIT_FRAME_MAX (8u + 1u + 8u + 2u + 10u * (2u + AUTH_AUDIT_FIELD_MAX))
#define AUTH_JOURNAL_DIR_MAX 4096u
#define AUTH_JOURNAL_SYNC_MS 10  /* audit_fsync "interval": the journal's fdatasync period */
#define AUTH_JOURNAL_SHIP_MS 250 /* records gather this long before a shipment (see "Audit") */

typedef struct auth_audit auth_audit;
typedef struct auth_journal auth_journal;
typedef struct store_append store_append;

/* What one record holds (strings may be NULL = ""). */
typedef struct auth_audit_event {
    const char *interaction, *method, *path, *query, *client, *org, *addr, *entity, *detail;
    const char *version; /* the version a write of entity made ("" other requests) */
    int status;
} auth_audit_event;

/* A decoded record: e's strings point into buf. */
typedef struct auth_audit_rec {
    auth_audit_event e;
    long long recorded_us; /* µs since 1970 (UTC) */
    char buf[AUTH_AUDIT_FRAME_MAX + 16];
} auth_audit_rec;

/* Writes the frame of e recorded at recorded_us into out[0..cap); returns
 * its length (at most AUTH_AUDIT_FRAME_MAX), 0 when cap is too small. */
size_t auth_audit_frame(const auth_audit_event *e, long long recorded_us, unsigned char *out,
                        size_t cap);

/* The length of the whole, valid frame at p[0..n) (its length fits, its CRC
 * matches, its payload parses); 0 when there is none. */
size_t auth_audit_frame_check(const unsigned char *p, size_t n);

/* Decodes the frame at p[0..n) into *out; returns its length, 0 as above. */
size_t auth_audit_frame_decode(const unsigned char *p, size_t n, auth_audit_rec *out);

/* Unpacks the z field of an entry (z[0..n)) into *out (malloc'd, *len bytes,
 * the frames): TSG_EINVAL when it is not one whole zstd frame declaring a
 * size of at most AUTH_AUDIT_BATCH_MAX bytes and holding that many,
 * TSG_ENOMEM. Does not check the frames. */
tsg_rc auth_audit_batch_unpack(const void *z, size_t n, unsigned char **out, size_t *len,
                               tsg_error *err);

/* The local journal (see above). */
typedef struct auth_journal_options {
    const char *dir;            /* created (0700, with its parents) when missing */
    uint64_t max_backlog_bytes; /* unshipped records before appends fail; 0 = no limit */
    unsigned ship_interval_ms;  /* 0 = AUTH_JOURNAL_SHIP_MS */
    bool fsync_always;          /* audit_fsync "always" (else "interval") */
} auth_journal_options;

typedef struct auth_journal_stats {
    unsigned long long records, syncs, shipments, ship_failures, failures, refused, orphans;
    unsigned long long backlog_bytes;     /* appended, not yet in Redis */
    char ship_error[TSG_ERR_MESSAGE_MAX]; /* the last shipping failure */
} auth_journal_stats;

/* Creates this process' journal file in o->dir and starts the syncer and the
 * shipper (which drains orphaned journals first); records ship through c
 * (borrowed; close the journal first). */
tsg_rc auth_journal_open(redis_client *c, const auth_journal_options *o, auth_journal **out,
                         tsg_error *err);

/* Appends one frame and returns once it is written as audit_fsync says
 * (TSG_OK: in the file's page cache, or with fsync_always on disk), or
 * TSG_EIO when it is not (the journal failed, or holds its limit).
 * Thread-safe. */
tsg_rc auth_journal_append(auth_journal *j, const void *frame, size_t n, tsg_error *err);

/* Returns once every record appended before the call is in Redis; TSG_EIO
 * when a shipment failed meanwhile or timeout_ms passed. Thread-safe. */
tsg_rc auth_journal_flush(auth_journal *j, long timeout_ms, tsg_error *err);

void auth_journal_stats_get(auth_journal *j, auth_journal_stats *out);

/* Stops the threads after writing what was appended and trying once to ship
 * the rest (what is not shipped stays in the file for the next start);
 * removes shipped files. Call when no request appends any more. NULL is
 * ignored. */
void auth_journal_close(auth_journal *j);

/* The audit trail: records to journal j (borrowed; may be NULL only for
 * auth_audit_entry and searches), searches and trims through c. */
tsg_rc auth_audit_new(redis_client *c, auth_journal *j, unsigned retention_days, auth_audit **out,
                      tsg_error *err);

/* Frees a (NULL is ignored). */
void auth_audit_free(auth_audit *a);

/* Writes one record (recorded now) to the journal (auth_journal_append; TSG_EIO
 * with the reason when it cannot). Thread-safe. */
tsg_rc auth_audit_record(auth_audit *a, const auth_audit_event *e, tsg_error *err);

/* Trims the records older than the retention (XTRIM MINID ~: whole stream
 * nodes), at most once a minute across threads, looking at the clock on a
 * thread's first and then every 256th call only. The finish hook calls it after every request that
 * leaves a record (however it was written). Failures are logged on stderr. */
void auth_audit_trim(auth_audit *a);

/* The record e (recorded now) as a stream entry for the MULTI … EXEC of a
 * write (store_commit_with): field r, one frame, in arena. false when the
 * arena is exhausted. */
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

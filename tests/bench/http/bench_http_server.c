/*
 * bench_http_server.c — the HTTP layer with a trivial handler, for
 * tests/bench/http/run: `bench_http_server LISTEN THREADS` serves GET /bench
 * ("ok", 200) on LISTEN (e.g. 127.0.0.1:0), prints the bound port on stdout,
 * and runs until SIGTERM/SIGINT.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "rest/http.h"

static void bench_handler(const http_request *req, http_response *resp, void *ud)
{
    (void)req, (void)ud;
    resp->content_type = "text/plain";
    resp->interaction = "bench";
    tsg_buf_puts(&resp->body, "ok");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_http_server LISTEN THREADS\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    http_config cfg;
    http_config_default(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "%s", argv[1]);
    cfg.threads = (unsigned)strtoul(argv[2], NULL, 10);
    tsg_error err;
    http_server *s = http_server_new(&cfg, &err);
    if (!s || http_route_add(s, "/bench", HTTP_GET, 0, bench_handler, NULL, &err) != TSG_OK ||
        http_server_start(s, &err) != TSG_OK) {
        fprintf(stderr, "bench_http_server: %s\n", err.message);
        return 1;
    }
    printf("%u\n", http_server_port(s));
    fflush(stdout);
    http_server_run(s);
    http_server_free(s);
    return 0;
}

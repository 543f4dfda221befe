/* coord_bench.c — round trips per second through the coordinator protocol, against a raw
 * ZeroMQ echo over the same loopback with the same clients (scripts/bench coordinator).
 *
 *   ct_bench_coord ENDPOINT [--clients N] [--seconds S]
 *       N clients (threads, a DEALER each) say hello, then lease a unit and report it done, over
 *       and over; every reply is one the coordinator sent after its transaction committed
 *   ct_bench_coord --serve-echo
 *       a raw ZeroMQ echo ROUTER (each message back to its sender, nothing else), a process of
 *       its own as the coordinator is: prints `listening on ENDPOINT`, serves until SIGTERM
 *   ct_bench_coord --echo [ENDPOINT] [--clients N] [--seconds S]
 *       the same clients against that echo server at ENDPOINT: what the transport alone gives;
 *       without ENDPOINT, against an echo ROUTER in this process, in the clients' own ZeroMQ
 *       context (one I/O thread for both ends: cheaper than any server process can be)
 *   ct_bench_coord ENDPOINT --groups G [--interval I] [--clients N] [--seconds S]
 *       G simulated groups, each heartbeating every I seconds (default 1), spread over N
 *       sockets: an open loop (each sends on its schedule, not after the last answer), so the
 *       reply latency is the coordinator's under that offered load
 * Prints one JSON object: round_trips, seconds, round_trips_per_s, p50_ms, p99_ms. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cotrain/clock.h"
#include "cotrain/proto.h"

enum { MAX_CLIENTS = 1024, SAMPLES = 1 << 16 };

typedef struct client {
    int index, echo, groups; /* groups: heartbeat mode, this socket's share */
    double interval;
    void *ctx;
    const char *endpoint;
    double seconds;
    long long round_trips;
    double *lat; /* (SAMPLES) seconds */
    int n_lat, failed;
} client_t;

/* One round trip: send text, wait for the answer; the reply (malloc'd) in *reply. */
static int round_trip(void *sock, const char *text, char **reply, double *dt) {
    double t0 = ct_now_s();
    if (zmq_send(sock, text, strlen(text), 0) < 0) return -1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    *dt = ct_now_s() - t0;
    size_t n = zmq_msg_size(&m);
    *reply = malloc(n + 1);
    if (*reply) {
        memcpy(*reply, zmq_msg_data(&m), n);
        (*reply)[n] = '\0';
    }
    zmq_msg_close(&m);
    return *reply ? 0 : -1;
}

/* Heartbeat mode: this socket's groups each send a heartbeat every c->interval seconds, evenly
 * spaced, while replies are read as they come; a reply's latency is found by its req. */
static void heartbeats(client_t *c, void *sock) {
    enum { WINDOW = 1 << 14 };
    double *sent = calloc(WINDOW, sizeof *sent), t0 = ct_now_s(), end = t0 + c->seconds;
    double gap = c->interval / c->groups;
    long long req = 0, answered = 0;
    char text[256];
    while (sent && !c->failed) {
        double now = ct_now_s(), next = t0 + (double)req * gap;
        if (now >= end && answered == req) break;
        if (now >= end + 5) { /* replies lost */
            c->failed = 1;
            break;
        }
        if (now >= next && now < end) {
            ++req;
            snprintf(text, sizeof text,
                     "{\"v\":1,\"type\":\"heartbeat\",\"req\":%lld,\"group\":\"h%d-%lld\","
                     "\"session\":\"%.0f\"}",
                     req, c->index, req % c->groups, t0 * 1e6);
            sent[req % WINDOW] = now;
            if (zmq_send(sock, text, strlen(text), 0) < 0) c->failed = 1;
            continue;
        }
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        double wait = now < end ? next - now : 0.1;
        if (zmq_poll(&it, 1, (long)(wait * 1e3) + 1) <= 0) continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) >= 0) {
            char buf[512];
            size_t n = zmq_msg_size(&m) < sizeof buf - 1 ? zmq_msg_size(&m) : sizeof buf - 1;
            memcpy(buf, zmq_msg_data(&m), n);
            buf[n] = '\0';
            const char *r = strstr(buf, "\"req\":");
            long long k = r ? strtoll(r + 6, NULL, 10) : 0;
            if (!strstr(buf, "\"ok\"") || k < 1 || k > req) {
                fprintf(stderr, "ct_bench_coord: unexpected reply: %s\n", buf);
                c->failed = 1;
            } else if (c->n_lat < SAMPLES) {
                c->lat[c->n_lat++] = ct_now_s() - sent[k % WINDOW];
            }
            answered++;
            c->round_trips++;
        }
        zmq_msg_close(&m);
    }
    free(sent);
}

static void *run_client(void *arg) {
    client_t *c = arg;
    void *sock = zmq_socket(c->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(sock, c->endpoint) != 0) {
        c->failed = 1;
        return NULL;
    }
    if (c->groups) {
        heartbeats(c, sock);
        zmq_close(sock);
        return NULL;
    }
    char text[512], *reply = NULL, shard[64] = "";
    long long req = 0;
    double dt, end = ct_now_s() + c->seconds;
    int64_t epoch = 0, fence = 0;
    snprintf(text, sizeof text, "{\"v\":1,\"type\":\"hello\",\"req\":%lld,\"group\":\"b%d\"}",
             ++req, c->index);
    if (round_trip(sock, text, &reply, &dt) != 0) c->failed = 1;
    free(reply);
    for (int lease = 1; !c->failed && ct_now_s() < end; lease = !lease) {
        if (lease)
            snprintf(text, sizeof text,
                     "{\"v\":1,\"type\":\"lease\",\"req\":%lld,\"group\":"
                     "\"b%d\"}",
                     ++req, c->index);
        else
            snprintf(text, sizeof text,
                     "{\"v\":1,\"type\":\"shard_done\",\"req\":%lld,\"group\":"
                     "\"b%d\",\"shard\":\"%s\",\"epoch\":%lld,\"fence\":%lld}",
                     ++req, c->index, shard, (long long)epoch, (long long)fence);
        reply = NULL;
        if (round_trip(sock, text, &reply, &dt) != 0) {
            c->failed = 1;
            break;
        }
        if (lease && !c->echo) {
            ct_msg_t m;
            int64_t r;
            ct_proto_error_t code;
            ct_err_t e = {0};
            if (ct_msg_parse(reply, strlen(reply), 0, &m, &r, &code, &e) != 0 ||
                ct_msg_string(&m, "shard", shard, sizeof shard, &e) != 0 ||
                ct_msg_uint(&m, "epoch", &epoch, &e) != 0 ||
                ct_msg_uint(&m, "fence", &fence, &e) != 0) {
                fprintf(stderr, "ct_bench_coord: unexpected reply: %s\n", reply);
                c->failed = 1;
            }
            ct_msg_clear(&m);
        }
        free(reply);
        c->round_trips++;
        if (c->n_lat < SAMPLES) c->lat[c->n_lat++] = dt;
    }
    zmq_close(sock);
    return NULL;
}

/* The echo server: [id][msg] back to the sender, until the context ends. */
static void *run_echo(void *sock) {
    for (;;) {
        zmq_msg_t id, msg;
        zmq_msg_init(&id);
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&msg, sock, 0) < 0) break;
        zmq_msg_send(&id, sock, ZMQ_SNDMORE);
        zmq_msg_send(&msg, sock, 0);
    }
    zmq_close(sock);
    return NULL;
}

static volatile sig_atomic_t stop;

static void on_term(int sig) {
    (void)sig;
    stop = 1;
}

/* --serve-echo: the echo in a process of its own, until SIGTERM. */
static int serve_echo(void) {
    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_ROUTER);
    char endpoint[256];
    size_t n = sizeof endpoint;
    if (zmq_bind(sock, "tcp://127.0.0.1:0") != 0 ||
        zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    printf("listening on %s\n", endpoint);
    fflush(stdout);
    while (!stop) {
        zmq_msg_t id, msg;
        zmq_msg_init(&id);
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&msg, sock, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&msg);
            if (zmq_errno() == EINTR) continue;
            break;
        }
        zmq_msg_send(&id, sock, ZMQ_SNDMORE);
        zmq_msg_send(&msg, sock, 0);
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int clients = 64, echo = 0, groups = 0;
    double seconds = 5, interval = 1;
    static const struct option opts[] = {
        {"clients", required_argument, 0, 'c'}, {"seconds", required_argument, 0, 's'},
        {"echo", no_argument, 0, 'e'},          {"serve-echo", no_argument, 0, 'S'},
        {"groups", required_argument, 0, 'g'},  {"interval", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    for (int o; (o = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (o == 'c')
            clients = atoi(optarg);
        else if (o == 's')
            seconds = atof(optarg);
        else if (o == 'e')
            echo = 1;
        else if (o == 'S')
            return serve_echo();
        else if (o == 'g')
            groups = atoi(optarg);
        else if (o == 'i')
            interval = atof(optarg);
        else {
            printf("usage: ct_bench_coord ENDPOINT|--echo [ENDPOINT]|--serve-echo [--clients N] "
                   "[--seconds S] [--groups G [--interval I]]\n");
            return o == 'h' ? 0 : 2;
        }
    }
    if (clients < 1 || clients > MAX_CLIENTS || seconds <= 0 || (!echo && optind >= argc) ||
        groups < 0 || (groups && (echo || groups < clients || !(interval > 0)))) {
        fprintf(stderr, "ct_bench_coord: give ENDPOINT or --echo (see --help)\n");
        return 2;
    }
    void *ctx = zmq_ctx_new(), *echo_sock = NULL;
    char endpoint[256];
    pthread_t echo_thread;
    if (echo && optind < argc) {
        snprintf(endpoint, sizeof endpoint, "%s", argv[optind]);
        echo_sock = NULL; /* the echo server of --serve-echo */
    } else if (echo) {
        size_t n = sizeof endpoint;
        echo_sock = zmq_socket(ctx, ZMQ_ROUTER);
        if (zmq_bind(echo_sock, "tcp://127.0.0.1:0") != 0 ||
            zmq_getsockopt(echo_sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0)
            return 1;
        pthread_create(&echo_thread, NULL, run_echo, echo_sock);
    } else {
        snprintf(endpoint, sizeof endpoint, "%s", argv[optind]);
    }
    client_t *c = calloc((size_t)clients, sizeof *c);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = ct_now_s();
    for (int i = 0; i < clients; i++) {
        c[i] = (client_t){.index = i,
                          .echo = echo,
                          .ctx = ctx,
                          .endpoint = endpoint,
                          .seconds = seconds,
                          .lat = malloc(SAMPLES * sizeof(double)),
                          .groups = groups / clients + (i < groups % clients),
                          .interval = interval};
        pthread_create(&th[i], NULL, run_client, &c[i]);
    }
    long long total = 0;
    int n_lat = 0, failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += c[i].round_trips;
        n_lat += c[i].n_lat;
        failed |= c[i].failed;
    }
    double dt = ct_now_s() - t0;
    double *all = malloc((size_t)(n_lat ? n_lat : 1) * sizeof *all);
    for (int i = 0, k = 0; i < clients; i++)
        for (int j = 0; j < c[i].n_lat; j++)
            all[k++] = c[i].lat[j];
    qsort(all, (size_t)n_lat, sizeof *all, cmp_double);
    double p50 = n_lat ? all[n_lat / 2] * 1e3 : 0, p99 = n_lat ? all[n_lat * 99 / 100] * 1e3 : 0;
    printf("{\"mode\": \"%s\", \"groups\": %d, \"clients\": %d, \"round_trips\": %lld, "
           "\"seconds\": %.3f, "
           "\"round_trips_per_s\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"failed\": %d}\n",
           echo     ? (echo_sock ? "echo_in_process" : "echo")
           : groups ? "heartbeats"
                    : "coordinator",
           groups, clients, total, dt, total / dt, p50, p99, failed);
    fflush(stdout);
    for (int i = 0; i < clients; i++)
        free(c[i].lat);
    free(c), free(th), free(all);
    if (echo_sock) {
        zmq_ctx_shutdown(ctx); /* ends the echo thread's recv */
        pthread_join(echo_thread, NULL);
    }
    zmq_ctx_term(ctx);
    return failed;
}

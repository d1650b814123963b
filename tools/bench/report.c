/* SPDX-License-Identifier: MIT */
/*
 * report: progress, summary, JSON and plot. See report.h for the contract.
 */
#include "report.h"

#include "proto.h"
#include "tlsclient.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static const double qs[] = {0.5, 0.9, 0.99, 0.999, 1.0};
static const char *const qnames[] = {"p50", "p90", "p99", "p99.9", "max"};
#define NR_Q (sizeof(qs) / sizeof(qs[0]))

/* "1,234,567": counts read better grouped. */
static const char *num(char *buf, size_t cap, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *dur(char *buf, size_t cap, uint64_t ns)
{
    if (ns < 1000)
        snprintf(buf, cap, "%llu ns", (unsigned long long)ns);
    else if (ns < 1000000)
        snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, cap, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", (double)ns / 1e9);
    return buf;
}

static double per(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static bool messaging(const struct bench_opts *o)
{
    return o->scenario == SC_CHAT || o->scenario == SC_FANOUT || o->scenario == SC_ECHO;
}

static uint64_t lost(const struct bench_result *r)
{
    return r->tot.expected > r->tot.received ? r->tot.expected - r->tot.received : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Progress
 * -------------------------------------------------------------------------------------------*/

void report_progress(FILE *tty, const struct bench_result *r, double t, double msgs_per_s)
{
    char a[32], b[32], c[32];
    fprintf(tty, "\r\033[K[%6.1fs] conns %s/%s", t, num(a, sizeof(a), r->tot.open),
            num(b, sizeof(b), r->o->connections));
    if (r->tot.failed)
        fprintf(tty, " (%s failed)", num(a, sizeof(a), r->tot.failed));
    if (messaging(r->o))
        fprintf(tty, "  %s msgs/s  p99 %s  rcvd %s", num(a, sizeof(a), (uint64_t)msgs_per_s),
                dur(b, sizeof(b), hist_quantile(&r->lat, 0.99)),
                num(c, sizeof(c), r->tot.received));
    else
        fprintf(tty, "  handshake p99 %s", dur(b, sizeof(b), hist_quantile(&r->hs, 0.99)));
    fflush(tty);
}

void report_progress_end(FILE *tty)
{
    fputs("\r\033[K", tty);
    fflush(tty);
}

/* ---------------------------------------------------------------------------------------------
 * Summary
 * -------------------------------------------------------------------------------------------*/

static void quantiles(FILE *f, const char *label, const struct hist *h)
{
    char b[32];
    fprintf(f, "  %-12s", label);
    if (h->count == 0) {
        fputs(" no samples\n", f);
        return;
    }
    for (size_t i = 0; i < NR_Q; i++)
        fprintf(f, " %s %s ", qnames[i], dur(b, sizeof(b), hist_quantile(h, qs[i])));
    fprintf(f, "(mean %s, %s samples)\n", dur(b, sizeof(b), (uint64_t)hist_mean(h)),
            num((char[32]){0}, 32, h->count));
}

static void summary_plan(FILE *f, const struct bench_result *r)
{
    const struct bench_opts *o = r->o;
    char a[32], b[32];
    fprintf(f, "ringcast-bench %s %s (protocol %s, %u worker%s)\n", plan_scenario_name(o->scenario),
            o->url, o->proto->name, r->workers, r->workers == 1 ? "" : "s");
    switch (o->scenario) {
    case SC_CHAT:
        fprintf(f,
                "  plan         %s clients in %s rooms of %u, %.0f publishes/s for %.1f s "
                "(+%.1f s warmup), payload %u B\n",
                num(a, sizeof(a), o->connections), num(b, sizeof(b), plan_nr_rooms(o)),
                o->room_size, o->rate, o->duration, o->warmup, o->payload);
        break;
    case SC_FANOUT:
    case SC_ECHO:
        if (o->rate > 0)
            fprintf(f, "  plan         %s clients, %.0f publishes/s for %.1f s, payload %u B\n",
                    num(a, sizeof(a), o->connections), o->rate, o->duration, o->payload);
        else
            fprintf(f, "  plan         %s clients, %u in flight%s for %.1f s, payload %u B\n",
                    num(a, sizeof(a), o->connections), o->inflight,
                    o->scenario == SC_ECHO ? " per connection" : "", o->duration, o->payload);
        break;
    case SC_HOLD:
        fprintf(f, "  plan         hold %s connections for %.1f s\n",
                num(a, sizeof(a), o->connections), o->duration);
        break;
    case SC_RAMP:
        fprintf(f, "  plan         add %.0f connections/s up to %s, at most %.0f s\n", o->rate,
                num(a, sizeof(a), o->connections), o->duration);
        break;
    }
    if (o->personal)
        fputs("               2 subscriptions per client: its room's channel and personal-N "
              "(nothing published there)\n",
              f);
}

/* Handshakes of one kind per second, first ClientHello to last completion; NAN (null, "-")
 * with fewer than two: a rate needs a span. */
static double tls_rate(uint64_t n, uint64_t first, uint64_t last)
{
    return n >= 2 && last > first ? (double)n / ((double)(last - first) / 1e9) : NAN;
}

static void summary_tls(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    char a[32], b[32], c[32], d[32], e[32], g[32];
    double fr = tls_rate(t->tls_full, t->t_full_first, t->t_full_last);
    double rr = tls_rate(t->tls_resumed, t->t_resumed_first, t->t_resumed_last);
    fprintf(f, "  tls          %s, %s full (%s/s), %s resumed (%s/s) of %s offered, %s failed",
            r->tls_suite[0] ? r->tls_suite : "no suite agreed", num(a, sizeof(a), t->tls_full),
            fr > 0 ? num(b, sizeof(b), (uint64_t)fr) : "-", num(c, sizeof(c), t->tls_resumed),
            rr > 0 ? num(d, sizeof(d), (uint64_t)rr) : "-", num(e, sizeof(e), t->tls_offered),
            num(g, sizeof(g), t->tls_errors));
    if (t->first_tls_error) {
        char text[160];
        fprintf(f, " (first: %s)", tlsc_strerror(t->first_tls_error, text, sizeof(text)));
    }
    fprintf(f, "%s\n", r->o->tls_ca[0] ? ", certificate verified" : "");
    if (r->hs_full.count)
        quantiles(f, "tls full", &r->hs_full);
    if (r->hs_resumed.count)
        quantiles(f, "tls resumed", &r->hs_resumed);
}

static void summary_connections(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    char a[32], b[32], c[32], d[32];
    fprintf(f, "  connections  %s/%s established in %.2f s (%s handshakes/s), %s failed",
            num(a, sizeof(a), t->established), num(b, sizeof(b), r->o->connections), r->connect_s,
            num(c, sizeof(c), (uint64_t)per((double)t->established, r->connect_s)),
            num(d, sizeof(d), t->failed));
    if (t->failed) {
        fprintf(f,
                " (refused %llu, connect errors %llu, timeouts %llu, protocol %llu, "
                "client limit %llu",
                (unsigned long long)t->refused, (unsigned long long)t->connect_errors,
                (unsigned long long)t->hs_timeouts, (unsigned long long)t->proto_errors,
                (unsigned long long)t->client_limit);
        if (r->o->tls)
            fprintf(f, ", TLS %llu", (unsigned long long)t->tls_errors);
        if (t->first_status)
            fprintf(f, "; first refusal HTTP %d", t->first_status);
        if (t->first_errno)
            fprintf(f, "; first error: %s", strerror(t->first_errno));
        fputc(')', f);
    }
    fprintf(f, ", %s held at the end\n", num(a, sizeof(a), r->held));
    quantiles(f, "handshake", &r->hs);
    if (r->o->tls)
        summary_tls(f, r);
    if (r->o->scenario == SC_RAMP)
        fprintf(f, "  limit        %s connections: %s\n", num(a, sizeof(a), r->limit),
                r->limit_reason);
}

static void summary_messages(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    char a[32], b[32], c[32], d[32], e[32];
    uint64_t l = lost(r);
    fprintf(f,
            "  messages     %s published (%.1f/s), %s expected, %s received (%s/s), "
            "lost %s (%.4f%%)",
            num(a, sizeof(a), t->published), per((double)t->published, r->run_s),
            num(b, sizeof(b), t->expected), num(c, sizeof(c), t->received),
            num(d, sizeof(d), (uint64_t)per((double)t->received, r->run_s)), num(e, sizeof(e), l),
            100.0 * per((double)l, (double)t->expected));
    if (r->peak_rate > 0)
        fprintf(f, ", peak %s/s", num(a, sizeof(a), (uint64_t)r->peak_rate));
    if (t->seq_tracked)
        fprintf(f, ", reordered %llu, duplicates %llu\n", (unsigned long long)t->reordered,
                (unsigned long long)t->duplicates);
    else
        fputs(", reordering not tracked (too many publishers per client)\n", f);
    if (t->skipped || t->malformed || t->unexpected)
        fprintf(f,
                "  anomalies    %llu picks of a closed client, %llu malformed, "
                "%llu unexpected\n",
                (unsigned long long)t->skipped, (unsigned long long)t->malformed,
                (unsigned long long)t->unexpected);
    quantiles(f, r->o->scenario == SC_ECHO ? "round trip" : "latency", &r->lat);
    if (r->o->stamp_schedule)
        fputs("               (from the scheduled send time: the send lag below is included)\n", f);
    quantiles(f, "send lag", &r->lag);
}

/* hold: the server's RSS growth from before the first connect to the end of the hold, per
 * connection held then (a server that frees handshake memory late shows it here). */
static double held_rss_per(const struct bench_result *r)
{
    if (r->o->scenario != SC_HOLD || !r->srv_run_end.rss_kb)
        return NAN;
    return per(((double)r->srv_run_end.rss_kb - (double)r->srv_base.rss_kb) * 1024.0,
               (double)r->held);
}

static void summary_costs(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    char a[32];
    fprintf(f, "  receive      %.2f frames per recv, %s pings answered\n",
            per((double)t->rx_frames, (double)t->recvs), num(a, sizeof(a), t->pings));
    if (messaging(r->o))
        fprintf(f, "  waits        %.3f blocking waits per delivery (poll %u us before blocking)\n",
                per((double)t->waits_run, (double)t->received), r->o->poll_us);
    fprintf(f,
            "  closing      %llu clean, %llu forced; closed by the server: %llu "
            "(1000: %llu, 1001: %llu, 1008: %llu, other: %llu)\n",
            (unsigned long long)t->close_clean, (unsigned long long)t->close_forced,
            (unsigned long long)t->dropped, (unsigned long long)t->close_codes[CC_1000],
            (unsigned long long)t->close_codes[CC_1001],
            (unsigned long long)t->close_codes[CC_1008],
            (unsigned long long)t->close_codes[CC_OTHER]);
    if (r->have_server) {
        double rss_per =
            per(((double)r->srv_connected.rss_kb - (double)r->srv_base.rss_kb) * 1024.0,
                (double)t->established);
        double hs_cpu =
            per((double)(r->srv_connected.cpu_us - r->srv_base.cpu_us), (double)t->established);
        fprintf(f,
                "  server       pid %d: RSS %.1f MB -> %.1f MB (%.0f B per connection), "
                "peak %.1f MB; CPU %.1f us per handshake",
                (int)r->o->pid, (double)r->srv_base.rss_kb / 1024.0,
                (double)r->srv_connected.rss_kb / 1024.0, rss_per,
                (double)r->srv_rss_peak_kb / 1024.0, hs_cpu);
        if (messaging(r->o))
            fprintf(f, ", %.2f us per delivery",
                    per((double)(r->srv_run_end.cpu_us - r->srv_run_start.cpu_us),
                        (double)t->received));
        if (r->o->scenario == SC_HOLD && r->srv_run_end.rss_kb)
            fprintf(f, "; RSS at the end of the hold %.1f MB (%.0f B per connection held)",
                    (double)r->srv_run_end.rss_kb / 1024.0, held_rss_per(r));
        fputc('\n', f);
    }
    fprintf(f, "  client       CPU %.2f s, %.1f us per handshake", (double)r->client_cpu_us / 1e6,
            per((double)r->client_cpu_us_connect, (double)t->established));
    if (r->o->scenario != SC_RAMP)
        fprintf(f, " (busiest worker %.0f%% of a core while %s)", r->client_busiest * 100,
                r->o->scenario == SC_HOLD ? "holding" : "publishing and draining");
    if (messaging(r->o)) {
        char b[32];
        fprintf(f, ", %.2f us per delivery, send lag max %s (%llu late > 1 ms)",
                per((double)r->client_cpu_us_run, (double)t->received),
                dur(b, sizeof(b), t->max_lag_ns), (unsigned long long)t->late);
    }
    fputc('\n', f);
}

void report_summary(FILE *f, const struct bench_result *r)
{
    summary_plan(f, r);
    summary_connections(f, r);
    if (messaging(r->o))
        summary_messages(f, r);
    summary_costs(f, r);
    if (r->client_busiest > 0.9)
        fputs("  warning: a worker used over 90% of a core: the load generator may have been "
              "the bottleneck (add --workers)\n",
              f);
    if (messaging(r->o) && lost(r))
        fputs("  warning: deliveries were lost\n", f);
    if (r->interrupted)
        fputs("  warning: interrupted before the end\n", f);
    if (r->killed)
        fprintf(f, "  warning: %u workers had not finished closing and were killed\n", r->killed);
    if (r->error[0])
        fprintf(f, "  error: %s\n", r->error);
}

bool report_ok(const struct bench_result *r)
{
    const struct bench_opts *o = r->o;
    return !r->error[0] && !r->interrupted &&
           (o->scenario == SC_RAMP || r->held == o->connections) && (!messaging(o) || lost(r) == 0);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 * -------------------------------------------------------------------------------------------*/

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

static void json_hist_us(FILE *f, const struct hist *h)
{
    fprintf(f, "{\"count\":%llu", (unsigned long long)h->count);
    for (size_t i = 0; i < NR_Q; i++) {
        fprintf(f, ",\"%s\":", qnames[i]);
        json_num(f, (double)hist_quantile(h, qs[i]) / 1e3);
    }
    fputs(",\"mean\":", f);
    json_num(f, hist_mean(h) / 1e3);
    fputc('}', f);
}

#define U(x) ((unsigned long long)(x))

static void json_connections(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    fprintf(f,
            ",\"connections\":{\"target\":%u,\"attempted\":%llu,\"established\":%llu,"
            "\"held\":%llu,\"failed\":%llu,\"refused\":%llu,\"connect_errors\":%llu,"
            "\"timeouts\":%llu,\"protocol_errors\":%llu,\"client_limit\":%llu,"
            "\"first_status\":%d,\"first_errno\":",
            r->o->connections, U(t->attempted), U(t->established), U(r->held), U(t->failed),
            U(t->refused), U(t->connect_errors), U(t->hs_timeouts), U(t->proto_errors),
            U(t->client_limit), t->first_status);
    json_str(f, t->first_errno ? strerror(t->first_errno) : "");
    fputs(",\"connect_s\":", f);
    json_num(f, r->connect_s);
    fputs(",\"handshake_rate\":", f);
    json_num(f, per((double)t->established, r->connect_s));
    fputs(",\"handshake_latency_us\":", f);
    json_hist_us(f, &r->hs);
    fprintf(f, ",\"tls_errors\":%llu", U(t->tls_errors));
    fprintf(f,
            ",\"closed_by_server\":%llu,\"close_clean\":%llu,\"close_forced\":%llu,"
            "\"close_codes\":{\"1000\":%llu,\"1001\":%llu,\"1008\":%llu,\"other\":%llu}}",
            U(t->dropped), U(t->close_clean), U(t->close_forced), U(t->close_codes[CC_1000]),
            U(t->close_codes[CC_1001]), U(t->close_codes[CC_1008]), U(t->close_codes[CC_OTHER]));
    if (r->o->scenario == SC_RAMP) {
        fprintf(f, ",\"limit\":{\"connections\":%llu,\"reason\":", U(r->limit));
        json_str(f, r->limit_reason);
        fputc('}', f);
    }
}

static void json_tls(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    char e[160] = "";
    if (t->first_tls_error)
        tlsc_strerror(t->first_tls_error, e, sizeof(e));
    fprintf(f,
            ",\"tls\":{\"full\":%llu,\"resumed\":%llu,\"offered\":%llu,\"errors\":%llu,"
            "\"verify\":%s,\"first_error\":",
            U(t->tls_full), U(t->tls_resumed), U(t->tls_offered), U(t->tls_errors),
            r->o->tls_ca[0] ? "true" : "false");
    json_str(f, e);
    fputs(",\"suite\":", f);
    json_str(f, r->tls_suite);
    fputs(",\"full_rate\":", f);
    json_num(f, tls_rate(t->tls_full, t->t_full_first, t->t_full_last));
    fputs(",\"resumed_rate\":", f);
    json_num(f, tls_rate(t->tls_resumed, t->t_resumed_first, t->t_resumed_last));
    fputs(",\"full_latency_us\":", f);
    json_hist_us(f, &r->hs_full);
    fputs(",\"resumed_latency_us\":", f);
    json_hist_us(f, &r->hs_resumed);
    fputc('}', f);
}

static void json_messages(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    fprintf(f,
            ",\"messages\":{\"published\":%llu,\"expected\":%llu,\"received\":%llu,"
            "\"lost\":%llu,\"reordered\":%llu,\"duplicates\":%llu,\"seq_tracked\":%s,"
            "\"malformed\":%llu,\"unexpected\":%llu,\"skipped\":%llu,"
            "\"publisher_echoes\":%llu,\"publish_rate\":",
            U(t->published), U(t->expected), U(t->received), U(lost(r)), U(t->reordered),
            U(t->duplicates), t->seq_tracked ? "true" : "false", U(t->malformed), U(t->unexpected),
            U(t->skipped), U(t->echoes));
    json_num(f, per((double)t->published, r->run_s));
    fputs(",\"deliveries_per_s\":", f);
    json_num(f, per((double)t->received, r->run_s));
    fputs(",\"deliveries_per_s_peak\":", f);
    json_num(f, r->peak_rate);
    fputs(",\"latency_us\":", f);
    json_hist_us(f, &r->lat);
    fprintf(f, ",\"stamp\":\"%s\",\"send_lag_us\":", r->o->stamp_schedule ? "schedule" : "send");
    json_hist_us(f, &r->lag);
    fputc('}', f);
}

static void json_costs(FILE *f, const struct bench_result *r)
{
    const struct worker_stats *t = &r->tot;
    if (r->have_server) {
        fprintf(f,
                ",\"server\":{\"pid\":%d,\"rss_base_kb\":%llu,\"rss_connected_kb\":%llu,"
                "\"rss_peak_kb\":%llu,\"rss_per_conn_bytes\":",
                (int)r->o->pid, U(r->srv_base.rss_kb), U(r->srv_connected.rss_kb),
                U(r->srv_rss_peak_kb));
        json_num(f, per(((double)r->srv_connected.rss_kb - (double)r->srv_base.rss_kb) * 1024.0,
                        (double)t->established));
        fputs(",\"cpu_us_per_handshake\":", f);
        json_num(
            f, per((double)(r->srv_connected.cpu_us - r->srv_base.cpu_us), (double)t->established));
        fputs(",\"cpu_us_per_delivery\":", f);
        json_num(f, messaging(r->o) ? per((double)(r->srv_run_end.cpu_us - r->srv_run_start.cpu_us),
                                          (double)t->received)
                                    : NAN);
        fputs(",\"cpu_s_run\":", f);
        json_num(f, (double)(r->srv_run_end.cpu_us - r->srv_run_start.cpu_us) / 1e6);
        fputs(",\"rss_held_kb\":", f);
        json_num(f, r->o->scenario == SC_HOLD && r->srv_run_end.rss_kb
                        ? (double)r->srv_run_end.rss_kb
                        : NAN);
        fputs(",\"rss_per_conn_held_bytes\":", f);
        json_num(f, held_rss_per(r));
        fputc('}', f);
    }
    fputs(",\"client\":{\"cpu_s\":", f);
    json_num(f, (double)r->client_cpu_us / 1e6);
    fputs(",\"cpu_s_connect\":", f);
    json_num(f, (double)r->client_cpu_us_connect / 1e6);
    fputs(",\"cpu_s_run\":", f);
    json_num(f, (double)r->client_cpu_us_run / 1e6);
    fputs(",\"cpu_us_per_handshake\":", f);
    json_num(f, per((double)r->client_cpu_us_connect, (double)t->established));
    fputs(",\"busiest_worker_core_share\":", f);
    json_num(f, r->client_busiest);
    fputs(",\"cpu_us_per_delivery\":", f);
    json_num(f, messaging(r->o) ? per((double)r->client_cpu_us_run, (double)t->received) : NAN);
    fputs(",\"waits_per_delivery\":", f);
    json_num(f, messaging(r->o) ? per((double)t->waits_run, (double)t->received) : NAN);
    fputs(",\"frames_per_recv\":", f);
    json_num(f, per((double)t->rx_frames, (double)t->recvs));
    fprintf(f, ",\"max_schedule_lag_us\":");
    json_num(f, (double)t->max_lag_ns / 1e3);
    fprintf(f,
            ",\"late_publishes\":%llu,\"pings\":%llu,\"rx_bytes\":%llu,\"tx_bytes\":%llu,"
            "\"nobufs\":%llu}",
            U(t->late), U(t->pings), U(t->rx_bytes), U(t->tx_bytes), U(t->nobufs));
}

void report_json(FILE *f, const struct bench_result *r)
{
    const struct bench_opts *o = r->o;
    fputs("{\"tool\":\"ringcast-bench\",\"scenario\":", f);
    json_str(f, plan_scenario_name(o->scenario));
    fputs(",\"url\":", f);
    json_str(f, o->url);
    fputs(",\"protocol\":", f);
    json_str(f, o->proto->name);
    fprintf(f, ",\"params\":{\"connections\":%u,\"room_size\":%u,\"rate\":", o->connections,
            o->room_size);
    json_num(f, o->rate);
    fputs(",\"duration\":", f);
    json_num(f, o->duration);
    fputs(",\"warmup\":", f);
    json_num(f, o->warmup);
    fprintf(f,
            ",\"payload\":%u,\"inflight\":%u,\"workers\":%u,\"binary\":%s,\"tls\":%s,"
            "\"tls_resume\":%s,\"poll_us\":%u,\"personal\":%s}",
            o->payload, o->inflight, r->workers, o->binary ? "true" : "false",
            o->tls ? "true" : "false", o->tls_resume ? "true" : "false", o->poll_us,
            o->personal ? "true" : "false");
    fputs(",\"wall_s\":", f);
    json_num(f, r->wall_s);
    fputs(",\"run_s\":", f);
    json_num(f, r->run_s);
    json_connections(f, r);
    if (o->tls)
        json_tls(f, r);
    if (messaging(o))
        json_messages(f, r);
    json_costs(f, r);
    fprintf(f, ",\"interrupted\":%s,\"workers_killed\":%u,\"error\":",
            r->interrupted ? "true" : "false", r->killed);
    json_str(f, r->error);
    fputs(",\"ok\":", f);
    fputs(report_ok(r) ? "true" : "false", f);
    fputs("}\n", f);
    fflush(f);
}

/* ---------------------------------------------------------------------------------------------
 * Plot
 * -------------------------------------------------------------------------------------------*/

/* Latency percentile spectrum, HdrHistogram style: x = 1 / (1 - quantile), log scale. */
static void plot_spectrum(FILE *g, const struct hist *h)
{
    fputs("$LAT << EOD\n", g);
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_NR_BUCKETS && h->count; i++) {
        if (!h->counts[i])
            continue;
        double lo_q = (double)seen / (double)h->count;
        seen += h->counts[i];
        double hi_q = (double)seen / (double)h->count;
        uint64_t v = hist_bucket_high(i);
        if (v > h->max)
            v = h->max;
        double ms = (double)v / 1e6;
        fprintf(g, "%.9g %.6g\n", 1.0 / (1.0 - lo_q), ms);
        fprintf(g, "%.9g %.6g\n", hi_q >= 1.0 ? 1e6 : 1.0 / (1.0 - hi_q), ms);
    }
    if (!h->count)
        fputs("1 0\n", g);
    fputs("EOD\n", g);
}

static void plot_series(FILE *g, const struct bench_result *r)
{
    fputs("$RAMP << EOD\n", g);
    for (size_t i = 0; i < r->nr_series; i++) {
        /* Deliveries/s over the last five samples (0.5 s): 100 ms alone is mostly jitter. */
        const struct series_point *p = &r->series[i], *q = &r->series[i >= 5 ? i - 5 : 0];
        double rate = p->t > q->t ? (double)(p->received - q->received) / (p->t - q->t) : 0;
        fprintf(g, "%.3f %llu %.1f\n", p->t, U(p->open), rate);
    }
    if (!r->nr_series)
        fputs("0 0 0\n", g);
    fputs("EOD\n", g);
}

static void plot_script(FILE *g, const struct bench_result *r, const char *png)
{
    bool msgs = messaging(r->o);
    const struct hist *h = msgs ? &r->lat : &r->hs;
    plot_spectrum(g, h);
    plot_series(g, r);
    fputs("set terminal pngcairo size 1200,1000 noenhanced font ',10'\n", g);
    fputs("set output ", g);
    json_str(g, png);
    fprintf(g, "\nset multiplot layout 2,1 title 'ringcast-bench %s %s'\n",
            plan_scenario_name(r->o->scenario), r->o->url);
    fputs("set grid\nset logscale x\nset xrange [1:1e6]\n", g);
    /* Tic labels are formats in gnuplot: '%%' prints a percent sign. */
    fputs("set xtics ('0%%' 1, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
          "'99.999%%' 100000)\n",
          g);
    fprintf(g, "set xlabel 'percentile'\nset ylabel '%s (ms)'\n",
            msgs ? (r->o->scenario == SC_ECHO ? "round trip" : "delivery latency")
                 : "handshake latency");
    fprintf(g, "plot $LAT using 1:2 with lines lw 2 title '%s distribution'\n",
            msgs ? "latency" : "handshake");
    fputs("unset logscale x\nset xrange [*:*]\nset xtics auto\n", g);
    fputs("set xlabel 'time (s)'\nset ylabel 'open connections'\n", g);
    if (msgs) {
        fputs("set y2label 'deliveries/s'\nset ytics nomirror\nset y2tics\n", g);
        fputs("plot $RAMP using 1:2 with lines lw 2 title 'open connections', "
              "$RAMP using 1:3 axes x1y2 with lines title 'deliveries/s'\n",
              g);
    } else {
        fputs("plot $RAMP using 1:2 with lines lw 2 title 'open connections'\n", g);
    }
    fputs("unset multiplot\n", g);
}

int report_plot(const struct bench_result *r, const char *png)
{
    if (strchr(png, '\'') || strchr(png, '"'))
        return -EINVAL;
    FILE *g = popen("gnuplot 2>/dev/null", "w");
    if (g) {
        plot_script(g, r, png);
        int st = pclose(g);
        if (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            return 0;
    }
    /* No gnuplot (or it failed): leave the script so the chart can be drawn elsewhere. */
    char path[600];
    snprintf(path, sizeof(path), "%s.gp", png);
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    plot_script(f, r, png);
    fclose(f);
    return -ENOENT;
}

/* Concurrent HTTP(S) fetching with libcurl's multi interface, for ingest.
 *
 * fetch_run() fetches a batch of URLs with at most `concurrency` transfers
 * in flight and at most `per_host` to any one host, reusing connections
 * (keep-alive: the multi handle keeps the connection cache, and the easy
 * handles are reused). Each URL ends with exactly one callback carrying its
 * final status in the ingest vocabulary (schemas/ingest_status.md): "ok",
 * "http_<code>", "timeout", "too_large", "too_many_redirects", "bad_scheme",
 * "connect_error", "dns_error", "truncated", "network_error", ...
 *
 * Limits: connect and total timeouts; the body is aborted as soon as it
 * exceeds max_bytes; at most max_redirects redirects; http/https only, plus
 * file:// when allow_file (never as a redirect target). Timeouts, 5xx, 429,
 * connection failures and truncated bodies are retried up to `retries` times
 * with exponential backoff and jitter; a Retry-After header replaces the
 * backoff (capped at max_retry_after_ms). Other 4xx are final.
 *
 * Every request sends the User-Agent user_agent. With respect_optout, a 2xx
 * response whose X-Robots-Tag header carries one of the opt-out directives
 * (fetch_optout_directive) for every robot, or for the User-Agent's product
 * token ("nboost-ingest: noai"), is "opted_out": the transfer is aborted at
 * its first body byte and nothing of it is kept.
 *
 * An "http_<code>" failure's detail is the status line's code and reason
 * phrase ("HTTP 404 Not Found"; the standard phrase when the server sent
 * none, as HTTP/2 servers do).
 *
 * stop: when *stop becomes non-zero (a signal handler sets it), fetch_run
 * abandons the transfers in flight and the queue and returns 1; no
 * callback runs for what was abandoned.
 *
 * Single-threaded: callbacks run on the calling thread, between transfers,
 * so a callback that decodes delays the network only for that long. tick,
 * when set, is called from the loop at least every 0.2 s, whether or not
 * anything arrives (progress output during network stalls). */
#ifndef NB_FETCH_H
#define NB_FETCH_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>

typedef struct {
	int concurrency;           /* transfers in flight, default 16 */
	int per_host;              /* per host, default 8 */
	long connect_timeout_ms;   /* default 10000 */
	long timeout_ms;           /* whole transfer, default 30000 */
	size_t max_bytes;          /* body limit, default 20 MB */
	int max_redirects;         /* default 5 */
	int retries;               /* extra attempts, default 3 */
	long backoff_ms;           /* first retry delay, doubled per attempt, default 1000 */
	long max_retry_after_ms;   /* cap on Retry-After and backoff, default 60000 */
	int allow_file;            /* accept file:// URLs, default 0 */
	uint64_t seed;             /* jitter */
	const char *user_agent;    /* NULL: FETCH_USER_AGENT */
	int respect_optout;        /* X-Robots-Tag opt-outs, default 1 */
	volatile sig_atomic_t *stop; /* NULL, or a flag that stops fetch_run */
	void (*tick)(void *ctx);   /* called with fetch_run's ctx; NULL: none */
} fetch_opts;

#define FETCH_USER_AGENT "nboost-ingest/1"

void fetch_opts_default(fetch_opts *o);

typedef struct {
	size_t index;              /* position in the urls array */
	const char *status;        /* see above; valid during the callback (copy it) */
	long http_code;            /* last HTTP status, 0 if none */
	const uint8_t *body;       /* valid only during the callback; NULL unless ok */
	size_t len;
	int attempts;              /* 1 + retries used */
	const char *detail;        /* curl's message or "", valid during the callback */
} fetch_result;

/* Called once per URL, in completion order. */
typedef void (*fetch_cb)(void *ctx, const fetch_result *r);

typedef struct {
	double wall_s;             /* whole fetch_run */
	double callback_s;         /* inside callbacks (decode etc.) */
	uint64_t bytes;            /* body bytes received, all attempts */
	uint64_t attempts, retries;
} fetch_stats;

/* Fetches urls[0..n). Returns 0 after every callback ran, 1 when *o->stop
 * was raised (some callbacks did not run), or nb_error when libcurl cannot
 * be set up (then no callback ran). stats may be NULL. */
int fetch_run(const fetch_opts *o, const char *const *urls, size_t n, fetch_cb cb, void *ctx,
	      fetch_stats *stats);

/* Whether a final status is worth fetching again on a later run
 * (timeouts, 5xx, 429, connection problems). */
int fetch_status_retryable(const char *status);

/* 1 when one X-Robots-Tag header value (without the "X-Robots-Tag:" name)
 * opts out of use by the robot whose product token is ua_token (compared
 * case-insensitively): a comma-separated directive list, optionally after
 * "token:" naming one robot (a list for another robot does not count).
 * The opt-out directives are those img2dataset refuses by default, noai,
 * noimageai, noindex and noimageindex, plus none (noindex + nofollow).
 * On 1, *which names the directive. */
int fetch_optout_directive(const char *value, const char *ua_token, const char **which);

/* The standard reason phrase of an HTTP status code, "" if unknown. */
const char *fetch_reason_phrase(long code);

#endif

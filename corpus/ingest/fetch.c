/* The libcurl multi loop behind fetch_run(): slots of reusable easy handles,
 * a queue of requests with not-before times for backoff, per-host counts. */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_time.h"
#include "corpus/ingest/fetch.h"

void fetch_opts_default(fetch_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->concurrency = 16;
	o->per_host = 8;
	o->connect_timeout_ms = 10000;
	o->timeout_ms = 30000;
	o->max_bytes = 20u * 1000 * 1000;
	o->max_redirects = 5;
	o->retries = 3;
	o->backoff_ms = 1000;
	o->max_retry_after_ms = 60000;
	o->seed = 0x6e626f6f7374ULL;
	o->respect_optout = 1;
}

const char *fetch_reason_phrase(long code)
{
	static const struct {
		long code;
		const char *text;
	} t[] = {
		{400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"}, {403, "Forbidden"},
		{404, "Not Found"}, {405, "Method Not Allowed"}, {406, "Not Acceptable"},
		{407, "Proxy Authentication Required"}, {408, "Request Timeout"}, {409, "Conflict"},
		{410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"},
		{413, "Content Too Large"}, {414, "URI Too Long"}, {415, "Unsupported Media Type"},
		{416, "Range Not Satisfiable"}, {417, "Expectation Failed"}, {421, "Misdirected Request"},
		{422, "Unprocessable Content"}, {425, "Too Early"}, {426, "Upgrade Required"},
		{428, "Precondition Required"}, {429, "Too Many Requests"},
		{431, "Request Header Fields Too Large"}, {451, "Unavailable For Legal Reasons"},
		{500, "Internal Server Error"}, {501, "Not Implemented"}, {502, "Bad Gateway"},
		{503, "Service Unavailable"}, {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
		{300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"},
		{304, "Not Modified"}, {307, "Temporary Redirect"}, {308, "Permanent Redirect"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (t[i].code == code)
			return t[i].text;
	return "";
}

/* s[0..n) trimmed of ASCII blanks, as (start, length). */
static void trim_span(const char **s, size_t *n)
{
	while (*n && isspace((unsigned char)**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)(*s)[*n - 1]))
		(*n)--;
}

static int span_is(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && !strncasecmp(s, word, n);
}

int fetch_optout_directive(const char *value, const char *ua_token, const char **which)
{
	static const char *const refused[] = {"noai", "noimageai", "noindex", "noimageindex", "none"};
	const char *p = value, *colon = strchr(value, ':');
	if (colon) {
		/* "robot: directives": only for us */
		const char *t = value;
		size_t tn = (size_t)(colon - value);
		trim_span(&t, &tn);
		if (!ua_token || !span_is(t, tn, ua_token))
			return 0;
		p = colon + 1;
	}
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		const char *d = p;
		trim_span(&d, &n);
		for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
			if (span_is(d, n, refused[i])) {
				if (which)
					*which = refused[i];
				return 1;
			}
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

int fetch_status_retryable(const char *s)
{
	if (!strcmp(s, "timeout") || !strcmp(s, "connect_error") || !strcmp(s, "truncated") ||
	    !strcmp(s, "network_error") || !strcmp(s, "http_429"))
		return 1;
	return !strncmp(s, "http_5", 6) && strlen(s) == 8;
}

typedef struct {
	size_t idx;
	int attempts;
	int host;                  /* index into hosts */
	double not_before;
} request;

typedef struct {
	CURL *easy;
	request req;
	int busy;
	int too_large;
	const char *optout;        /* the opt-out directive seen, or NULL */
	char reason[96];           /* reason phrase of the last status line */
	const char *ua_token;      /* the fetcher's, for X-Robots-Tag; NULL: opt-outs ignored */
	uint8_t *buf;
	size_t len, cap, max;
	char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct {
	char **name;
	int *active;
	size_t n, cap;
} host_table;

static int host_id(host_table *h, const char *url)
{
	char *host = NULL;
	CURLU *u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_cleanup(u);
	const char *key = host ? host : "";
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->name[i], key)) {
			curl_free(host);
			return (int)i;
		}
	/* Two arrays, one capacity: name grows first, active follows it. */
	size_t cap = h->cap;
	NB_GROW(h->name, h->cap, h->n + 1, 16);
	if (h->cap != cap)
		h->active = nb_xrealloc(h->active, h->cap * sizeof(int));
	h->name[h->n] = nb_xstrdup(key);
	h->active[h->n] = 0;
	curl_free(host);
	return (int)h->n++;
}

/* One header line of a response (each response of a redirect chain starts
 * with its status line, which resets what the previous one said). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *p)
{
	slot *s = p;
	size_t n = size * nmemb;
	const char *v = data;
	size_t vn = n;
	trim_span(&v, &vn);
	if (vn >= 5 && !strncmp(v, "HTTP/", 5)) {
		s->optout = NULL;
		s->reason[0] = 0;
		/* "HTTP/1.1 404 Not Found": the text after the code */
		const char *sp = memchr(v, ' ', vn);
		const char *sp2 = sp ? memchr(sp + 1, ' ', vn - (size_t)(sp + 1 - v)) : NULL;
		if (sp2) {
			const char *r = sp2 + 1;
			size_t rn = vn - (size_t)(r - v);
			trim_span(&r, &rn);
			snprintf(s->reason, sizeof s->reason, "%.*s", (int)rn, r);
		}
		return n;
	}
	static const char name[] = "x-robots-tag:";
	if (s->ua_token && vn > sizeof name - 1 && !strncasecmp(v, name, sizeof name - 1) && !s->optout) {
		char val[512];
		snprintf(val, sizeof val, "%.*s", (int)(vn - (sizeof name - 1)), v + sizeof name - 1);
		const char *which;
		if (fetch_optout_directive(val, s->ua_token, &which))
			s->optout = which;
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	slot *s = p;
	size_t n = size * nmemb;
	if (s->optout)
		return 0; /* opted out: abort at the first byte */
	if (s->len + n > s->max) {
		/* Returning short aborts the transfer at once. */
		s->too_large = 1;
		return 0;
	}
	NB_GROW(s->buf, s->cap, s->len + n, 65536);
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return n;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Final status of a finished transfer; *retry_after_ms set when the server
 * said when to come back. */
static void classify(slot *s, CURLcode rc, char *status, size_t cap, long *code, long *retry_after_ms)
{
	*code = 0;
	*retry_after_ms = -1;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, code);
	int success = *code == 0 || (*code >= 200 && *code < 300);
	if (s->optout && success && (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)) {
		snprintf(status, cap, "opted_out");
		return;
	}
	if (rc == CURLE_OK) {
		if (success) {
			snprintf(status, cap, "ok");
			return;
		}
		snprintf(status, cap, "http_%ld", *code);
		curl_off_t ra = -1;
		if (curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra >= 0)
			*retry_after_ms = (long)(ra > 86400 ? 86400 : ra) * 1000;
		return;
	}
	const char *st;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT: st = "timeout"; break;
	case CURLE_FILESIZE_EXCEEDED: st = "too_large"; break;
	case CURLE_WRITE_ERROR: st = s->too_large ? "too_large" : "network_error"; break;
	case CURLE_TOO_MANY_REDIRECTS: st = "too_many_redirects"; break;
	case CURLE_UNSUPPORTED_PROTOCOL: st = "bad_scheme"; break;
	case CURLE_URL_MALFORMAT: st = "bad_url"; break;
	case CURLE_COULDNT_RESOLVE_HOST: st = "dns_error"; break;
	case CURLE_COULDNT_CONNECT: st = "connect_error"; break;
	case CURLE_PARTIAL_FILE: st = "truncated"; break;
	case CURLE_FILE_COULDNT_READ_FILE: st = "file_error"; break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR: st = "tls_error"; break;
	default: st = "network_error"; break;
	}
	snprintf(status, cap, "%s", st);
}

static int setup_slot(slot *s, const fetch_opts *o, const char *ua_token)
{
	s->easy = curl_easy_init();
	if (!s->easy)
		return -1;
	CURL *e = s->easy;
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)o->max_redirects);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, o->allow_file ? "http,https,file" : "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent ? o->user_agent : FETCH_USER_AGENT);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	s->ua_token = o->respect_optout ? ua_token : NULL;
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	s->max = o->max_bytes;
	return 0;
}

/* One fetch_run: the multi handle, its slots, the queue of requests not in
 * flight (new ones and retries backing off), and the per-host counts. */
typedef struct {
	const fetch_opts *o;
	const char *const *urls;
	fetch_cb cb;
	void *ctx;
	CURLM *multi;
	slot *slots;
	int ns, running;
	host_table hosts;
	request *queue;
	size_t nq, done;
	uint64_t rng;              /* backoff jitter */
	fetch_stats st;
	char ua_token[64];         /* the User-Agent's product token */
} fetcher;

static void fetcher_free(fetcher *f)
{
	for (int i = 0; i < f->ns; i++) {
		curl_easy_cleanup(f->slots[i].easy);
		free(f->slots[i].buf);
	}
	free(f->slots);
	for (size_t i = 0; i < f->hosts.n; i++)
		free(f->hosts.name[i]);
	free(f->hosts.name);
	free(f->hosts.active);
	free(f->queue);
	curl_multi_cleanup(f->multi);
	curl_global_cleanup();
}

/* Sets up libcurl and queues urls[0..n) in order. 0 or nb_error (then
 * nothing is left to free). */
static int fetcher_init(fetcher *f, const fetch_opts *o, const char *const *urls, size_t n, fetch_cb cb,
			void *ctx)
{
	memset(f, 0, sizeof(*f));
	if (o->concurrency < 1 || o->per_host < 1)
		return nb_error("cannot fetch: concurrency %d and per-host %d must be at least 1",
				o->concurrency, o->per_host);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return nb_error("cannot fetch: curl_global_init failed");
	f->multi = curl_multi_init();
	if (!f->multi) {
		curl_global_cleanup();
		return nb_error("cannot fetch: curl_multi_init failed");
	}
	/* "nboost-ingest/1 (+https://x)" -> "nboost-ingest" */
	const char *ua = o->user_agent ? o->user_agent : FETCH_USER_AGENT;
	snprintf(f->ua_token, sizeof f->ua_token, "%.*s", (int)strcspn(ua, "/ \t;("), ua);
	f->slots = nb_xcalloc((size_t)o->concurrency, sizeof(slot));
	for (; f->ns < o->concurrency; f->ns++)
		if (setup_slot(&f->slots[f->ns], o, f->ua_token) < 0) {
			fetcher_free(f);
			return nb_error("cannot fetch: curl_easy_init failed");
		}
	f->o = o;
	f->urls = urls;
	f->cb = cb;
	f->ctx = ctx;
	f->queue = nb_xmalloc((n ? n : 1) * sizeof(request));
	for (size_t i = 0; i < n; i++)
		f->queue[f->nq++] = (request){i, 0, host_id(&f->hosts, urls[i]), 0};
	f->rng = o->seed;
	return 0;
}

/* curl opens a file:// URL's path with a blocking open(), outside its
 * timeouts: a FIFO without a writer hangs the transfer, and the whole run,
 * forever. So the path is opened here first without blocking; anything but
 * a regular file is refused with the reason in detail (1). 0: not a file://
 * URL, or a regular file, or a path curl will fail on by itself. */
static int file_url_refused(const char *url, char *detail, size_t cap)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *path = NULL;
	int refused = 0;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK && !strcmp(scheme, "file") &&
	    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) == CURLUE_OK) {
		int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(detail, cap, "'%s' is not a regular file (a %s)", path, nb_file_kind(st.st_mode));
			refused = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	curl_free(path);
	curl_free(scheme);
	curl_url_cleanup(u);
	return refused;
}

/* A request settled without a transfer: its one attempt failed with status. */
static void settle(fetcher *f, const request *r, const char *status, const char *detail)
{
	fetch_result res = {
		.index = r->idx,
		.status = status,
		.attempts = r->attempts + 1,
		.detail = detail,
	};
	f->st.attempts++;
	double c0 = nb_now();
	f->cb(f->ctx, &res);
	f->st.callback_s += nb_now() - c0;
	f->done++;
}

/* Starts what may start, in FIFO order, skipping hosts at their limit and
 * requests still backing off; lowers *wake to the earliest not-before
 * time among those. */
static void start_ready(fetcher *f, double now, double *wake)
{
	for (size_t q = 0; q < f->nq && f->running < f->ns;) {
		request *r = &f->queue[q];
		if (r->not_before > now || f->hosts.active[r->host] >= f->o->per_host) {
			if (r->not_before > now && r->not_before < *wake)
				*wake = r->not_before;
			q++;
			continue;
		}
		char why[4200];
		if (f->o->allow_file && file_url_refused(f->urls[r->idx], why, sizeof(why))) {
			settle(f, r, "file_error", why);
			memmove(r, r + 1, (f->nq - q - 1) * sizeof(request));
			f->nq--;
			continue;
		}
		slot *s = NULL;
		for (int i = 0; i < f->ns; i++)
			if (!f->slots[i].busy) {
				s = &f->slots[i];
				break;
			}
		s->busy = 1;
		s->req = *r;
		s->req.attempts++;
		s->len = 0;
		s->too_large = 0;
		s->optout = NULL;
		s->reason[0] = 0;
		s->errbuf[0] = 0;
		curl_easy_setopt(s->easy, CURLOPT_URL, f->urls[r->idx]);
		curl_multi_add_handle(f->multi, s->easy);
		f->hosts.active[r->host]++;
		f->running++;
		f->st.attempts++;
		memmove(r, r + 1, (f->nq - q - 1) * sizeof(request));
		f->nq--;
	}
}

/* Queues the slot's request again after a delay: the server's Retry-After
 * (ra_ms >= 0), else exponential backoff, both capped. */
static void queue_retry(fetcher *f, const slot *s, long ra_ms)
{
	const fetch_opts *o = f->o;
	double d;
	if (ra_ms >= 0) {
		d = (double)(ra_ms < o->max_retry_after_ms ? ra_ms : o->max_retry_after_ms);
	} else {
		d = (double)o->backoff_ms * (double)(1u << (s->req.attempts - 1 < 16 ? s->req.attempts - 1 : 16));
		if (d > (double)o->max_retry_after_ms)
			d = (double)o->max_retry_after_ms;
		/* Full jitter in [d/2, d): clients that failed together
		 * do not come back together. */
		d = d * (0.5 + 0.5 * (double)(splitmix(&f->rng) >> 11) / 9007199254740992.0);
	}
	request r = s->req;
	r.not_before = nb_now() + d / 1000.0;
	f->queue[f->nq++] = r;
	f->st.retries++;
}

/* A transfer that finished: frees its slot, then retries it or hands its
 * final result to the callback. */
static void finish(fetcher *f, slot *s, CURLcode rc)
{
	char status[32];
	long code, ra_ms;
	classify(s, rc, status, sizeof(status), &code, &ra_ms);
	curl_multi_remove_handle(f->multi, s->easy);
	f->hosts.active[s->req.host]--;
	f->running--;
	s->busy = 0;
	f->st.bytes += s->len;
	if (fetch_status_retryable(status) && s->req.attempts <= f->o->retries) {
		queue_retry(f, s, ra_ms);
		return;
	}
	int ok = !strcmp(status, "ok");
	char detail[CURL_ERROR_SIZE + 64];
	if (s->optout && !strcmp(status, "opted_out"))
		snprintf(detail, sizeof detail, "X-Robots-Tag: %s", s->optout);
	else if (!strncmp(status, "http_", 5))
		snprintf(detail, sizeof detail, "HTTP %ld %s", code, s->reason[0] ? s->reason : fetch_reason_phrase(code));
	else
		snprintf(detail, sizeof detail, "%s", rc == CURLE_OK ? "" : (s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc)));
	/* a reason phrase the server made empty */
	size_t dl = strlen(detail);
	while (dl && detail[dl - 1] == ' ')
		detail[--dl] = 0;
	fetch_result res = {
		.index = s->req.idx,
		.status = status,
		.http_code = code,
		.body = ok ? s->buf : NULL,
		.len = ok ? s->len : 0,
		.attempts = s->req.attempts,
		.detail = detail,
	};
	double c0 = nb_now();
	f->cb(f->ctx, &res);
	f->st.callback_s += nb_now() - c0;
	f->done++;
}

int fetch_run(const fetch_opts *o, const char *const *urls, size_t n, fetch_cb cb, void *ctx,
	      fetch_stats *stats)
{
	double t0 = nb_now();
	fetcher f;
	if (fetcher_init(&f, o, urls, n, cb, ctx) < 0)
		return -1;
	int stopped = 0;
	while (f.done < n) {
		if (o->stop && *o->stop) {
			stopped = 1;
			break;
		}
		if (o->tick)
			o->tick(ctx);
		double now = nb_now(), wake = now + 0.2;
		start_ready(&f, now, &wake);
		int still, left, finished = 0;
		curl_multi_perform(f.multi, &still);
		CURLMsg *m;
		while ((m = curl_multi_info_read(f.multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			finished++;
			slot *s;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			finish(&f, s, m->data.result);
		}
		/* A finished transfer frees a slot: start the next one at once
		 * instead of sleeping until the next wake-up. */
		if (f.done < n && !finished) {
			double w = wake - nb_now();
			int ms = w <= 0 ? 0 : (int)(w * 1000) + 1;
			if (f.running > 0 || ms > 0)
				curl_multi_poll(f.multi, NULL, 0, f.running > 0 ? (ms < 100 ? ms : 100) : ms, NULL);
		}
	}
	/* Abandoned transfers leave the multi handle before it is freed. */
	for (int i = 0; i < f.ns; i++)
		if (f.slots[i].busy)
			curl_multi_remove_handle(f.multi, f.slots[i].easy);
	fetch_stats st = f.st;
	fetcher_free(&f);
	st.wall_s = nb_now() - t0;
	if (stats)
		*stats = st;
	return stopped;
}

/* The libcurl multi loop behind fetch_run(): slots of reusable easy handles,
 * a queue of requests with not-before times for backoff, per-host counts. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/nb_error.h"
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
}

int fetch_status_retryable(const char *s)
{
	if (!strcmp(s, "timeout") || !strcmp(s, "connect_error") || !strcmp(s, "truncated") ||
	    !strcmp(s, "network_error") || !strcmp(s, "http_429"))
		return 1;
	return !strncmp(s, "http_5", 6) && strlen(s) == 8;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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
	uint8_t *buf;
	size_t len, cap, max;
	char errbuf[CURL_ERROR_SIZE];
} slot;

typedef struct {
	char **name;
	int *active;
	int n, cap;
} host_table;

static int host_id(host_table *h, const char *url)
{
	char *host = NULL;
	CURLU *u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK)
		curl_url_get(u, CURLUPART_HOST, &host, 0);
	curl_url_cleanup(u);
	const char *key = host ? host : "";
	for (int i = 0; i < h->n; i++)
		if (!strcmp(h->name[i], key)) {
			curl_free(host);
			return i;
		}
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->name = nb_xrealloc(h->name, (size_t)h->cap * sizeof(char *));
		h->active = nb_xrealloc(h->active, (size_t)h->cap * sizeof(int));
	}
	h->name[h->n] = nb_xstrdup(key);
	h->active[h->n] = 0;
	curl_free(host);
	return h->n++;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *p)
{
	slot *s = p;
	size_t n = size * nmemb;
	if (s->len + n > s->max) {
		/* Returning short aborts the transfer at once. */
		s->too_large = 1;
		return 0;
	}
	if (s->len + n > s->cap) {
		size_t c = s->cap ? s->cap : 65536;
		while (c < s->len + n)
			c *= 2;
		s->buf = nb_xrealloc(s->buf, c);
		s->cap = c;
	}
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
	if (rc == CURLE_OK) {
		if (*code == 0 || (*code >= 200 && *code < 300)) {
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

static int setup_slot(slot *s, const fetch_opts *o)
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
	curl_easy_setopt(e, CURLOPT_USERAGENT, "nboost-ingest/1");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	s->max = o->max_bytes;
	return 0;
}

int fetch_run(const fetch_opts *o, const char *const *urls, size_t n, fetch_cb cb, void *ctx,
	      fetch_stats *stats)
{
	fetch_stats st = {0};
	double t0 = now_s();
	if (o->concurrency < 1 || o->per_host < 1)
		return nb_error("cannot fetch: concurrency %d and per-host %d must be at least 1",
				o->concurrency, o->per_host);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return nb_error("cannot fetch: curl_global_init failed");
	CURLM *multi = curl_multi_init();
	if (!multi) {
		curl_global_cleanup();
		return nb_error("cannot fetch: curl_multi_init failed");
	}
	int ns = o->concurrency;
	slot *slots = nb_xcalloc((size_t)ns, sizeof(slot));
	for (int i = 0; i < ns; i++)
		if (setup_slot(&slots[i], o) < 0) {
			for (int k = 0; k < i; k++)
				curl_easy_cleanup(slots[k].easy);
			free(slots);
			curl_multi_cleanup(multi);
			curl_global_cleanup();
			return nb_error("cannot fetch: curl_easy_init failed");
		}
	host_table hosts = {0};
	request *queue = nb_xmalloc((n ? n : 1) * sizeof(request));
	size_t nq = 0;
	for (size_t i = 0; i < n; i++)
		queue[nq++] = (request){i, 0, host_id(&hosts, urls[i]), 0};
	uint64_t rng = o->seed;
	size_t done = 0;
	int running = 0;
	while (done < n) {
		double now = now_s(), wake = now + 0.2;
		/* Start what may start: FIFO order, skipping hosts at their limit
		 * and requests still backing off. */
		for (size_t q = 0; q < nq && running < ns;) {
			request *r = &queue[q];
			if (r->not_before > now || hosts.active[r->host] >= o->per_host) {
				if (r->not_before > now && r->not_before < wake)
					wake = r->not_before;
				q++;
				continue;
			}
			slot *s = NULL;
			for (int i = 0; i < ns; i++)
				if (!slots[i].busy) {
					s = &slots[i];
					break;
				}
			s->busy = 1;
			s->req = *r;
			s->req.attempts++;
			s->len = 0;
			s->too_large = 0;
			s->errbuf[0] = 0;
			curl_easy_setopt(s->easy, CURLOPT_URL, urls[r->idx]);
			curl_multi_add_handle(multi, s->easy);
			hosts.active[r->host]++;
			running++;
			st.attempts++;
			memmove(r, r + 1, (nq - q - 1) * sizeof(request));
			nq--;
		}
		int still;
		curl_multi_perform(multi, &still);
		CURLMsg *m;
		int left, finished = 0;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			finished++;
			slot *s;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			CURLcode rc = m->data.result;
			char status[32];
			long code, ra_ms;
			classify(s, rc, status, sizeof(status), &code, &ra_ms);
			curl_multi_remove_handle(multi, s->easy);
			hosts.active[s->req.host]--;
			running--;
			s->busy = 0;
			st.bytes += s->len;
			if (fetch_status_retryable(status) && s->req.attempts <= o->retries) {
				double d;
				if (ra_ms >= 0) {
					d = (double)(ra_ms < o->max_retry_after_ms ? ra_ms : o->max_retry_after_ms);
				} else {
					d = (double)o->backoff_ms * (double)(1u << (s->req.attempts - 1 < 16 ? s->req.attempts - 1 : 16));
					if (d > (double)o->max_retry_after_ms)
						d = (double)o->max_retry_after_ms;
					/* Full jitter in [d/2, d): clients that failed together
					 * do not come back together. */
					d = d * (0.5 + 0.5 * (double)(splitmix(&rng) >> 11) / 9007199254740992.0);
				}
				request r = s->req;
				r.not_before = now_s() + d / 1000.0;
				queue[nq++] = r;
				st.retries++;
				continue;
			}
			fetch_result res = {
				.index = s->req.idx,
				.status = status,
				.http_code = code,
				.body = strcmp(status, "ok") ? NULL : s->buf,
				.len = strcmp(status, "ok") ? 0 : s->len,
				.attempts = s->req.attempts,
				.detail = rc == CURLE_OK ? "" : (s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc)),
			};
			double c0 = now_s();
			cb(ctx, &res);
			st.callback_s += now_s() - c0;
			done++;
		}
		/* A finished transfer frees a slot: start the next one at once
		 * instead of sleeping until the next wake-up. */
		if (done < n && !finished) {
			double w = wake - now_s();
			int ms = w <= 0 ? 0 : (int)(w * 1000) + 1;
			if (running > 0 || ms > 0)
				curl_multi_poll(multi, NULL, 0, running > 0 ? (ms < 100 ? ms : 100) : ms, NULL);
		}
	}
	for (int i = 0; i < ns; i++) {
		curl_easy_cleanup(slots[i].easy);
		free(slots[i].buf);
	}
	free(slots);
	for (int i = 0; i < hosts.n; i++)
		free(hosts.name[i]);
	free(hosts.name);
	free(hosts.active);
	free(queue);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	st.wall_s = now_s() - t0;
	if (stats)
		*stats = st;
	return 0;
}

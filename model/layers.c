/* Forward and backward of the captioner's layers (model/layers.h). */

/* Built with -fno-trapping-math (CMakeLists.txt): the clamps in nb_expf are
 * selects that GCC only if-converts, and so vectorises, when comparisons may
 * not trap; this file never reads the FP exception flags. */
#include "model/layers.h"
#include "model/fastmath.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* The GEMMs run single-threaded BLAS calls inside one OpenMP region, each
 * thread on its own slice of the output. With the BLAS's own thread pool
 * beside OpenMP's, the two pools' idle threads spin against each other on a
 * 2-core machine (docs/performance.md measures this); one pool avoids it.
 * vlm_create() sets the BLAS to one thread. */
/* Below this much work (elements, or multiply-adds) a parallel region costs
 * more than it saves, and on a loaded machine waiting for a descheduled
 * thread costs far more. */
#define PAR_MIN 16384L

static void split(int n, int align, int *lo, int *hi)
{
	int nt = omp_get_num_threads(), id = omp_get_thread_num();
	int per = (n + nt - 1) / nt;
	per = (per + align - 1) / align * align;
	*lo = id * per < n ? id * per : n;
	*hi = *lo + per < n ? *lo + per : n;
}

void linear_forward(float *out, const float *in, const float *w, const float *b, int N, int C, int OC)
{
#pragma omp parallel if((long)N * C * OC >= PAR_MIN)
	{
		int lo, hi;
		split(N, 8, &lo, &hi);
		if (hi > lo) {
			if (b)
				for (int i = lo; i < hi; i++)
					memcpy(out + (long)i * OC, b, sizeof(float) * (size_t)OC);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, OC, C, 1.0f, in + (long)lo * C, C,
				    w, C, b ? 1.0f : 0.0f, out + (long)lo * OC, OC);
		}
	}
}

void linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
		     const float *w, int N, int C, int OC)
{
#pragma omp parallel if((long)N * C * OC >= PAR_MIN)
	{
		int lo, hi;
		if (din) {
			split(N, 8, &lo, &hi);
			if (hi > lo)
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, C, OC, 1.0f,
					    dout + (long)lo * OC, OC, w, C, 1.0f, din + (long)lo * C, C);
		}
		/* dW rows (output channels) are independent: split them, so no
		 * thread reduces over another's rows. */
		split(OC, 8, &lo, &hi);
		if (dw && hi > lo)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, C, N, 1.0f, dout + lo, OC, in, C,
				    1.0f, dw + (long)lo * C, C);
		if (db && hi > lo) {
			for (int i = 0; i < N; i++) {
				const float *r = dout + (long)i * OC;
				for (int j = lo; j < hi; j++)
					db[j] += r[j];
			}
		}
	}
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *in, const float *w,
		       const float *b, int N, int C)
{
#pragma omp parallel for schedule(static) if((long)N * C >= PAR_MIN)
	for (int i = 0; i < N; i++) {
		const float *x = in + (long)i * C;
		float *y = out + (long)i * C;
		float m = 0.0f, v = 0.0f;
#pragma omp simd reduction(+ : m)
		for (int j = 0; j < C; j++)
			m += x[j];
		m /= (float)C;
#pragma omp simd reduction(+ : v)
		for (int j = 0; j < C; j++)
			v += (x[j] - m) * (x[j] - m);
		v /= (float)C;
		float s = 1.0f / sqrtf(v + 1e-5f);
		for (int j = 0; j < C; j++)
			y[j] = (x[j] - m) * s * w[j] + b[j];
		mean[i] = m;
		rstd[i] = s;
	}
}

void layernorm_backward(float *din, float *dw, float *db, const float *dout, const float *in,
			const float *w, const float *mean, const float *rstd, int N, int C)
{
	if (din) {
#pragma omp parallel for schedule(static) if((long)N * C >= PAR_MIN)
		for (int i = 0; i < N; i++) {
			const float *x = in + (long)i * C, *dy = dout + (long)i * C;
			float *dx = din + (long)i * C;
			float m = mean[i], s = rstd[i];
			float dmean = 0.0f, dnm = 0.0f;
#pragma omp simd reduction(+ : dmean, dnm)
			for (int j = 0; j < C; j++) {
				float dn = w[j] * dy[j];
				dmean += dn;
				dnm += dn * (x[j] - m) * s;
			}
			dmean /= (float)C;
			dnm /= (float)C;
			for (int j = 0; j < C; j++) {
				float n = (x[j] - m) * s;
				dx[j] += (w[j] * dy[j] - dmean - n * dnm) * s;
			}
		}
	}
	if (dw || db) {
#pragma omp parallel for schedule(static) if((long)N * C >= PAR_MIN)
		for (int j0 = 0; j0 < C; j0 += 32) {
			int j1 = j0 + 32 < C ? j0 + 32 : C;
			float aw[32] = {0}, ab[32] = {0};
			for (int i = 0; i < N; i++) {
				const float *x = in + (long)i * C, *dy = dout + (long)i * C;
				for (int j = j0; j < j1; j++) {
					aw[j - j0] += dy[j] * (x[j] - mean[i]) * rstd[i];
					ab[j - j0] += dy[j];
				}
			}
			for (int j = j0; j < j1; j++) {
				if (dw)
					dw[j] += aw[j - j0];
				if (db)
					db[j] += ab[j - j0];
			}
		}
	}
}

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

void gelu_forward(float *out, const float *in, long n)
{
#pragma omp parallel for simd schedule(static) if(n >= PAR_MIN)
	for (long i = 0; i < n; i++) {
		float x = in[i];
		out[i] = 0.5f * x * (1.0f + nb_tanhf(GELU_K * (x + 0.044715f * x * x * x)));
	}
}

void gelu_backward(float *din, const float *in, const float *dout, long n)
{
#pragma omp parallel for simd schedule(static) if(n >= PAR_MIN)
	for (long i = 0; i < n; i++) {
		float x = in[i];
		float t = nb_tanhf(GELU_K * (x + 0.044715f * x * x * x));
		float sech2 = 1.0f - t * t;
		float g = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
		din[i] += g * dout[i];
	}
}

/* Softmax of row a[0..n) in place, scaled logits; zeros a[n..T). */
static void softmax_row(float *a, int n, int T)
{
	float mx = a[0];
	for (int j = 1; j < n; j++)
		mx = a[j] > mx ? a[j] : mx;
	float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
	for (int j = 0; j < n; j++) {
		a[j] = nb_expf(a[j] - mx);
		sum += a[j];
	}
	float inv = 1.0f / sum;
#pragma omp simd
	for (int j = 0; j < n; j++)
		a[j] *= inv;
	for (int j = n; j < T; j++)
		a[j] = 0.0f;
}

/* Per (sample, head): S = scale * Q K^T and Y = P V as single-threaded
 * GEMMs inside the OpenMP loop. The causal case computes the full square
 * and masks it: at T = 77 the BLAS is still far faster than loops. */
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
		       int causal)
{
	int hs = C / NH;
	float scale = 1.0f / sqrtf((float)hs);
	long C3 = 3L * C;
#pragma omp parallel for collapse(2) schedule(static) if((long)B * T * T * C >= PAR_MIN)
	for (int b = 0; b < B; b++) {
		for (int h = 0; h < NH; h++) {
			const float *q = qkv + (long)b * T * C3 + h * hs;
			float *A = att + ((long)b * NH + h) * T * T;
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, (int)C3, q + C,
				    (int)C3, 0.0f, A, T);
			for (int i = 0; i < T; i++)
				softmax_row(A + (long)i * T, causal ? i + 1 : T, T);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, A, T, q + 2 * C, (int)C3,
				    0.0f, out + (long)b * T * C + h * hs, C);
		}
	}
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
			int T, int C, int NH, int causal)
{
	int hs = C / NH;
	float scale = 1.0f / sqrtf((float)hs);
	long C3 = 3L * C;
	(void)causal; /* masked probabilities are 0, so their gradient is too */
#pragma omp parallel if((long)B * T * T * C >= PAR_MIN)
	{
		float *dA = malloc(sizeof(float) * (size_t)T * (size_t)T);
#pragma omp for collapse(2) schedule(static)
		for (int b = 0; b < B; b++) {
			for (int h = 0; h < NH; h++) {
				const float *q = qkv + (long)b * T * C3 + h * hs;
				float *dq = dqkv + (long)b * T * C3 + h * hs;
				const float *A = att + ((long)b * NH + h) * T * T;
				const float *dy = dout + (long)b * T * C + h * hs;
				/* dP = dY V^T, dV += P^T dY */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dy, C, q + 2 * C,
					    (int)C3, 0.0f, dA, T);
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, A, T, dy, C, 1.0f,
					    dq + 2 * C, (int)C3);
				/* softmax backward, with the 1/sqrt(hs) folded in */
				for (int i = 0; i < T; i++) {
					const float *a = A + (long)i * T;
					float *d = dA + (long)i * T;
					float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
					for (int j = 0; j < T; j++)
						dot += a[j] * d[j];
#pragma omp simd
					for (int j = 0; j < T; j++)
						d[j] = a[j] * (d[j] - dot) * scale;
				}
				/* dQ += dS K, dK += dS^T Q */
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, dA, T, q + C,
					    (int)C3, 1.0f, dq, (int)C3);
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, dA, T, q, (int)C3,
					    1.0f, dq + C, (int)C3);
			}
		}
		free(dA);
	}
}

void residual_forward(float *out, const float *a, const float *b, long n)
{
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
	for (long i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

void residual_backward(float *da, float *db, const float *dout, long n)
{
#pragma omp parallel for schedule(static) if(n >= PAR_MIN)
	for (long i = 0; i < n; i++) {
		if (da)
			da[i] += dout[i];
		if (db)
			db[i] += dout[i];
	}
}

void addpos_forward(float *out, const float *in, const float *pos, int B, int T, int C)
{
#pragma omp parallel for collapse(2) schedule(static) if((long)B * T * C >= PAR_MIN)
	for (int b = 0; b < B; b++)
		for (int t = 0; t < T; t++) {
			long o = ((long)b * T + t) * C;
			for (int j = 0; j < C; j++)
				out[o + j] = in[o + j] + pos[(long)t * C + j];
		}
}

void addpos_backward(float *din, float *dpos, const float *dout, int B, int T, int C)
{
	if (din)
		residual_backward(din, NULL, dout, (long)B * T * C);
	if (dpos) {
#pragma omp parallel for schedule(static) if((long)B * T * C >= PAR_MIN)
		for (int t = 0; t < T; t++)
			for (int b = 0; b < B; b++) {
				const float *g = dout + ((long)b * T + t) * C;
				for (int j = 0; j < C; j++)
					dpos[(long)t * C + j] += g[j];
			}
	}
}

void embedding_forward(float *out, const uint16_t *tok, const float *emb, int N, int C)
{
#pragma omp parallel for schedule(static) if((long)N * C >= PAR_MIN)
	for (int i = 0; i < N; i++)
		memcpy(out + (long)i * C, emb + (long)tok[i] * C, sizeof(float) * (size_t)C);
}

void embedding_backward(float *demb, const uint16_t *tok, const float *dout, int N, int C)
{
	/* Serial: rows share vocabulary entries, and N*C is small. */
	for (int i = 0; i < N; i++) {
		float *d = demb + (long)tok[i] * C;
		const float *g = dout + (long)i * C;
		for (int j = 0; j < C; j++)
			d[j] += g[j];
	}
}

double crossentropy_forward_backward(float *dlogits, const float *logits, const uint16_t *targets,
				     int N, int V, int ignore, float scale, long *count)
{
	double loss = 0.0;
	long cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : loss, cnt) if((long)N * V >= PAR_MIN)
	for (int i = 0; i < N; i++) {
		const float *z = logits + (long)i * V;
		float *dz = dlogits ? dlogits + (long)i * V : NULL;
		int t = targets[i];
		if (t == ignore) {
			if (dz)
				memset(dz, 0, sizeof(float) * (size_t)V);
			continue;
		}
		double mx = z[0];
		for (int j = 1; j < V; j++)
			if (z[j] > mx)
				mx = z[j];
		double s = 0.0;
		for (int j = 0; j < V; j++)
			s += exp((double)z[j] - mx);
		double lse = mx + log(s);
		loss += lse - (double)z[t];
		cnt++;
		if (dz) {
			for (int j = 0; j < V; j++)
				dz[j] = scale * (float)exp((double)z[j] - lse);
			dz[t] -= scale;
		}
	}
	if (count)
		*count = cnt;
	return loss;
}

void patchify(float *out, const uint8_t *images, int B, int S, int P)
{
	int np = S / P, pd = P * P * 3;
#pragma omp parallel for schedule(static) if((long)B * S * S >= PAR_MIN)
	for (int b = 0; b < B; b++) {
		const uint8_t *img = images + (long)b * S * S * 3;
		for (int py = 0; py < np; py++)
			for (int px = 0; px < np; px++) {
				float *o = out + (((long)b * np + py) * np + px) * pd;
				for (int y = 0; y < P; y++)
					for (int x = 0; x < P; x++)
						for (int c = 0; c < 3; c++)
							*o++ = (float)img[((long)(py * P + y) * S + px * P + x) * 3 + c] *
								       (1.0f / 255.0f) -
							       0.5f;
			}
	}
}

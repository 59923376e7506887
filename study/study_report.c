/* The study's report: results.json (every job's result as it was written,
 * plus the summaries), results.md (tables, paired comparisons, pseudo-label
 * figures, attention shares, costs) and plots/ (gnuplot, SVG and PNG),
 * from the result files alone. docs/study.md defines every figure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/nb_error.h"
#include "common/nb_io.h"
#include "common/nb_json.h"
#include "study/study.h"

enum { G_TEST, G_COUNTER, G_SHIFT, G_DENSE, N_GROUPS };
static const char *const group_name[N_GROUPS] = {"test", "test-counter", "test-shift", "test-dense"};
static const char *const group_prefix[N_GROUPS] = {"test", "test-counter-", "test-shift-", "test-dense"};

enum { M_CHAIR_I, M_CHAIR_S, M_RECALL, M_F1, M_BLEU4, M_CIDER, M_POPE_ACC, M_POPE_PREC, M_POPE_YES, N_METRICS };
static const char *const metric_key[N_METRICS] = {"chair_i",  "chair_s",       "recall",         "tuple_f1",
						  "bleu4",    "cider_d",       "pope_accuracy", "pope_precision",
						  "pope_yes_ratio"};
static const char *const metric_title[N_METRICS] = {"CHAIR_i", "CHAIR_s", "recall", "tuple F1", "BLEU-4",
						    "CIDEr-D", "POPE acc", "POPE prec", "POPE yes"};

#define MAX_SEEDS 100
#define MAX_LAYERS 16

typedef struct {
	nb_json *r[MAX_SEEDS]; /* by seed - 1; NULL when not done */
	char *text[MAX_SEEDS]; /* the result file as written */
	int done;
} arm_results;

typedef struct {
	double mean, std;
	int n;
} mstat;

/* The metric averaged over a group's splits in one result; NAN when the
 * group has no split there. shift strength s > 0 limits test-shift to the
 * sub-splits of that strength ("...-s"). */
static double group_value(const nb_json *res, int g, int m, int strength)
{
	const nb_json *ev = nb_json_get(res, "eval");
	if (!ev || ev->type != NB_JSON_OBJ)
		return NAN;
	double sum = 0;
	int n = 0;
	for (int i = 0; i < ev->n; i++) {
		const char *k = ev->keys[i];
		int match = g == G_TEST || g == G_DENSE ? !strcmp(k, group_prefix[g])
							: !strncmp(k, group_prefix[g], strlen(group_prefix[g]));
		if (match && strength > 0) {
			size_t l = strlen(k);
			match = l > 2 && k[l - 2] == '-' && k[l - 1] == '0' + strength;
		}
		double x = nb_json_getnum(ev->items[i], metric_key[m], NAN);
		if (match && isfinite(x))
			sum += x, n++;
	}
	return n ? sum / n : NAN;
}

static mstat stat_of(const double *x, int n)
{
	mstat s = {0, 0, 0};
	for (int i = 0; i < n; i++)
		if (isfinite(x[i]))
			s.mean += x[i], s.n++;
	if (!s.n)
		return (mstat){NAN, NAN, 0};
	s.mean /= s.n;
	for (int i = 0; i < n; i++)
		if (isfinite(x[i]))
			s.std += (x[i] - s.mean) * (x[i] - s.mean);
	s.std = s.n > 1 ? sqrt(s.std / (s.n - 1)) : 0; /* sample std over seeds */
	return s;
}

static mstat arm_stat(const study_conf *c, const arm_results *ar, int g, int m, int strength)
{
	double x[MAX_SEEDS];
	for (int s = 0; s < c->seeds; s++)
		x[s] = ar->r[s] ? group_value(ar->r[s], g, m, strength) : NAN;
	return stat_of(x, c->seeds);
}

static void fmt_stat(nb_buf *b, mstat s)
{
	if (!s.n)
		nb_buf_adds(b, " – |");
	else if (s.n == 1)
		nb_buf_addf(b, " %.3f |", s.mean);
	else
		nb_buf_addf(b, " %.3f ± %.3f |", s.mean, s.std);
}

/* ---- loading ------------------------------------------------------------- */

static int load_results(const study_conf *c, const char *out, arm_results *ars)
{
	for (int a = 0; a < c->n_arms; a++)
		for (int s = 0; s < c->seeds && s < MAX_SEEDS; s++) {
			char path[4200];
			snprintf(path, sizeof path, "%s/arms/%s/seed-%d/result.json", out, c->arms[a].name, s + 1);
			struct stat st;
			if (stat(path, &st) < 0)
				continue;
			size_t len;
			char *text = nb_read_input(path, "study result", &len);
			nb_json *v = text ? nb_json_parse(text, len, path) : NULL;
			if (!v) {
				free(text);
				return -1;
			}
			if (strcmp(nb_json_getstr(v, "format", ""), "nboost.study-result") ||
			    strcmp(nb_json_getstr(v, "arm", ""), c->arms[a].name) ||
			    nb_json_getnum(v, "seed", -1) != s + 1) {
				nb_json_free(v);
				free(text);
				return nb_error("%s: not the result of arm '%s' seed %d (format, arm or seed differ)", path,
						c->arms[a].name, s + 1);
			}
			while (len && (text[len - 1] == '\n'))
				text[--len] = 0;
			ars[a].r[s] = v, ars[a].text[s] = text, ars[a].done++;
		}
	return 0;
}

/* ---- results.json -------------------------------------------------------- */

static void json_stat(nb_buf *b, mstat s)
{
	nb_buf_adds(b, "{\"mean\":");
	nb_json_put_num(b, s.mean);
	nb_buf_adds(b, ",\"std\":");
	nb_json_put_num(b, s.std);
	nb_buf_addf(b, ",\"n\":%d}", s.n);
}

/* Paired differences arm - vs over the seeds both have. */
static mstat paired(const study_conf *c, const arm_results *x, const arm_results *y, int g, int m, int *same_sign)
{
	double d[MAX_SEEDS];
	int pos = 0, neg = 0;
	for (int s = 0; s < c->seeds; s++) {
		double a = x->r[s] ? group_value(x->r[s], g, m, 0) : NAN;
		double b = y->r[s] ? group_value(y->r[s], g, m, 0) : NAN;
		d[s] = a - b;
		pos += isfinite(d[s]) && d[s] > 0, neg += isfinite(d[s]) && d[s] < 0;
	}
	mstat st = stat_of(d, c->seeds);
	*same_sign = st.n > 0 && (pos == st.n || neg == st.n);
	return st;
}

/* docs/study.md, "Paired comparisons": a difference exceeds the seed-to-
 * seed spread when every paired difference has the same sign and the mean
 * difference is larger than the standard deviation of the differences and
 * than both arms' standard deviations over seeds. */
static const char *verdict(const study_conf *c, const arm_results *x, const arm_results *y, int g, int m, mstat d,
			   int same_sign)
{
	if (d.n < 2)
		return "n/a (fewer than 2 paired seeds)";
	mstat sx = arm_stat(c, x, g, m, 0), sy = arm_stat(c, y, g, m, 0);
	double spread = sx.std > sy.std ? sx.std : sy.std;
	return same_sign && fabs(d.mean) > spread && fabs(d.mean) > d.std ? "yes" : "no";
}

static const int cmp_metrics[] = {M_CHAIR_I, M_F1, M_POPE_ACC};
static const int cmp_groups[] = {G_TEST, G_COUNTER, G_SHIFT};

static void write_json(const study_conf *c, const arm_results *ars, nb_buf *b, int jobs_done)
{
	nb_buf_adds(b, "{\"format\":\"nboost.study-report\",\"version\":1,\"study\":");
	nb_json_put_str(b, c->path);
	nb_buf_addf(b, ",\"quick\":%s,\"full\":%s,\"seeds\":%d,\"jobs\":%d,\"jobs_done\":%d,\"arms\":[",
		    c->quick ? "true" : "false", c->full ? "true" : "false", c->seeds, c->n_arms * c->seeds, jobs_done);
	for (int a = 0; a < c->n_arms; a++) {
		const study_arm *arm = &c->arms[a];
		nb_buf_adds(b, a ? ",{\"name\":" : "{\"name\":");
		nb_json_put_str(b, arm->name);
		nb_buf_addf(b, ",\"kind\":\"%s\",\"spec\":", study_kind_name(arm->kind));
		nb_json_put_str(b, arm->spec);
		nb_buf_addf(b, ",\"seeds_done\":%d,\"summary\":{", ars[a].done);
		for (int g = 0; g < N_GROUPS; g++) {
			nb_buf_addf(b, "%s\"%s\":{", g ? "," : "", group_name[g]);
			for (int m = 0; m < N_METRICS; m++) {
				nb_buf_addf(b, "%s\"%s\":", m ? "," : "", metric_key[m]);
				json_stat(b, arm_stat(c, &ars[a], g, m, 0));
			}
			nb_buf_adds(b, "}");
		}
		nb_buf_adds(b, "}");
		if (arm->vs >= 0) {
			nb_buf_adds(b, ",\"vs\":");
			nb_json_put_str(b, c->arms[arm->vs].name);
			nb_buf_adds(b, ",\"paired\":{");
			for (size_t gi = 0; gi < sizeof cmp_groups / sizeof *cmp_groups; gi++) {
				int g = cmp_groups[gi];
				nb_buf_addf(b, "%s\"%s\":{", gi ? "," : "", group_name[g]);
				for (size_t mi = 0; mi < sizeof cmp_metrics / sizeof *cmp_metrics; mi++) {
					int m = cmp_metrics[mi], same;
					mstat d = paired(c, &ars[a], &ars[arm->vs], g, m, &same);
					nb_buf_addf(b, "%s\"%s\":{\"diff\":", mi ? "," : "", metric_key[m]);
					json_stat(b, d);
					nb_buf_addf(b, ",\"exceeds_spread\":\"%s\"}",
						    verdict(c, &ars[a], &ars[arm->vs], g, m, d, same));
				}
				nb_buf_adds(b, "}");
			}
			nb_buf_adds(b, "}");
		}
		nb_buf_adds(b, ",\"results\":[");
		for (int s = 0, k = 0; s < c->seeds; s++)
			if (ars[a].text[s]) {
				if (k++)
					nb_buf_adds(b, ",");
				nb_buf_adds(b, ars[a].text[s]);
			}
		nb_buf_adds(b, "]}");
	}
	nb_buf_adds(b, "]}\n");
}

/* ---- plots (gnuplot) ----------------------------------------------------- */

typedef struct {
	const char *out;
	nb_buf gp;     /* the gnuplot script body (terminal set by the caller) */
	int n_plots;
	char names[16][64];
} plots;

static FILE *dat_open(const plots *p, const char *name)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/plots/%s.dat", p->out, name);
	FILE *f = fopen(path, "w");
	if (!f)
		nb_error("cannot create '%s': %s", path, strerror(errno));
	return f;
}

static int is_plain_supervised(const study_arm *a)
{
	return a->kind == ARM_SUPERVISED && a->init < 0 && a->sigma_end < 0;
}

/* CHAIR_i and tuple F1 against sigma, one line per split group, for the
 * plain supervised arms at `labels`. */
static int plot_sigma(const study_conf *c, const arm_results *ars, plots *p, int labels)
{
	int idx[64], n = 0;
	for (int a = 0; a < c->n_arms && n < 64; a++)
		if (is_plain_supervised(&c->arms[a]) && c->arms[a].labels == labels && ars[a].done)
			idx[n++] = a;
	if (n < 2)
		return 0;
	/* by sigma */
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && c->arms[idx[k]].sigma < c->arms[idx[k - 1]].sigma; k--) {
			int t = idx[k];
			idx[k] = idx[k - 1], idx[k - 1] = t;
		}
	char name[64];
	snprintf(name, sizeof name, "sigma-labels%d", labels);
	FILE *f = dat_open(p, name);
	if (!f)
		return -1;
	fprintf(f, "# sigma");
	for (int g = 0; g < N_GROUPS; g++)
		fprintf(f, " %s_chair_i std %s_tuple_f1 std", group_name[g], group_name[g]);
	fprintf(f, "\n");
	for (int i = 0; i < n; i++) {
		fprintf(f, "%g", c->arms[idx[i]].sigma);
		for (int g = 0; g < N_GROUPS; g++) {
			mstat s1 = arm_stat(c, &ars[idx[i]], g, M_CHAIR_I, 0), s2 = arm_stat(c, &ars[idx[i]], g, M_F1, 0);
			fprintf(f, " %g %g %g %g", s1.mean, s1.std, s2.mean, s2.std);
		}
		fprintf(f, "\n");
	}
	fclose(f);
	nb_buf_addf(&p->gp,
		    "set output '%s.EXT'\nset multiplot layout 1,2 title 'NoiseBoost sigma sweep, %d%% labels (mean ± std over seeds)'\n"
		    "set xlabel 'sigma'\nset ylabel 'CHAIR_i (lower is better)'\nset key top left\n"
		    "plot for [g=0:%d] '%s.dat' using 1:(column(2+4*g)):(column(3+4*g)) with yerrorlines title word('%s %s %s %s', g+1)\n"
		    "set ylabel 'tuple F1 (higher is better)'\n"
		    "plot for [g=0:%d] '%s.dat' using 1:(column(4+4*g)):(column(5+4*g)) with yerrorlines title word('%s %s %s %s', g+1)\n"
		    "unset multiplot\n",
		    name, labels, N_GROUPS - 1, name, group_name[0], group_name[1], group_name[2], group_name[3],
		    N_GROUPS - 1, name, group_name[0], group_name[1], group_name[2], group_name[3]);
	snprintf(p->names[p->n_plots++], 64, "%s", name);
	return 0;
}

/* tuple F1 on test against the labeled fraction: supervised at sigma 0
 * and 0.3 against the semi-supervised arms. */
static int labels_series(const study_arm *arm)
{
	if (arm->rounds != 1)
		return -1;
	if (is_plain_supervised(arm) && arm->sigma == 0)
		return 0;
	if (is_plain_supervised(arm) && fabs(arm->sigma - 0.3) < 1e-9)
		return 1;
	if (arm->kind == ARM_SEMI)
		return !arm->filter ? 2 : arm->sigma == 0 ? 3 : 4;
	return -1;
}

static int plot_labels(const study_conf *c, const arm_results *ars, plots *p)
{
	static const char *const series[] = {"supervised sigma 0", "supervised sigma 0.3", "semi, raw pseudo-labels",
					     "semi, filtered", "semi, filtered + noise"};
	int any_semi = 0, points[5] = {0};
	for (int a = 0; a < c->n_arms; a++) {
		any_semi |= c->arms[a].kind == ARM_SEMI && ars[a].done;
		if (ars[a].done && labels_series(&c->arms[a]) >= 0)
			points[labels_series(&c->arms[a])]++;
	}
	if (!any_semi)
		return 0;
	FILE *f = dat_open(p, "labels");
	if (!f)
		return -1;
	int blocks = 0, block_of[5];
	for (int sidx = 0; sidx < 5; sidx++) {
		if (!points[sidx])
			continue;
		block_of[sidx] = blocks++;
		fprintf(f, "# %s\n", series[sidx]);
		for (int pct = 1; pct <= 100; pct++)
			for (int a = 0; a < c->n_arms; a++)
				if (c->arms[a].labels == pct && ars[a].done && labels_series(&c->arms[a]) == sidx) {
					mstat s = arm_stat(c, &ars[a], G_TEST, M_F1, 0);
					fprintf(f, "%d %g %g\n", pct, s.mean, s.std);
				}
		fprintf(f, "\n\n");
	}
	fclose(f);
	nb_buf_adds(&p->gp, "set output 'labels.EXT'\nset title 'tuple F1 on test against labeled fraction (mean ± std)'\n"
			    "set xlabel 'labeled fraction (%)'\nset ylabel 'tuple F1'\nset key bottom right\nset xrange [0:105]\nplot");
	for (int sidx = 0, k = 0; sidx < 5; sidx++)
		if (points[sidx])
			nb_buf_addf(&p->gp, "%s 'labels.dat' index %d using 1:2:3 with yerrorlines title '%s'", k++ ? "," : "",
				    block_of[sidx], series[sidx]);
	nb_buf_adds(&p->gp, "\nset autoscale x\nunset title\n");
	snprintf(p->names[p->n_plots++], 64, "labels");
	return 0;
}

/* CHAIR_i against shift strength (0 = the clean test split), averaged over
 * the four kinds of shift, for plain supervised arms at sigma 0 and 0.3. */
static int plot_shift(const study_conf *c, const arm_results *ars, plots *p)
{
	int idx[16], n = 0;
	for (int a = 0; a < c->n_arms && n < 16; a++) {
		const study_arm *arm = &c->arms[a];
		if (is_plain_supervised(arm) && ars[a].done && (arm->sigma == 0 || fabs(arm->sigma - 0.3) < 1e-9) &&
		    isfinite(arm_stat(c, &ars[a], G_SHIFT, M_CHAIR_I, 1).mean))
			idx[n++] = a;
	}
	if (!n)
		return 0;
	FILE *f = dat_open(p, "shift");
	if (!f)
		return -1;
	for (int i = 0; i < n; i++) {
		fprintf(f, "# %s\n", c->arms[idx[i]].name);
		for (int s = 0; s <= 3; s++) {
			mstat st = s ? arm_stat(c, &ars[idx[i]], G_SHIFT, M_CHAIR_I, s)
				    : arm_stat(c, &ars[idx[i]], G_TEST, M_CHAIR_I, 0);
			fprintf(f, "%d %g %g\n", s, st.mean, st.std);
		}
		fprintf(f, "\n\n");
	}
	fclose(f);
	nb_buf_adds(&p->gp, "set output 'shift.EXT'\nset title 'CHAIR_i against shift strength (blur, contrast, noise, occlusion averaged)'\n"
			    "set xlabel 'shift strength (0: clean test)'\nset ylabel 'CHAIR_i'\nset key top left\nset xtics 0,1,3\nplot");
	for (int i = 0; i < n; i++)
		nb_buf_addf(&p->gp, "%s 'shift.dat' index %d using 1:2:3 with yerrorlines title '%s (sigma %g, %d%%)'",
			    i ? "," : "", i, c->arms[idx[i]].name, c->arms[idx[i]].sigma, c->arms[idx[i]].labels);
	nb_buf_adds(&p->gp, "\nset xtics autofreq\nunset title\n");
	snprintf(p->names[p->n_plots++], 64, "shift");
	return 0;
}

/* Attention on the visual tokens per decoder layer: sigma 0 against 0.3
 * (all caption positions), and correct against hallucinated statements. */
static double attn_share(const nb_json *res, const char *group, const char *what, int layer)
{
	const nb_json *g = nb_json_get(nb_json_get(res, "attn"), group);
	const nb_json *l = nb_json_get(g, what);
	if (!l || l->type != NB_JSON_ARR || layer >= l->n || l->items[layer]->type != NB_JSON_NUM)
		return NAN;
	return l->items[layer]->num;
}

static mstat attn_stat(const study_conf *c, const arm_results *ar, const char *group, const char *what, int layer)
{
	double x[MAX_SEEDS];
	for (int s = 0; s < c->seeds; s++)
		x[s] = ar->r[s] ? attn_share(ar->r[s], group, what, layer) : NAN;
	return stat_of(x, c->seeds);
}

static int attn_layers(const study_conf *c, const arm_results *ar)
{
	for (int s = 0; s < c->seeds; s++)
		if (ar->r[s]) {
			double l = nb_json_getnum(nb_json_get(ar->r[s], "attn"), "layers", 0);
			return l > 0 && l <= MAX_LAYERS ? (int)l : 0;
		}
	return 0;
}

static int plot_attn(const study_conf *c, const arm_results *ars, plots *p)
{
	int idx[16], n = 0;
	for (int a = 0; a < c->n_arms && n < 16; a++) {
		const study_arm *arm = &c->arms[a];
		if (is_plain_supervised(arm) && ars[a].done && (arm->sigma == 0 || fabs(arm->sigma - 0.3) < 1e-9) &&
		    attn_layers(c, &ars[a]))
			idx[n++] = a;
	}
	if (!n)
		return 0;
	FILE *f = dat_open(p, "attention");
	if (!f)
		return -1;
	static const char *const groups[] = {"all", "correct", "hallucinated"};
	for (int i = 0; i < n; i++)
		for (int g = 0; g < 3; g++) {
			fprintf(f, "# %s %s\n", c->arms[idx[i]].name, groups[g]);
			for (int l = 0; l < attn_layers(c, &ars[idx[i]]); l++) {
				mstat st = attn_stat(c, &ars[idx[i]], groups[g], "visual", l);
				fprintf(f, "%d %g %g\n", l, st.mean, st.std);
			}
			fprintf(f, "\n\n");
		}
	fclose(f);
	nb_buf_adds(&p->gp, "set output 'attention.EXT'\nset multiplot layout 1,2 title 'share of attention on the visual tokens per decoder layer'\n"
			    "set xlabel 'decoder layer'\nset ylabel 'visual share'\nset key bottom right\nset xtics 1\nset title 'all caption positions'\n");
	nb_buf_addf(&p->gp, "set xrange [-0.5:%d.5]\nplot", attn_layers(c, &ars[idx[0]]) - 1);
	for (int i = 0; i < n; i++)
		nb_buf_addf(&p->gp, "%s 'attention.dat' index %d using 1:2:3 with yerrorlines title '%s'", i ? "," : "",
			    3 * i, c->arms[idx[i]].name);
	nb_buf_adds(&p->gp, "\nset title 'correct (solid) vs hallucinated (dashed) statements'\nplot");
	for (int i = 0; i < n; i++)
		nb_buf_addf(&p->gp,
			    "%s 'attention.dat' index %d using 1:2 with linespoints lc %d dt 1 title '%s correct',"
			    " 'attention.dat' index %d using 1:2 with linespoints lc %d dt 2 title '%s hallucinated'",
			    i ? "," : "", 3 * i + 1, i + 1, c->arms[idx[i]].name, 3 * i + 2, i + 1, c->arms[idx[i]].name);
	nb_buf_adds(&p->gp, "\nunset multiplot\nset xtics autofreq\nset autoscale x\nunset title\n");
	snprintf(p->names[p->n_plots++], 64, "attention");
	return 0;
}

/* Runs gnuplot in OUT/plots on the script for one terminal. 1 when gnuplot
 * is not installed (the report says so), 0 done, -1 + nb_error. */
static int run_gnuplot(const plots *p, const char *ext, const char *terminal)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/plots/plots-%s.gp", p->out, ext);
	nb_buf s = {0};
	nb_buf_addf(&s, "set terminal %s\nset grid\n", terminal);
	/* EXT -> ext */
	for (const char *q = p->gp.data; q && *q;) {
		const char *e = strstr(q, ".EXT'");
		if (!e) {
			nb_buf_adds(&s, q);
			break;
		}
		nb_buf_add(&s, q, (size_t)(e - q));
		nb_buf_addf(&s, ".%s'", ext);
		q = e + 5;
	}
	int rc = nb_write_file_atomic(path, s.data, s.len);
	free(s.data);
	if (rc < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		char dir[4200];
		snprintf(dir, sizeof dir, "%s/plots", p->out);
		if (chdir(dir) < 0)
			_exit(126);
		char script[64];
		snprintf(script, sizeof script, "plots-%s.gp", ext);
		int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0)
			dup2(fd, 2);
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(errno == ENOENT ? 125 : 126);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return nb_error("cannot run gnuplot: %s", strerror(errno));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 125)
		return 1;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return nb_error("gnuplot failed on '%s' (status %d): see %s/plots/gnuplot.log", path, status, p->out);
	return 0;
}

static int make_plots(const study_conf *c, const arm_results *ars, const char *out, nb_buf *md)
{
	plots p = {.out = out};
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/plots", out);
	if (nb_mkdir_p(dir) < 0)
		return -1;
	int done_labels[101] = {0};
	for (int a = 0; a < c->n_arms; a++)
		if (!done_labels[c->arms[a].labels]) {
			done_labels[c->arms[a].labels] = 1;
			if (plot_sigma(c, ars, &p, c->arms[a].labels) < 0)
				return free(p.gp.data), -1;
		}
	if (plot_labels(c, ars, &p) < 0 || plot_shift(c, ars, &p) < 0 || plot_attn(c, ars, &p) < 0)
		return free(p.gp.data), -1;
	nb_buf_adds(md, "\n## Plots\n\n");
	if (!p.n_plots) {
		nb_buf_adds(md, "None yet: no finished arms give a plot.\n");
		free(p.gp.data);
		return 0;
	}
	int rc = run_gnuplot(&p, "svg", "svg size 1000,450 dynamic font 'sans,11'");
	if (rc == 0)
		rc = run_gnuplot(&p, "png", "pngcairo size 1000,450 font 'sans,10'");
	if (rc == 1)
		nb_buf_adds(md, "gnuplot is not installed (apt install gnuplot-nox): the data and scripts are in plots/.\n");
	else if (rc == 0)
		for (int i = 0; i < p.n_plots; i++)
			nb_buf_addf(md, "![%s](plots/%s.svg)\n\n", p.names[i], p.names[i]);
	free(p.gp.data);
	return rc < 0 ? -1 : 0;
}

/* ---- results.md ---------------------------------------------------------- */

static void md_tables(const study_conf *c, const arm_results *ars, nb_buf *md)
{
	for (int g = 0; g < N_GROUPS; g++) {
		int any = 0;
		for (int a = 0; a < c->n_arms; a++)
			any |= arm_stat(c, &ars[a], g, M_CHAIR_I, 0).n > 0;
		if (!any)
			continue;
		nb_buf_addf(md, "\n### %s\n\n| arm | seeds |", group_name[g]);
		for (int m = 0; m < N_METRICS; m++)
			nb_buf_addf(md, " %s |", metric_title[m]);
		nb_buf_adds(md, "\n|---|---|");
		for (int m = 0; m < N_METRICS; m++)
			nb_buf_adds(md, "---|");
		nb_buf_adds(md, "\n");
		for (int a = 0; a < c->n_arms; a++) {
			if (c->arms[a].kind == ARM_LM)
				continue;
			nb_buf_addf(md, "| %s | %d |", c->arms[a].name, ars[a].done);
			for (int m = 0; m < N_METRICS; m++)
				fmt_stat(md, arm_stat(c, &ars[a], g, m, 0));
			nb_buf_adds(md, "\n");
		}
	}
}

static void md_paired(const study_conf *c, const arm_results *ars, nb_buf *md)
{
	nb_buf_adds(md, "\n## Paired comparisons\n\nArm minus its baseline, seed by seed (same seed, same data order), "
			"mean ± std of the differences. \"Exceeds spread\": every paired difference has the same sign and "
			"the mean difference is larger than the standard deviation of the differences and than the "
			"standard deviation over seeds of either arm (docs/study.md).\n\n| arm | vs | split | metric | difference | pairs | exceeds spread |\n"
			"|---|---|---|---|---|---|---|\n");
	for (int a = 0; a < c->n_arms; a++) {
		int v = c->arms[a].vs;
		if (v < 0)
			continue;
		for (size_t gi = 0; gi < sizeof cmp_groups / sizeof *cmp_groups; gi++)
			for (size_t mi = 0; mi < sizeof cmp_metrics / sizeof *cmp_metrics; mi++) {
				int g = cmp_groups[gi], m = cmp_metrics[mi], same;
				mstat d = paired(c, &ars[a], &ars[v], g, m, &same);
				if (!d.n)
					continue;
				nb_buf_addf(md, "| %s | %s | %s | %s | %+.4f ± %.4f | %d | %s |\n", c->arms[a].name,
					    c->arms[v].name, group_name[g], metric_title[m], d.mean, d.std, d.n,
					    verdict(c, &ars[a], &ars[v], g, m, d, same));
			}
	}
}

static void md_labels(const study_conf *c, const arm_results *ars, nb_buf *md)
{
	int any = 0;
	for (int a = 0; a < c->n_arms; a++)
		any |= c->arms[a].kind == ARM_SEMI && ars[a].done;
	if (!any)
		return;
	nb_buf_adds(md, "\n## Pseudo-labels\n\nPer semi-supervised arm and round (mean ± std over seeds): the share of "
			"unlabeled images whose caption was accepted, and CHAIR_i of the teacher's raw clean captions "
			"against the accepted (filtered) ones, scored against the ground truth of those images.\n\n"
			"| arm | round | accepted | raw CHAIR_i | filtered CHAIR_i | raw tuple F1 | filtered tuple F1 |\n"
			"|---|---|---|---|---|---|---|\n");
	for (int a = 0; a < c->n_arms; a++) {
		if (c->arms[a].kind != ARM_SEMI || !ars[a].done)
			continue;
		for (int round = 0; round < c->arms[a].rounds; round++) {
			double acc[MAX_SEEDS], rc[MAX_SEEDS], fc[MAX_SEEDS], rf[MAX_SEEDS], ff[MAX_SEEDS];
			for (int s = 0; s < c->seeds; s++) {
				const nb_json *l = nb_json_get(ars[a].r[s], "labels");
				const nb_json *r = l && l->type == NB_JSON_ARR && round < l->n ? l->items[round] : NULL;
				double seen = nb_json_getnum(r, "seen", NAN);
				acc[s] = nb_json_getnum(r, "accepted", NAN) / seen;
				rc[s] = nb_json_getnum(nb_json_get(r, "raw"), "chair_i", NAN);
				fc[s] = nb_json_getnum(nb_json_get(r, "filtered"), "chair_i", NAN);
				rf[s] = nb_json_getnum(nb_json_get(r, "raw"), "tuple_f1", NAN);
				ff[s] = nb_json_getnum(nb_json_get(r, "filtered"), "tuple_f1", NAN);
			}
			nb_buf_addf(md, "| %s | %d |", c->arms[a].name, round);
			fmt_stat(md, stat_of(acc, c->seeds)), fmt_stat(md, stat_of(rc, c->seeds));
			fmt_stat(md, stat_of(fc, c->seeds)), fmt_stat(md, stat_of(rf, c->seeds));
			fmt_stat(md, stat_of(ff, c->seeds));
			nb_buf_adds(md, "\n");
		}
	}
}

static void md_attn(const study_conf *c, const arm_results *ars, nb_buf *md)
{
	int any = 0;
	for (int a = 0; a < c->n_arms; a++)
		any |= attn_layers(c, &ars[a]) > 0;
	if (!any)
		return;
	nb_buf_adds(md, "\n## Attention\n\nShare of the caption positions' attention on the visual tokens, averaged "
			"over the decoder layers (mean ± std over seeds), over all positions and over those predicting "
			"correct and hallucinated statements; and the share on the single most-attended token "
			"(the \"anchor\"), all positions (`nboost attn`, docs/metrics.md).\n\n"
			"| arm | visual, all | visual, correct | visual, hallucinated | anchor, all |\n|---|---|---|---|---|\n");
	static const char *const groups[] = {"all", "correct", "hallucinated"};
	for (int a = 0; a < c->n_arms; a++) {
		int L = attn_layers(c, &ars[a]);
		if (!L)
			continue;
		nb_buf_addf(md, "| %s |", c->arms[a].name);
		for (int g = 0; g < 4; g++) {
			double x[MAX_SEEDS];
			for (int s = 0; s < c->seeds; s++) {
				x[s] = ars[a].r[s] ? 0 : NAN;
				for (int l = 0; ars[a].r[s] && l < L; l++)
					x[s] += attn_share(ars[a].r[s], g < 3 ? groups[g] : "all", g < 3 ? "visual" : "max",
							   l) / L;
			}
			fmt_stat(md, stat_of(x, c->seeds));
		}
		nb_buf_adds(md, "\n");
	}
}

/* Item k of array `key` of one split's eval result; NAN when absent. */
static double split_item(const nb_json *res, const char *split, const char *key, int k)
{
	const nb_json *a = nb_json_get(nb_json_get(nb_json_get(res, "eval"), split), key);
	if (!a || a->type != NB_JSON_ARR || k >= a->n || a->items[k]->type != NB_JSON_NUM)
		return NAN;
	return a->items[k]->num;
}

#define MAX_POSITIONS 9

/* CHAIR_i of the k-th statement of each caption on test-dense (scenes of 7
 * to 9 objects, longer than any training caption), and how many captions
 * reach 7 or more statements: where hallucination grows with caption
 * length, and whether the models say more than training taught them. */
static void md_positions(const study_conf *c, const arm_results *ars, nb_buf *md)
{
	int P = 0;
	for (int a = 0; a < c->n_arms; a++)
		for (int s = 0; s < c->seeds; s++)
			for (int k = 0; ars[a].r[s] && k < MAX_POSITIONS; k++)
				if (split_item(ars[a].r[s], "test-dense", "mentions_by_position", k) > 0 && k + 1 > P)
					P = k + 1;
	if (!P)
		return;
	nb_buf_adds(md, "\n## CHAIR_i by statement position (test-dense)\n\nCHAIR_i of the k-th object statement "
			"of each caption on `test-dense` (7 to 9 objects per scene; training captions have 2 to 6), "
			"mean ± std over seeds, and the share of captions with 7 or more statements "
			"(`chair_i_by_position`, docs/metrics.md). Positions no caption reached are left out.\n\n| arm |");
	for (int k = 0; k < P; k++)
		nb_buf_addf(md, " %d |", k + 1);
	nb_buf_adds(md, " captions with 7+ |\n|---|");
	for (int k = 0; k <= P; k++)
		nb_buf_adds(md, "---|");
	nb_buf_adds(md, "\n");
	for (int a = 0; a < c->n_arms; a++) {
		if (c->arms[a].kind == ARM_LM || !ars[a].done)
			continue;
		nb_buf_addf(md, "| %s |", c->arms[a].name);
		for (int k = 0; k <= P; k++) {
			double x[MAX_SEEDS];
			for (int s = 0; s < c->seeds; s++) {
				const nb_json *r = ars[a].r[s];
				double first = r ? split_item(r, "test-dense", "mentions_by_position", 0) : NAN;
				if (k == P) /* the share reaching position 7 */
					x[s] = first > 0 ? split_item(r, "test-dense", "mentions_by_position", 6) / first : NAN;
				else
					x[s] = r && split_item(r, "test-dense", "mentions_by_position", k) > 0
						       ? split_item(r, "test-dense", "chair_i_by_position", k)
						       : NAN;
			}
			fmt_stat(md, stat_of(x, c->seeds));
		}
		nb_buf_adds(md, "\n");
	}
}

static void md_costs(const study_conf *c, const arm_results *ars, const char *out, nb_buf *md)
{
	static const char *const phases[] = {"train", "eval", "attn"};
	nb_buf_adds(md, "\n## Cost\n\nWall and CPU time per finished job, summed over the seeds that finished "
			"(jobs ran in parallel, so the study's elapsed time is less than the sum).\n\n"
			"| arm | jobs | train wall | eval wall | attn wall | total wall | total CPU |\n"
			"|---|---|---|---|---|---|---|\n");
	double first = INFINITY, last = 0, all_wall = 0, all_cpu = 0;
	for (int a = 0; a < c->n_arms; a++) {
		double wall[3] = {0}, cpu = 0, tw = 0;
		for (int s = 0; s < c->seeds; s++) {
			const nb_json *r = ars[a].r[s];
			if (!r)
				continue;
			for (int ph = 0; ph < 3; ph++) {
				const nb_json *p = nb_json_get(nb_json_get(r, "cost"), phases[ph]);
				wall[ph] += nb_json_getnum(p, "wall_s", 0);
				cpu += nb_json_getnum(p, "cpu_s", 0);
			}
			double st = nb_json_getnum(r, "started_unix", NAN), w = nb_json_getnum(r, "wall_s", 0);
			tw += w;
			if (isfinite(st))
				first = st < first ? st : first, last = st + w > last ? st + w : last;
		}
		if (!ars[a].done)
			continue;
		all_wall += tw, all_cpu += cpu;
		nb_buf_addf(md, "| %s | %d | %.0f s | %.0f s | %.0f s | %.0f s | %.0f s |\n", c->arms[a].name, ars[a].done,
			    wall[0], wall[1], wall[2], tw, cpu);
	}
	char path[4200];
	snprintf(path, sizeof path, "%s/corpus-cost.json", out);
	struct stat st;
	nb_json *cc = stat(path, &st) == 0 ? nb_json_load(path) : NULL;
	if (cc)
		nb_buf_addf(md, "\nRendering the corpus (`nboost synth`): %.0f s of wall time, %.0f s of CPU time.\n",
			    nb_json_getnum(cc, "wall_s", NAN), nb_json_getnum(cc, "cpu_s", NAN));
	nb_json_free(cc);
	if (isfinite(first))
		nb_buf_addf(md, "\nAll jobs: %.0f s of wall time and %.0f s of CPU time; from the first job's start to the "
				"last job's end: %.0f s (%.1f h).\n",
			    all_wall, all_cpu, last - first, (last - first) / 3600);
}

int study_report(const study_conf *c, const char *out)
{
	arm_results *ars = nb_xcalloc((size_t)c->n_arms, sizeof *ars);
	int rc = c->seeds > MAX_SEEDS ? nb_error("at most %d seeds in a report", MAX_SEEDS) : 0;
	if (!rc)
		rc = load_results(c, out, ars);
	int done = 0;
	for (int a = 0; a < c->n_arms; a++)
		done += ars[a].done;
	nb_buf md = {0}, js = {0};
	if (!rc) {
		nb_buf_addf(&md, "# NoiseBoost study: %s%s\n\n", c->path, c->quick ? " (--quick)" : c->full ? " (--full)" : "");
		nb_buf_addf(&md, "%d of %d jobs done (%d arms x %d seeds)%s. Every figure is mean ± sample std over the "
				 "seeds done. Splits: `test` (in distribution), `test-counter` (mean of the two "
				 "prior-breaking splits), `test-shift` (mean of the 12 blur/contrast/noise/occlusion "
				 "splits), `test-dense` (7-9 objects); docs/scene-grammar.md and docs/study.md.\n\n"
				 "Study settings: model job `%s`, %ld steps, batch %ld, lr %g, %ld labeled scenes "
				 "in shards of %ld, %ld test scenes, %ld per hard split.\n",
			    done, c->n_arms * c->seeds, c->n_arms, c->seeds,
			    done < c->n_arms * c->seeds ? " — a partial study: rerun the same command to finish it" : "",
			    c->job, c->steps, c->batch, c->lr, c->labeled, c->shard_size, c->test, c->hard_tests);
		nb_buf_adds(&md, "\n## Arms\n\n| arm | definition | vs |\n|---|---|---|\n");
		for (int a = 0; a < c->n_arms; a++)
			nb_buf_addf(&md, "| %s | `%s` | %s |\n", c->arms[a].name, c->arms[a].spec,
				    c->arms[a].vs >= 0 ? c->arms[c->arms[a].vs].name : "");
		nb_buf_adds(&md, "\n## Results\n");
		md_tables(c, ars, &md);
		md_paired(c, ars, &md);
		md_labels(c, ars, &md);
		md_attn(c, ars, &md);
		md_positions(c, ars, &md);
		rc = make_plots(c, ars, out, &md);
		md_costs(c, ars, out, &md);
	}
	if (!rc) {
		write_json(c, ars, &js, done);
		char path[4200];
		snprintf(path, sizeof path, "%s/results.json", out);
		rc = nb_write_file_atomic(path, js.data, js.len);
		snprintf(path, sizeof path, "%s/results.md", out);
		if (!rc)
			rc = nb_write_file_atomic(path, md.data, md.len);
	}
	free(md.data), free(js.data);
	for (int a = 0; a < c->n_arms; a++)
		for (int s = 0; s < c->seeds && s < MAX_SEEDS; s++)
			nb_json_free(ars[a].r[s]), free(ars[a].text[s]);
	free(ars);
	return rc;
}

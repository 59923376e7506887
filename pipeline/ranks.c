#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "pipeline/ranks.h"

#include <mpi.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/nb_error.h"

void ranks_start(int *argc, char ***argv, int *rank, int *size)
{
	int inited = 0;
	MPI_Initialized(&inited);
	if (!inited && MPI_Init(argc, argv) != MPI_SUCCESS)
		nb_die("MPI_Init failed");
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	MPI_Comm_size(MPI_COMM_WORLD, size);
	const char *nt = getenv("SLURM_NTASKS");
	const char *jobstep = getenv("SLURM_STEP_ID");
	if (nt && jobstep) {
		int want = atoi(nt);
		if (want > 0 && want != *size)
			nb_die("MPI world has %d rank(s) but SLURM_NTASKS=%d: srun started singletons; "
			       "use 'srun --mpi=pmix' (see docs/training.md, \"Slurm\")", *size, want);
	}
}

void ranks_finish(void)
{
	int fin = 0;
	MPI_Finalized(&fin);
	if (!fin)
		MPI_Finalize();
}

void ranks_agree(int ok, const char *what)
{
	int all = 0;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (all)
		return;
	if (ok)
		nb_error("%s failed on another rank", what);
	else if (!*nb_errmsg())
		nb_error("%s failed", what);
	ranks_fail_all();
}

void ranks_fail_all(void)
{
	int rank = 0;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	const char *msg = nb_errmsg();
	int own = *msg && !strstr(msg, "on another rank"), r0_own = own;
	MPI_Bcast(&r0_own, 1, MPI_INT, 0, MPI_COMM_WORLD);
	if (rank == 0)
		fprintf(stderr, "nboost: fatal: %s\n", *msg ? msg : "failed (no cause recorded)");
	else if (own && !r0_own)
		fprintf(stderr, "nboost: fatal: rank %d: %s\n", rank, msg);
	ranks_finish();
	exit(1);
}

int ranks_threads(int *automatic) { return ranks_threads_weighted(1, automatic); }

int ranks_threads_weighted(int heavy, int *automatic)
{
	const char *env = getenv("OMP_NUM_THREADS");
	int from_env = env && *env;
	/* Collective in both cases, so every rank takes the same path. */
	MPI_Comm node;
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
	int local = 1;
	cpu_set_t mine, all;
	CPU_ZERO(&mine);
	int mine_n;
	if (sched_getaffinity(0, sizeof mine, &mine) == 0) {
		mine_n = CPU_COUNT(&mine);
	} else { /* no affinity information: all online CPUs */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		mine_n = n > 0 ? (int)n : 1;
		for (int c = 0; c < mine_n && c < CPU_SETSIZE; c++)
			CPU_SET(c, &mine);
	}
	MPI_Allreduce(&mine, &all, (int)sizeof mine, MPI_BYTE, MPI_BOR, node);
	heavy = heavy != 0;
	MPI_Allreduce(&heavy, &local, 1, MPI_INT, MPI_SUM, node);
	MPI_Comm_free(&node);
	if (automatic)
		*automatic = !from_env;
	if (from_env)
		return omp_get_max_threads();
	if (!heavy) {
		omp_set_num_threads(1);
		return 1;
	}
	int n = CPU_COUNT(&all) / (local > 0 ? local : 1);
	if (n > mine_n)
		n = mine_n;
	if (n < 1)
		n = 1;
	omp_set_num_threads(n);
	return n;
}

#define GATHER_CHUNK (1 << 28) /* bytes per message: well under INT_MAX */

void ranks_gather_in_order(const void *data, size_t n, void (*sink)(void *ctx, const void *bytes, size_t n),
			   void *ctx)
{
	int rank, size;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (rank != 0) {
		unsigned long long len = n;
		/* rank 0 asks in turn, so that ranks do not flood it at once */
		MPI_Recv(NULL, 0, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		MPI_Send(&len, 1, MPI_UNSIGNED_LONG_LONG, 0, 0, MPI_COMM_WORLD);
		for (size_t at = 0; at < n; at += GATHER_CHUNK) {
			size_t k = n - at < GATHER_CHUNK ? n - at : GATHER_CHUNK;
			MPI_Send((const char *)data + at, (int)k, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
		}
		return;
	}
	char *buf = NULL;
	size_t cap = 0;
	for (int r = 1; r < size; r++) {
		unsigned long long len = 0;
		MPI_Send(NULL, 0, MPI_BYTE, r, 0, MPI_COMM_WORLD);
		MPI_Recv(&len, 1, MPI_UNSIGNED_LONG_LONG, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (unsigned long long at = 0; at < len; at += GATHER_CHUNK) {
			size_t k = len - at < GATHER_CHUNK ? (size_t)(len - at) : GATHER_CHUNK;
			if (k > cap)
				buf = nb_xrealloc(buf, cap = k);
			MPI_Recv(buf, (int)k, MPI_BYTE, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
			sink(ctx, buf, k);
		}
	}
	free(buf);
}

void ranks_block(long n, int rank, int size, long *lo, long *hi)
{
	*lo = (long)((long long)n * rank / size);
	*hi = (long)((long long)n * (rank + 1) / size);
}

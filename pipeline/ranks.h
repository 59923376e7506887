/* MPI start-up shared by the commands that run under mpirun/srun. Every MPI
 * command also runs as a single process without a launcher. */
#ifndef NB_PIPELINE_RANKS_H
#define NB_PIPELINE_RANKS_H

#include "common/nb_error.h"

/* MPI_Init (if not yet initialised), then checks that the world size matches
 * SLURM_NTASKS when that is set: `srun` without PMIx silently starts
 * singletons, which would each redo the whole job. Dies with a clear message
 * on mismatch. */
void ranks_start(int *argc, char ***argv, int *rank, int *size);
void ranks_finish(void);

/* Threads per rank (collective over MPI_COMM_WORLD). OMP_NUM_THREADS, when
 * set, wins. Otherwise the ranks of one node share that node's CPUs: each
 * gets (CPUs in the union of the node's ranks' affinity masks) / (ranks on
 * the node), at least 1 and at most its own mask's CPU count. This keeps
 * `mpirun --oversubscribe` and unbound launches from running more threads
 * than cores, where every OpenMP barrier would wait for a descheduled
 * thread (measured: KV decoding 20x slower per caption). Sets the OpenMP
 * thread count and returns it; *automatic says whether it was computed. */
int ranks_threads(int *automatic);
/* The same where ranks differ in weight (nboost run): a light rank
 * (heavy = 0: the master, filters) gets one thread and sleeps while it
 * waits; the heavy ranks of a node share its CPUs among themselves. */
int ranks_threads_weighted(int heavy, int *automatic);
/* The one "agree or fail on every rank" of the commands (collective over
 * MPI_COMM_WORLD): returns when ok on every rank, otherwise
 * ranks_fail_all() on each. A rank that fails records its cause with
 * nb_error() and does not print it; a rank that did not fail records
 * "<what> failed on another rank". */
void ranks_agree(int ok, const char *what);

/* Collective: every rank calls it together, after a failure they all know
 * of (a collective call that returned -1 everywhere, or ranks_agree).
 * Prints the error once and exits 1 on every rank: rank 0 prints its
 * nb_errmsg(); another rank prints its own (prefixed "rank N: ") only when
 * it is a cause of its own and rank 0 met none, so an error that every
 * rank met (a bad shard, a bad job file) is printed once. A message
 * containing "on another rank" is not a cause of its own. */
NB_NORETURN void ranks_fail_all(void);

/* Collective over MPI_COMM_WORLD: hands rank 0 the bytes of every other
 * rank, in rank order (rank 1's, then rank 2's, ...), as calls of
 * sink(ctx, bytes, n) on rank 0, several per rank for large buffers; rank
 * 0's own bytes are not passed. Ranks > 0 pass their data; rank 0 passes
 * NULL, 0. The work splits of `nboost caption` and `nboost eval`: each rank
 * does a contiguous block of the images, so rank order is the order of one
 * process. */
void ranks_gather_in_order(const void *data, size_t n, void (*sink)(void *ctx, const void *bytes, size_t n),
			   void *ctx);

/* Rank r's contiguous share [*lo, *hi) of n items split over size ranks. */
void ranks_block(long n, int rank, int size, long *lo, long *hi);

#endif

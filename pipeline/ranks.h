/* MPI start-up shared by the commands that run under mpirun/srun. Every MPI
 * command also runs as a single process without a launcher. */
#ifndef NB_PIPELINE_RANKS_H
#define NB_PIPELINE_RANKS_H

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
/* Dies on all ranks when any rank passes ok == 0 (collective). The rank with
 * the failure prints its own message before calling this. */
void ranks_agree(int ok, const char *what);

#endif

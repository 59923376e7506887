/* MPI start-up shared by the commands that run under mpirun/srun. Every MPI
 * command also runs as a single process without a launcher. */
#ifndef NB_CLI_MPI_H
#define NB_CLI_MPI_H

/* MPI_Init (if not yet initialised), then checks that the world size matches
 * SLURM_NTASKS when that is set: `srun` without PMIx silently starts
 * singletons, which would each redo the whole job. Dies with a clear message
 * on mismatch. */
void cli_mpi_start(int *argc, char ***argv, int *rank, int *size);
void cli_mpi_finish(void);
/* Dies on all ranks when any rank passes ok == 0 (collective). The rank with
 * the failure prints its own message before calling this. */
void cli_mpi_agree(int ok, const char *what);

#endif

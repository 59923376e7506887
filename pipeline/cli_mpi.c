#include "pipeline/cli_mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/nb_error.h"

void cli_mpi_start(int *argc, char ***argv, int *rank, int *size)
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
			       "use 'srun --mpi=pmix' (see docs/running.md)", *size, want);
	}
}

void cli_mpi_finish(void)
{
	int fin = 0;
	MPI_Finalized(&fin);
	if (!fin)
		MPI_Finalize();
}

void cli_mpi_agree(int ok, const char *what)
{
	int all = 0;
	MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
	if (!all) {
		int rank = 0;
		MPI_Comm_rank(MPI_COMM_WORLD, &rank);
		if (rank == 0)
			fprintf(stderr, "nboost: fatal: %s failed on at least one rank\n", what);
		MPI_Finalize();
		exit(1);
	}
}

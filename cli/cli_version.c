/* cli/cli_version.c: `nboost --version` (cli_version.h). Library versions
 * are those of the libraries loaded at run time where they say so (HDF5,
 * MPI, libcurl, zstd, OpenBLAS), not of the headers built against. */
#include "cli/cli_version.h"

#include <string.h>

#include <curl/curl.h>
#include <hdf5.h>
#include <mpi.h>
#include <zstd.h>

#include "common/nb_prov.h"
#include "model/blas.h"

/* The first line of MPI_Get_library_version's text (Open MPI's runs on). */
static void mpi_version(char *buf, size_t n)
{
	char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
	int len = 0;
	if (MPI_Get_library_version(lib, &len) != MPI_SUCCESS || !lib[0]) {
		snprintf(buf, n, "unknown");
		return;
	}
	lib[strcspn(lib, "\n,")] = '\0';
	snprintf(buf, n, "%s", lib);
}

void cli_print_version(FILE *f)
{
	unsigned maj = 0, min = 0, rel = 0;
	H5get_libversion(&maj, &min, &rel);
	hbool_t par = 0;
#ifdef H5_HAVE_PARALLEL
	par = 1;
#endif
	char mpi[256];
	mpi_version(mpi, sizeof mpi);
	fprintf(f, "nboost %s\n", nb_version());
	fprintf(f, "commit   %s\n", nb_commit());
	fprintf(f, "blas     %s\n", blas_describe());
	fprintf(f, "hdf5     %u.%u.%u%s\n", maj, min, rel, par ? " (parallel)" : "");
	fprintf(f, "mpi      %s\n", mpi);
	fprintf(f, "libcurl  %s\n", curl_version_info(CURLVERSION_NOW)->version);
	fprintf(f, "zstd     %s\n", ZSTD_versionString());
}

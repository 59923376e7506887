/* BLAS selection and threading (docs/performance.md).
 *
 * blas_runtime_init() must be the first call in main(): some BLAS builds pick
 * their kernels from the environment when the library loads, before main(),
 * so a fix to the kernel choice needs a re-exec. It may replace the process
 * image (execv) once; it never does so when the environment already holds
 * the choice (tests and valgrind runs set it). */
#ifndef NB_BLAS_H
#define NB_BLAS_H

void blas_runtime_init(int argc, char **argv);
/* Human-readable BLAS and kernel description, for logs and benchmarks. */
const char *blas_describe(void);

#endif

/* `nboost run`: the distributed semi-supervised pipeline (docs/pipeline.md).
 *
 * MPI_COMM_WORLD is split into one master (rank 0), run.teachers teacher
 * ranks, run.filters filter ranks and run.students student ranks, in that
 * order of world rank. Per round:
 *   - the master cuts the unlabeled shards into units of run.unit images and
 *     hands them out on request (pull-based, at most run.in_flight per
 *     teacher), reassigning a unit that stalls past run.stall_timeout;
 *   - teachers decode 1 clean + K noisy captions per image (model/decode.h,
 *     noise keyed by (seed, round, image id, k)) and send each unit to the
 *     filter unit % filters;
 *   - filters apply the consistency filter (labeler/consistency.h) and write
 *     one pseudo-label shard per unit, RUNDIR/round-R/pseudo/unit-U.h5
 *     (committed atomically, none when nothing was accepted), then report
 *     the unit to the master, who records it in the journal;
 *   - students train data-parallel on the labeled shards plus the pseudo
 *     shards as they are committed (streaming) or once labeling ends.
 * The student of round r is the teacher of round r+1. With teacher.model
 * empty, round 0 first trains a teacher on the labeled shards.
 *
 * Resume: rerunning on the same RUNDIR continues from the journal
 * (pipeline/journal.h); the pseudo-labels are identical to an uninterrupted
 * run. SIGTERM, SIGINT and SIGUSR1 stop handing out units, let in-flight
 * units finish, checkpoint the students and return RUN_STOPPED. */
#ifndef NB_PIPELINE_RUN_H
#define NB_PIPELINE_RUN_H

#include "common/jobfile.h"
#include "common/nb_error.h"
#include "pipeline/run_job.h"

/* Exit statuses of run_pipeline (and of `nboost run`). */
#define RUN_DONE NB_EXIT_OK
#define RUN_FAILED NB_EXIT_ERROR
#define RUN_STOPPED NB_EXIT_STOPPED /* stopped on a signal, resumable: the same command continues */

/* Runs the pipeline on every rank of MPI_COMM_WORLD (collective; MPI is
 * initialised). job_text is the effective job file written to
 * RUNDIR/config.conf. Returns RUN_DONE / RUN_STOPPED on every rank, or dies
 * on every rank with a message naming the cause. */
int run_pipeline(const run_job *job, const jobfile *jf, const char *rundir);

/* Set by the command's signal handler; read by the master between messages. */
void run_request_stop(int sig);

#endif

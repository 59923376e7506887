# Helpers shared by the train_*.sh tests (sourced, not run).
set -u
: "${NBOOST:?run through ctest}" "${MPIEXEC:?}" "${NB_BUILD:?}"
MKDATA="$NB_BUILD/test/test_trainer_mkdata"
# One BLAS/OpenMP thread per rank: the machine has 2 cores for everything.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
source "$(dirname "$0")/lib.sh"
# losses STEP-LIMIT FILE: "step loss" lines of a metrics.jsonl
losses() { $PY -c 'import json,sys
for l in open(sys.argv[1]): d=json.loads(l); print(d["step"], repr(d["loss"]))' "$1"; }
digest() { $PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); print(f.attrs["params_digest"].decode(), int(f.attrs["step"]))' "$1"; }

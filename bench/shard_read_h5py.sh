#!/bin/bash
# h5py reading shard images one by one (ds[i]) at its default chunk cache
# and at a larger one, for shards written by two nboost binaries in the same
# run (a baseline build and this one): schemas/image_shard.md, "Chunk size
# and the chunk cache".
#   bench/shard_read_h5py.sh BASE_NBOOST NEW_NBOOST [SIZES]
# SIZES: image sides to test (default "48 256"); 640 images each.
# Needs HDF5_PLUGIN_PATH (or an installed plugin) for the zstd filter.
set -euo pipefail
base=${1:?usage: $0 BASE_NBOOST NEW_NBOOST [SIZES]}
new=${2:?usage: $0 BASE_NBOOST NEW_NBOOST [SIZES]}
sizes=${3:-48 256}
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
args=()
for px in $sizes; do
	for which in base new; do
		bin=$base
		[ $which = new ] && bin=$new
		"$bin" synth --out "$T/$which-$px" --labeled 0 --test 0 --unlabeled 640 --size "$px" \
			--shard-size 640 -q
		args+=("$which-${px}px=$T/$which-$px/unlabeled/shard-000000.h5")
	done
done
/usr/bin/python3 "$here/shard_read_h5py.py" --runs "${RUNS:-3}" "${args[@]}"

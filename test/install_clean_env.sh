#!/bin/bash
# `cmake --install` makes nboost's files readable with no environment
# variable (docs/install.md): it installs into a DESTDIR under the test's
# scratch directory (installing into / from a test would change the
# machine), then, in a private mount namespace (unshare -m, root only), lays
# that tree's folders over the real ones and runs h5py, h5dump and nboost
# from `env -i` (no HDF5_PLUGIN_PATH, Debian's default PATH). The same
# checks without the overlay must fail, so the test proves the install and
# not a plugin that happens to be on the machine.
set -u
: "${NBOOST:?NBOOST must name the nboost binary}"
: "${NB_BUILD:?NB_BUILD must name the build directory}"
source "$(dirname "$0")/lib.sh"
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	echo "install_clean_env: needs root and unshare -m (mount namespaces), skipped" >&2
	exit 77
fi
CLEAN=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
ROOT=$T/root
run_ok "cmake --install into DESTDIR" env DESTDIR="$ROOT" cmake --install "$NB_BUILD" --prefix /usr/local
check "nboost is in <prefix>/bin" test -x "$ROOT/usr/local/bin/nboost"

# Where HDF5 looks by default: asked of h5py's libhdf5 (serial) and read
# from the Open MPI build's library, as CMake does.
SERIAL=$("${CLEAN[@]}" /usr/bin/python3 -c 'import h5py.h5pl as p; print(p.get(0).decode())')
MPI_LIB=$(ls /usr/lib/*/libhdf5_openmpi.so.* 2>/dev/null | head -1)
MPI_DIR=$( [ -n "$MPI_LIB" ] && strings "$MPI_LIB" | grep -m1 -E '^/.*/plugins?$')
for d in "$SERIAL" $MPI_DIR; do
	check "the plugin is installed in HDF5's default folder $d" test -f "$ROOT$d/libh5zstd.so"
done
check "the plugin needs no libhdf5 (one file for serial and MPI HDF5)" \
	bash -c "! ldd '$ROOT$SERIAL/libh5zstd.so' | grep -q libhdf5"

"$NBOOST" synth --out "$T/c" --labeled 5 --unlabeled 0 --test 0 --size 16 -q
SHARD=$T/c/labeled/shard-000000.h5
cat > "$T/read.py" <<'PYEOF'
import sys, h5py
f = h5py.File(sys.argv[1], "r")
im = f["images"][:]
assert im.shape == (5, 16, 16, 3) and im.any(), im.shape
words = f["vocab"].asstr()[...]
print(" ".join(words[t] for t in f["tokens"][f["offsets"][0]:f["offsets"][1]]))
PYEOF

# The mount points: the deepest existing folder above each installed one.
overlay() {
	local cmds="" d top
	for d in "$SERIAL" $MPI_DIR /usr/local/bin; do
		top=$d
		while [ ! -d "$top" ]; do top=$(dirname "$top"); done
		cmds+="mount --bind '$ROOT$top' '$top' && "
	done
	echo "$cmds"
}
in_ns() { unshare -m bash -c "$1 $2"; }
q() { printf '%q ' "$@"; }

# Without the installed files: no zstd filter, so the images are unreadable.
in_ns "" "$(q "${CLEAN[@]}" /usr/bin/python3 "$T/read.py" "$SHARD") >'$T/no.out' 2>'$T/no.err'"
check_sh "control: h5py cannot read /images without the plugin installed" \
	'[ $? -ne 0 ] && grep -q "Can.t read data" "$T/no.err"'
# With them: h5py, h5dump and nboost from a clean environment.
in_ns "$(overlay)" "$(q "${CLEAN[@]}" /usr/bin/python3 "$T/read.py" "$SHARD") >'$T/py.out' 2>'$T/py.err'"
check "h5py reads images and decodes a caption in env -i after install ($(head -c 300 "$T/py.err"))" \
	grep -qE '^(small|large) ' "$T/py.out"
in_ns "$(overlay)" "$(q "${CLEAN[@]}" h5dump -d /images -s 0,0,0,0 -c 1,1,2,3 "$SHARD") >'$T/dump.out' 2>&1"
check "h5dump reads /images in env -i after install ($(grep -m1 -i error "$T/dump.out"))" \
	bash -c "grep -q 'DATA {' '$T/dump.out' && ! grep -q 'unable to print' '$T/dump.out'"
in_ns "$(overlay)" "$(q "${CLEAN[@]}" sh -c 'command -v nboost && nboost --version') >'$T/ver.out' 2>&1"
check "nboost is on the default PATH and prints its version ($(head -c 200 "$T/ver.out"))" \
	bash -c "grep -q '^/usr/local/bin/nboost$' '$T/ver.out' && grep -q '^commit ' '$T/ver.out'"
finish

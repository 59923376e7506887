#!/bin/bash
# Interop of the shard format with the standard HDF5 tools: h5dump reads
# /images through our plugin (HDF5_PLUGIN_PATH=$NB_BUILD/plugins) and fails
# without it; h5py reads every dataset and attribute (test/shard_h5py.py).
# The shards come from `test_shard_store --write-pattern`, whose values are
# documented in test/test_shard_store.c and recomputed here.
set -u
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

BUILD=${NB_BUILD:?NB_BUILD not set}
PLUGINS=$BUILD/plugins
WRITER=$BUILD/test/test_shard_store
dir=$(mktemp -d "${TMPDIR:-/tmp}/nboost-interop-XXXXXX")
trap 'rm -rf "$dir"' EXIT

check '[ -f "$PLUGINS/libh5zstd.so" ]' "plugin $PLUGINS/libh5zstd.so not built"
# A sanitizer build (NB_SANITIZE=ON) makes a plugin that only loads into a
# process whose first library is the ASan runtime: preload it into the tools.
asan=$(ldd "$PLUGINS/libh5zstd.so" 2>/dev/null | awk '/libasan/ {print $3}')
if [ -n "$asan" ]; then
	export LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=0
fi
check '"$WRITER" --write-pattern "$dir"' "writer failed"
check '[ -f "$dir/images.h5" ] && [ -f "$dir/captions.h5" ]' "pattern shards missing"

if command -v h5dump >/dev/null; then
	# image 1, row 2, columns 3..4: (7i + 11y + 13x + 17c) mod 256
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /images -s "1,2,3,0" -c "1,1,2,3" "$dir/images.h5" 2>&1)
	check 'grep -q "(1,2,3,0): 68, 85, 102," <<<"$out"' "h5dump values (1,2,3,*): $out"
	check 'grep -q "(1,2,4,0): 81, 98, 115" <<<"$out"' "h5dump values (1,2,4,*): $out"
	# the last image sits in the partial last chunk
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /images -s "69,3,4,2" -c "1,1,1,1" "$dir/images.h5" 2>&1)
	v=$(( (7 * 69 + 11 * 3 + 13 * 4 + 17 * 2) % 256 ))
	check 'grep -q "(69,3,4,2): $v\$" <<<"$out"' "h5dump last image: expected $v in $out"
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /tokens -s 66 -c 3 "$dir/captions.h5" 2>&1)
	# captions 0..12 hold 0+1+...+11+0 = 66 tokens; caption 13 starts with 13, 14, 15
	check 'grep -q "(66): 13, 14, 15" <<<"$out"' "h5dump /tokens: $out"
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -a /schema "$dir/captions.h5" 2>&1)
	check 'grep -q "\"nboost.captions\"" <<<"$out"' "h5dump schema attribute: $out"
	# without the plugin the filtered data cannot be read
	out=$(env -u HDF5_PLUGIN_PATH h5dump -d /images "$dir/images.h5" 2>&1)
	rc=$?
	check '[ $rc -ne 0 ] && grep -q "unable to print data" <<<"$out"' "h5dump without plugin should fail (rc $rc)"
	check '! grep -q "68, 85, 102" <<<"$out"' "h5dump without plugin printed data"
else
	bad "h5dump not installed (apt-get install hdf5-tools)"
fi

if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
	out=$(HDF5_PLUGIN_PATH=$PLUGINS /usr/bin/python3 "$NB_SRC/test/shard_h5py.py" "$dir" 2>&1)
	rc=$?
	echo "$out"
	check '[ $rc -eq 0 ]' "h5py interop (rc $rc)"
	out=$(env -u HDF5_PLUGIN_PATH /usr/bin/python3 "$NB_SRC/test/shard_h5py.py" --expect-no-plugin "$dir" 2>&1)
	rc=$?
	check '[ $rc -eq 0 ]' "h5py without plugin should fail to read /images: $out"
else
	bad "/usr/bin/python3 lacks h5py/numpy (apt-get install python3-h5py python3-numpy)"
fi

echo "shard_interop: $pass passed, $fail failed"
[ $fail -eq 0 ]

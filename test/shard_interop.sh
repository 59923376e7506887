#!/bin/bash
# Interop of the shard format with the standard HDF5 tools: h5dump reads
# /images through our plugin (HDF5_PLUGIN_PATH=$NB_BUILD/plugins) and fails
# without it; h5py reads every dataset and attribute (test/shard_h5py.py).
# The shards come from `test_shard_store --write-pattern`, whose values are
# documented in test/test_shard_store.c and recomputed here.
set -u
source "$(dirname "$0")/lib.sh"

BUILD=${NB_BUILD:?NB_BUILD not set}
PLUGINS=$BUILD/plugins
WRITER=$BUILD/test/test_shard_store
dir=$T

check_sh "plugin $PLUGINS/libh5zstd.so not built" '[ -f "$PLUGINS/libh5zstd.so" ]'
# A sanitizer build (NB_SANITIZE=ON) makes a plugin that only loads into a
# process whose first library is the ASan runtime: preload it into the tools.
asan=$(ldd "$PLUGINS/libh5zstd.so" 2>/dev/null | awk '/libasan/ {print $3}')
if [ -n "$asan" ]; then
	export LD_PRELOAD=$asan ASAN_OPTIONS=detect_leaks=0
fi
check_sh "writer failed" '"$WRITER" --write-pattern "$dir"'
check_sh "pattern shards missing" '[ -f "$dir/images.h5" ] && [ -f "$dir/captions.h5" ]'

if command -v h5dump >/dev/null; then
	# image 1, row 2, columns 3..4: (7i + 11y + 13x + 17c) mod 256
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /images -s "1,2,3,0" -c "1,1,2,3" "$dir/images.h5" 2>&1)
	check_sh "h5dump values (1,2,3,*): $out" 'grep -q "(1,2,3,0): 68, 85, 102," <<<"$out"'
	check_sh "h5dump values (1,2,4,*): $out" 'grep -q "(1,2,4,0): 81, 98, 115" <<<"$out"'
	# the last image sits in the partial last chunk
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /images -s "69,3,4,2" -c "1,1,1,1" "$dir/images.h5" 2>&1)
	v=$(( (7 * 69 + 11 * 3 + 13 * 4 + 17 * 2) % 256 ))
	check_sh "h5dump last image: expected $v in $out" 'grep -q "(69,3,4,2): $v\$" <<<"$out"'
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -d /tokens -s 92 -c 3 "$dir/captions.h5" 2>&1)
	# captions 0..12 hold 2+3+...+13+2 = 92 tokens; caption 13 starts with 13, 14, 15
	check_sh "h5dump /tokens: $out" 'grep -q "(92): 13, 14, 15" <<<"$out"'
	out=$(HDF5_PLUGIN_PATH=$PLUGINS h5dump -a /schema "$dir/captions.h5" 2>&1)
	check_sh "h5dump schema attribute: $out" 'grep -q "\"nboost.captions\"" <<<"$out"'
	# without the plugin the filtered data cannot be read
	out=$(env -u HDF5_PLUGIN_PATH h5dump -d /images "$dir/images.h5" 2>&1)
	rc=$?
	check_sh "h5dump without plugin should fail (rc $rc)" '[ $rc -ne 0 ] && grep -q "unable to print data" <<<"$out"'
	check_sh "h5dump without plugin printed data" '! grep -q "68, 85, 102" <<<"$out"'
else
	bad "h5dump not installed (apt-get install hdf5-tools)"
fi

if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
	out=$(HDF5_PLUGIN_PATH=$PLUGINS /usr/bin/python3 "$NB_SRC/test/shard_h5py.py" "$dir" 2>&1)
	rc=$?
	echo "$out"
	check_sh "h5py interop (rc $rc)" '[ $rc -eq 0 ]'
	out=$(env -u HDF5_PLUGIN_PATH /usr/bin/python3 "$NB_SRC/test/shard_h5py.py" --expect-no-plugin "$dir" 2>&1)
	rc=$?
	check_sh "h5py without plugin should fail to read /images: $out" '[ $rc -eq 0 ]'
else
	bad "/usr/bin/python3 lacks h5py/numpy (apt-get install python3-h5py python3-numpy)"
fi

finish

#!/usr/bin/env bash
# scripts/check-layers passes on the tree, and catches an include that goes
# up the layer order (a copy of the tree with one violation planted).
. "$NB_SRC/test/lib.sh"
cd "$NB_SRC"

run_ok "check-layers on the tree" bash scripts/check-layers "$NB_SRC"

# A copy of the library folders with store/ including the trainer.
mkdir -p "$T/tree/scripts"
cp scripts/check-layers "$T/tree/scripts/"
for d in common store model corpus trainer labeler pipeline study cli; do cp -r "$d" "$T/tree/"; done
run_ok "check-layers on the copy" bash "$T/tree/scripts/check-layers" "$T/tree"
printf '#include "trainer/train.h"\n' >> "$T/tree/store/shard_store.c"
expect_fail 1 "store/shard_store.c:" bash "$T/tree/scripts/check-layers" "$T/tree"
check_sh "the violation names the allowed folders" "grep -q 'store may use: common' '$T/err.txt'"

# A folder of C sources that the table does not know is an error too.
mkdir -p "$T/tree2/scripts" "$T/tree2/extra"
cp scripts/check-layers "$T/tree2/scripts/"
for d in common store model corpus trainer labeler pipeline study cli; do cp -r "$d" "$T/tree2/"; done
printf 'int x;\n' > "$T/tree2/extra/x.c"
expect_fail 1 "'extra' holds C sources" bash "$T/tree2/scripts/check-layers" "$T/tree2"
finish

#!/bin/bash
# nb_apt_mirror (scripts/lib/apt-mirror.sh, used by scripts/fresh-check):
# the Debian mirror comes from sample apt configurations in scratch trees
# (deb822 .sources, sources.list, sources.list.d/*.list), NB_DEBIAN_MIRROR
# overrides it, and a tree without one fails with a clear message. All hosts
# are fake (.invalid). Needs no build: ctest sets NB_SRC; standalone,
# `bash test/apt_mirror.sh` (NB_SRC defaults to this checkout).
set -u
NB_SRC=${NB_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/lib/apt-mirror.sh
source "$NB_SRC/scripts/lib/apt-mirror.sh"
unset NB_DEBIAN_MIRROR

M=http://mirror.example.invalid/debian
# mkroot NAME: a scratch root with an empty etc/apt/sources.list.d
mkroot() { mkdir -p "$T/$1/etc/apt/sources.list.d"; echo "$T/$1"; }
# is WHAT WANT CMD...: CMD exits 0 and prints exactly WANT
is() {
	local what=$1 want=$2 got; shift 2
	got=$("$@" 2>"$T/is.err")
	local rc=$?
	if [ "$rc" -ne 0 ]; then bad "$what: exit $rc: $(head -c 400 "$T/is.err")"
	elif [ "$got" != "$want" ]; then bad "$what: got '$got', want '$want'"
	else ok; fi
}

# ---- deb822 .sources ----
r=$(mkroot deb822)
cat >"$r/etc/apt/sources.list.d/a-other.sources" <<'EOF'
# A third-party repository that calls its suite bookworm: no main, not taken.
Types: deb
URIs: https://thirdparty.example.invalid/repo
Suites: bookworm
Components: stable
EOF
cat >"$r/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://security.example.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example.invalid/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://disabled.example.invalid/debian
Suites: bookworm
Components: main
Enabled: no

types: deb
# a comment inside the stanza
uris: http://mirror.example.invalid/debian/
suites: bookworm
 bookworm-updates
components: main contrib
signed-by: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://later.example.invalid/debian
Suites: bookworm
Components: main
EOF
is "deb822: the main deb stanza, not security/deb-src/disabled/third-party" "$M" nb_apt_mirror "$r"
is "deb822: ROOT with a trailing slash" "$M" nb_apt_mirror "$r/"
is "deb822: a suite on a continuation line" "$M" nb_apt_mirror "$r" bookworm-updates
is "deb822: security is found only when asked for" http://security.example.invalid/debian-security \
	nb_apt_mirror "$r" bookworm-security
# deb822 wins over sources.list
echo "deb http://oneline.example.invalid/debian bookworm main" >"$r/etc/apt/sources.list"
is "deb822 before sources.list" "$M" nb_apt_mirror "$r"

# ---- one-line sources.list ----
r=$(mkroot oneline)
cat >"$r/etc/apt/sources.list" <<'EOF'
# deb http://commented.example.invalid/debian bookworm main
deb http://security.example.invalid/debian-security bookworm-security main contrib
deb-src http://src.example.invalid/debian bookworm main
deb https://thirdparty.example.invalid/repo bookworm stable
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://mirror.example.invalid/debian bookworm main # trailing comment
deb http://later.example.invalid/debian bookworm main
EOF
is "sources.list: the main deb line, options skipped" "$M" nb_apt_mirror "$r"
sed -i 's/\[ arch=amd64 signed-by=[^]]*\]/[arch=amd64]/' "$r/etc/apt/sources.list"
is "sources.list: [opt] as one word" "$M" nb_apt_mirror "$r"
r=$(mkroot listd)
echo "deb http://mirror.example.invalid/debian/ bookworm main" >"$r/etc/apt/sources.list.d/debian.list"
is "sources.list.d/*.list without sources.list" "$M" nb_apt_mirror "$r"
expect_fail 1 "suite 'trixie'" nb_apt_mirror "$r" trixie

# ---- the override ----
# with_override VALUE ROOT: nb_apt_mirror ROOT with NB_DEBIAN_MIRROR=VALUE
# shellcheck disable=SC2317 # called through is()
with_override() { local NB_DEBIAN_MIRROR=$1; nb_apt_mirror "$2"; }
is "NB_DEBIAN_MIRROR wins over the files" http://override.example.invalid/debian \
	with_override http://override.example.invalid/debian/ "$T/deb822"
is "NB_DEBIAN_MIRROR wins with no apt files" http://override.example.invalid/debian \
	with_override http://override.example.invalid/debian "$T/nothing"
is "an empty NB_DEBIAN_MIRROR is no override" "$M" with_override "" "$T/deb822"
check "the override does not leak" test -z "${NB_DEBIAN_MIRROR+set}"

# ---- nothing found ----
r=$(mkroot empty)
expect_fail 1 "NB_DEBIAN_MIRROR" nb_apt_mirror "$r"
check "error names the .sources files" grep -qF "$r/etc/apt/sources.list.d/*.sources" "$T/err.txt"
check "error names sources.list" grep -qF "$r/etc/apt/sources.list," "$T/err.txt"
check "error names the .list files" grep -qF "$r/etc/apt/sources.list.d/*.list" "$T/err.txt"
check "error says none exists" grep -qF "none of these files exists" "$T/err.txt"
check "nothing on stdout" test ! -s "$T/out.txt"
r=$(mkroot security-only)
echo "deb http://security.example.invalid/debian-security bookworm-security main" >"$r/etc/apt/sources.list"
expect_fail 1 "files read: $r/etc/apt/sources.list" nb_apt_mirror "$r"

# ---- scripts/fresh-check uses it and carries no address ----
check "fresh-check sources scripts/lib/apt-mirror.sh" grep -q '^source scripts/lib/apt-mirror.sh' "$NB_SRC/scripts/fresh-check"
check "fresh-check calls nb_apt_mirror" grep -q 'nb_apt_mirror' "$NB_SRC/scripts/fresh-check"
check "fresh-check and the lookup carry no URL" test -z "$(grep -E '[a-z]+://' "$NB_SRC/scripts/fresh-check" "$NB_SRC/scripts/lib/apt-mirror.sh")"

finish

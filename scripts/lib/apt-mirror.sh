# shellcheck shell=bash
# Sourced, not run (scripts/fresh-check, test/apt_mirror.sh). The project
# carries no mirror address: the Debian mirror comes from the apt
# configuration of the machine it runs on.
#
#   nb_apt_mirror [ROOT [SUITE]]
#
# prints the URI (without a trailing slash) of the first apt entry that has
# type `deb`, suite SUITE (default bookworm) and component `main`, looking in
#   1. ROOT/etc/apt/sources.list.d/*.sources   (deb822 stanzas: Types, URIs,
#      Suites, Components; `Enabled: no` stanzas are skipped)
#   2. ROOT/etc/apt/sources.list, then ROOT/etc/apt/sources.list.d/*.list
#      (one-line `deb [options] URI SUITE COMPONENT...`; comments skipped)
# ROOT defaults to /; a test points it at a scratch tree holding etc/apt/...
# Only the exact suite counts, so SUITE-security (another archive) and
# SUITE-updates entries are never taken, nor is a third-party repository
# without `main`. NB_DEBIAN_MIRROR, when set and not empty, wins over all of
# it. Returns 1 with a message on stderr when nothing is found.

# _nb_apt_deb822 FILE...: "SUITE<TAB>URI" for each usable URI x suite pair.
_nb_apt_deb822() {
	awk '
	function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
	function has(list, word,   a, n, i) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) if (a[i] == word) return 1
		return 0
	}
	function flush(   nu, ns, u, s, i, j) {
		if (has(v["types"], "deb") && has(v["components"], "main") &&
		    tolower(trim(v["enabled"])) !~ /^(no|false|off|without|disable)$/) {
			nu = split(v["uris"], u, " ")
			ns = split(v["suites"], s, " ")
			for (i = 1; i <= nu; i++) {
				if (u[i] !~ /^(https?|ftp|file):/) continue
				sub(/\/+$/, "", u[i])
				for (j = 1; j <= ns; j++) print s[j] "\t" u[i]
			}
		}
		split("", v); field = ""
	}
	FNR == 1 { flush() }
	/^[ \t]*#/ { next }
	/^[ \t]*$/ { flush(); next }
	/^[ \t]/ { if (field != "") v[field] = v[field] " " $0; next }
	{
		i = index($0, ":")
		if (!i) { field = ""; next }
		field = tolower(trim(substr($0, 1, i - 1)))
		v[field] = substr($0, i + 1)
	}
	END { flush() }
	' "$@"
}

# _nb_apt_oneline FILE...: the same pairs from one-line sources.list files.
_nb_apt_oneline() {
	awk '
	{ sub(/#.*/, "") }
	$1 != "deb" { next }
	{
		i = 2
		if ($2 ~ /^\[/) {            # [ options ], possibly spread over fields
			while (i <= NF && $i !~ /\]$/) i++
			i++
		}
		if (i + 2 > NF || $i !~ /^(https?|ftp|file):/) next
		main = 0
		for (j = i + 2; j <= NF; j++) if ($j == "main") main = 1
		if (!main) next
		u = $i
		sub(/\/+$/, "", u)
		print $(i + 1) "\t" u
	}
	' "$@"
}

nb_apt_mirror() {
	local root=${1:-/} suite=${2:-bookworm} f uri
	local -a deb822=() oneline=()
	root=${root%/}
	if [[ -n ${NB_DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "${NB_DEBIAN_MIRROR%/}"
		return 0
	fi
	for f in "$root"/etc/apt/sources.list.d/*.sources; do
		if [[ -f $f ]]; then deb822+=("$f"); fi
	done
	for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
		if [[ -f $f ]]; then oneline+=("$f"); fi
	done
	uri=$(
		{
			if ((${#deb822[@]})); then _nb_apt_deb822 "${deb822[@]}"; fi
			if ((${#oneline[@]})); then _nb_apt_oneline "${oneline[@]}"; fi
		} | awk -F '\t' -v s="$suite" '$1 == s && !found { print $2; found = 1 }'
	)
	if [[ -n $uri ]]; then
		printf '%s\n' "$uri"
		return 0
	fi
	{
		echo "nb_apt_mirror: no Debian mirror found: no 'deb' entry with suite '$suite' and component 'main' in"
		echo "  $root/etc/apt/sources.list.d/*.sources, $root/etc/apt/sources.list, $root/etc/apt/sources.list.d/*.list"
		local -a seen=("${deb822[@]}" "${oneline[@]}")
		if ((${#seen[@]})); then
			echo "  (files read: ${seen[*]})"
		else
			echo "  (none of these files exists)"
		fi
		echo "  Set NB_DEBIAN_MIRROR to the URL of a Debian mirror to use one explicitly."
	} >&2
	return 1
}

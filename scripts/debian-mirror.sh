#!/usr/bin/env bash
# Prints the URI of this machine's main Debian mirror, read from its deb822 apt sources.
set -euo pipefail
sources=/etc/apt/sources.list.d/debian.sources
[ -r "$sources" ] || { echo "debian-mirror.sh: cannot read $sources" >&2; exit 1; }
# Paragraph mode: the first stanza with a plain suite (not "-security"/"-updates") names the main mirror.
uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
  { uri = ""; plain = 0
    for (i = 1; i <= NF; i++) {
      line = $i
      if (sub(/^URIs:[ \t]*/, "", line)) { split(line, u, /[ \t]+/); uri = u[1] }
      if (sub(/^Suites:[ \t]*/, "", line)) { n = split(line, s, /[ \t]+/); for (j = 1; j <= n; j++) if (s[j] !~ /-/) plain = 1 }
    }
    if (plain && uri != "") { print uri; exit } }' "$sources")
[ -n "$uri" ] || { echo "debian-mirror.sh: no main mirror URI found in $sources" >&2; exit 1; }
printf '%s\n' "$uri"

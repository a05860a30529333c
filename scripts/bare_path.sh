#!/usr/bin/env bash
# Prints a PATH as on a bare machine: FOLDER (new or empty) filled with links to every program on
# the current PATH except pandoc, TeX, JBIG and jemalloc tools, so that tests needing them skip.
#   PATH=$(scripts/bare_path.sh "$(mktemp -d)") make test      (.ci/run does this)
set -euo pipefail
bare=${1:?usage: scripts/bare_path.sh FOLDER}
mkdir -p "$bare"
[ -z "$(ls -A "$bare")" ] || { echo "error: $bare is not empty" >&2; exit 1; }
declare -A seen
IFS=: read -ra dirs <<< "$PATH"
for dir in "${dirs[@]}"; do
  [ -d "$dir" ] && [ "$dir" != "$bare" ] || continue
  links=()
  for program in "$dir"/*; do
    name=${program##*/}
    case $name in
      pandoc|xelatex|pdflatex|lualatex|latexmk|tex|kpsewhich|pbmtojbg|jbgtopbm|jemalloc*) continue ;;
    esac
    [ -x "$program" ] && [ -z "${seen[$name]:-}" ] || continue  # the first on PATH wins
    seen[$name]=1
    links+=("$program")
  done
  [ ${#links[@]} -eq 0 ] || ln -s -t "$bare" -- "${links[@]}"
done
echo "$bare"

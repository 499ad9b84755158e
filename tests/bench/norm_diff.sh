#!/usr/bin/env bash
# Differential check of the normalizer (not a test): builds norm_diff.c
# against two built core libraries (a reference, e.g. the commit before a
# performance change, and the candidate), runs both over the corpus of
# norm_corpus.py and requires byte-identical output (text, fingerprint,
# values hash, kind, name, tags, lexer tokens; scs on and off; short
# output buffers).
#
#   bash tests/bench/norm_diff.sh REF_BUILD_DIR NEW_BUILD_DIR [COUNT [CORPUS_DIR...]]
#
# CORPUS_DIRs: more inputs, e.g. the corpus a fuzz_normalize run left behind.
#
# A REF_BUILD_DIR can be made from any commit with
#   git archive <commit> | tar -x -C /tmp/ref-src && cmake -S /tmp/ref-src -B /tmp/ref && cmake --build /tmp/ref
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ref="${1:?reference build dir}"
new="${2:?candidate build dir}"
count="${3:-60000}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for side in ref new; do
    dir="${!side}"
    [ -f "$dir/libpgproxy_core.a" ] || { echo "norm_diff: $dir/libpgproxy_core.a not found" >&2; exit 2; }
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O1 -I"$root/include" \
        "$root/tests/bench/norm_diff.c" "$dir/libpgproxy_core.a" -o "$tmp/diff_$side"
done
/usr/bin/python3 "$root/tests/bench/norm_corpus.py" "$root" "$count" "${@:4}" > "$tmp/corpus"
"$tmp/diff_ref" < "$tmp/corpus" > "$tmp/out_ref"
"$tmp/diff_new" < "$tmp/corpus" > "$tmp/out_new"
records=$(grep -c "^#" "$tmp/out_ref")
if cmp -s "$tmp/out_ref" "$tmp/out_new"; then
    echo "norm_diff: identical on $records records ($(wc -c < "$tmp/out_ref") bytes of output)"
else
    echo "norm_diff: DIFFERENT output; first differences:" >&2
    diff "$tmp/out_ref" "$tmp/out_new" | head -40 >&2
    exit 1
fi

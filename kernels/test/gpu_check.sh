#!/usr/bin/env bash
# gpu_check.sh: the GPU proof of the HIP backend on an NVIDIA machine, from the repository
# root, with binaries built elsewhere (no Go toolchain needed here). Build them with:
#   make kernels HIP_ARCH=gfx90a            # any build of the library, for the binaries to link
#   GOEXPERIMENT=simd go test -c -tags rocm -o .gpu/hip.test ./internal/hip
#   GOEXPERIMENT=simd go test -c -tags rocm -o .gpu/gretatest.test ./gretatest
#   GOEXPERIMENT=simd go test -c -tags rocm -o .gpu/familytest.test ./gretatest/familytest
#   GOEXPERIMENT=simd go test -c -tags rocm -o .gpu/policytest.test ./gretatest/policytest
#   GOEXPERIMENT=simd go test -c -tags rocm -o .gpu/longtest.test ./gretatest/policytest/longtest
#   go build -o .gpu/gretabisect ./cmd/gretabisect
# (GOEXPERIMENT=simd: the CPU reference's AVX-512 loops, same bits, faster comparisons.)
#
#   kernels/test/gpu_check.sh STEP...
#
# Steps, run in order:
#   tiny          the C kernel tests; the rocm suite on the tiny family (tiny, tiny-llama3,
#                 tiny-qwen2: GPU against the CPU reference, both routes, replay, faults); the
#                 committed cuda-sm90 digests and the B3.61 goldens of tiny; three runs of the
#                 family's digests
#   policy        the replay policy on the device against the CPU reference's goldens (tiny):
#                 calibrate (noise.json for golden/testdata/<device>/tiny, into $OUT), three
#                 clean runs of the standard prompts, the sensitivity matrix (60 cases on 50
#                 tokens, 4 at 826 and 1652); TestB361Families (tiny-llama3, tiny-qwen2) on the
#                 device by replay; the B3.61 goldens of tiny re-recorded with their manifest
#                 (into $OUT)
#   policy-PRESET the replay policy on a full-size preset: CPU goldens of the three prompts,
#                 calibrate the device, three clean bisects (exit status and margins)
#   sanitize      compute-sanitizer memcheck: the C kernel tests, then the rocm suite's tests
#                 on the tiny family
#   llama3.2-1b, qwen2.5-0.5b, tinyllama
#                 the full-size preset, generated in F32 to $MODELS/<preset>.gguf once: GPU
#                 against the CPU reference on the three standard prompts and the decode
#                 route, three runs of its digests, the benchmarks (prefill of 1653 tokens,
#                 decode at 1653 context) beside PyTorch eager of the same architecture.
#                 PARTS (default "compare digests bench") picks among those three.
#   goldens       record the per-device digests of the tiny family (internal/hip/testdata)
#                 into $OUT
# A compact summary, one line per figure, ends the output ($OUT/summary.txt). Logs go to
# $OUT (default .gpu/out). Each step fits a few minutes on an H100; the full-size steps are
# one command each.
set -uo pipefail
OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
ROOT=$PWD
MODELS=${MODELS:-/tmp}
PARTS=${PARTS:-compare digests bench}
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
export LD_LIBRARY_PATH=$ROOT/kernels/build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
say() { echo "$*" | tee -a "$SUMMARY"; }

build() {
	step "build the NVIDIA library and the C test driver"
	make kernels kernels-test HIP_PLATFORM=nvidia >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
}

hiptest() { (cd internal/hip && "$ROOT/.gpu/hip.test" "$@"); }

# verdict LOG NAME: one summary line from a go test log: PASS, or the failed tests.
verdict() {
	local failed
	failed=$(grep -E '^\s*--- FAIL' "$1" | sed -E 's/^\s*--- FAIL: ([^ ]+).*/\1/' | tr '\n' ' ')
	if grep -qE '^(FAIL|panic:)' "$1" || [ -n "$failed" ]; then say "$2: FAIL ${failed}(log $1)"; else say "$2: PASS"; fi
}

# digest_lines LOG: the digest lines of a test log (TestDigests, TestDeterministic), without
# timings.
digest_lines() { grep -E ': digest ' "$1" | grep -oE 'digest .*' | sed -E 's/ \([^)]*\)$//'; }

# three_runs NAME FILE1 FILE2 FILE3
three_runs() {
	if [ ! -s "$2" ]; then say "$1: no digests logged"
	elif cmp -s "$2" "$3" && cmp -s "$2" "$4"; then say "$1: three runs, identical digests ($(wc -l <"$2") lines)"
	else say "$1: three runs DIFFER (see $2 $3 $4)"; fi
}

tiny() {
	step "kernel tests"
	./kernels/build/kernel_test >"$OUT/kernel_test.log" 2>&1
	grep -v '^ok ' "$OUT/kernel_test.log"
	say "kernel_test: $(tail -1 "$OUT/kernel_test.log")"
	step "rocm suite on the tiny family"
	hiptest -test.v -test.count=1 -test.timeout 20m >"$OUT/hip_tiny.log" 2>&1
	grep -E '^\s*--- (FAIL|PASS|SKIP)|agree |digest |FIRST_FAIL|differ' "$OUT/hip_tiny.log" | grep -vE '^\s+--- PASS: Test(FaultLocalisation|OwnError|ReplayBitIdentical)/'
	verdict "$OUT/hip_tiny.log" "rocm suite, tiny family"
	grep -E 'agree .* p6_len_32 on' "$OUT/hip_tiny.log" | sed -E 's/^\s*[a-z_]+\.go:[0-9]+: //; s/, digest.*//' | while read -r l; do say "$l"; done
	grep -qE -- '--- PASS: TestDigests/tiny ' "$OUT/hip_tiny.log" && say "tiny: digests equal the committed internal/hip/testdata/cuda-sm90/tiny.digests" ||
		say "tiny: digests DIFFER from (or lack) the committed cuda-sm90/tiny.digests"
	step "B3.61 on hip against the committed golden/testdata/cuda-sm90/tiny (exact)"
	(cd gretatest && "$ROOT/.gpu/gretatest.test" -test.count=1 -test.run 'TestB361$' -test.v) >"$OUT/b361_tiny.log" 2>&1
	grep -E '^\s*--- |FIRST_FAIL|^(ok|FAIL|PASS)' "$OUT/b361_tiny.log"
	verdict "$OUT/b361_tiny.log" "TestB361 on hip, tiny, against golden/testdata/cuda-sm90/tiny"
	step "two more runs of the family's digests (both routes)"
	digest_lines "$OUT/hip_tiny.log" >"$OUT/digests_tiny1.txt"
	for i in 2 3; do
		hiptest -test.v -test.count=1 -test.run 'TestDigests|TestDeterministic' >"$OUT/digests_tiny$i.log" 2>&1
		digest_lines "$OUT/digests_tiny$i.log" >"$OUT/digests_tiny$i.txt"
	done
	cat "$OUT/digests_tiny1.txt"
	three_runs "tiny family (prefill and decode routes)" "$OUT"/digests_tiny{1,2,3}.txt
}

policy() {
	export GRETA_POLICY_BACKEND=hip
	step "calibrate the device on tiny (replay against the CPU reference), three clean runs"
	(cd gretatest/policytest && "$ROOT/.gpu/policytest.test" -test.v -test.count=1 -test.run 'TestNoiseFloors' -update) >"$OUT/policy_calibrate.log" 2>&1
	grep -E '^\s*--- |stage|margin|ratio' "$OUT/policy_calibrate.log" | head -40
	verdict "$OUT/policy_calibrate.log" "calibrate hip on tiny (noise.json recorded)"
	mkdir -p "$OUT/noise"
	for f in golden/testdata/*/tiny/noise.json; do cp "$f" "$OUT/noise/$(basename "$(dirname "$(dirname "$f")")").noise.json"; done
	(cd gretatest/policytest && "$ROOT/.gpu/policytest.test" -test.v -test.count=3 -test.run 'TestReplayPolicyClean') >"$OUT/policy_clean.log" 2>&1
	grep -E 'worst|^\s*--- ' "$OUT/policy_clean.log"
	verdict "$OUT/policy_clean.log" "hip on tiny, three clean runs of the three prompts under the replay policy"
	step "the sensitivity matrix on the device"
	(cd gretatest/policytest && "$ROOT/.gpu/policytest.test" -test.v -test.count=1 -test.run 'TestReplaySensitivity') >"$OUT/policy_sens.log" 2>&1 &
	(cd gretatest/policytest/longtest && "$ROOT/.gpu/longtest.test" -test.v -test.count=1) >"$OUT/policy_long.log" 2>&1
	wait
	grep -cE '^\s*--- PASS: TestReplaySensitivity/cases/' "$OUT/policy_sens.log" | sed 's/^/50-token cases passed: /'
	grep -E -- '--- FAIL|cases on' "$OUT/policy_sens.log" "$OUT/policy_long.log"
	verdict "$OUT/policy_sens.log" "sensitivity matrix on hip, 60 cases of 50 tokens"
	verdict "$OUT/policy_long.log" "sensitivity matrix on hip, 4 cases at 826 and 1652"
	step "TestB361Families on the device, by replay against the CPU goldens"
	(cd gretatest/familytest && "$ROOT/.gpu/familytest.test" -test.v -test.count=1 -test.run 'TestB361Families') >"$OUT/families.log" 2>&1
	grep -E '^\s*--- |FIRST_FAIL|own' "$OUT/families.log" | head -20
	verdict "$OUT/families.log" "TestB361Families on hip (replay policy)"
	unset GRETA_POLICY_BACKEND
	step "the B3.61 goldens of tiny on the device re-recorded, with their manifest"
	(cd gretatest && "$ROOT/.gpu/gretatest.test" -test.count=1 -test.run 'TestB361$' -update) >"$OUT/b361_update.log" 2>&1
	verdict "$OUT/b361_update.log" "TestB361 -update on hip"
	mkdir -p "$OUT/goldens" && cp golden/testdata/cuda-sm90/tiny/* "$OUT/goldens/" 2>/dev/null
	say "goldens re-recorded: $(ls "$OUT/goldens" | tr '\n' ' ')"
}

# gen NAME: the full-size preset generated in F32 to $MODELS/NAME.gguf, once.
gen() {
	local name=$1 big=$MODELS/$1.gguf
	[ -f "$big" ] && return 0
	step "generate $name (F32) into $big"
	local t0=$SECONDS
	mkdir -p "$MODELS"
	if ! .gpu/gretabisect synth --preset "$name" --dtype f32 --out "$big" >"$OUT/synth_$name.log" 2>&1; then
		tail -5 "$OUT/synth_$name.log"
		say "$name: generating the model FAILED (log $OUT/synth_$name.log)"
		return 1
	fi
	say "$name: generated $(du -BM "$big" | cut -f1) in $((SECONDS - t0)) s"
}

# policy_preset NAME: the replay policy on a full-size preset, through the CLI.
policy_preset() {
	local name=$1 big=$MODELS/$1.gguf g=$OUT/golden_$1 rc
	gen "$name" || return
	step "$name: the CPU reference's goldens of the three prompts"
	local t0=$SECONDS
	.gpu/gretabisect bisect --quiet --backend cpu --model "$big" --golden "$g" --update >"$OUT/pp_${name}_cpu.log" 2>&1
	rc=$?
	say "$name: CPU goldens recorded in $((SECONDS - t0)) s (exit $rc)"
	step "$name: calibrate the device"
	t0=$SECONDS
	.gpu/gretabisect calibrate --quiet --backend hip --model "$big" --golden "$g" >"$OUT/pp_${name}_cal.log" 2>&1
	rc=$?
	say "$name: calibrated in $((SECONDS - t0)) s (exit $rc)"
	cat "$OUT/pp_${name}_cal.log"
	for i in 1 2 3; do
		t0=$SECONDS
		.gpu/gretabisect bisect --quiet --backend hip --model "$big" --golden "$g" --out "$OUT/pp_art" >"$OUT/pp_${name}_run$i.log" 2>&1
		rc=$?
		say "$name: clean replay-policy bisect $i: exit $rc in $((SECONDS - t0)) s, $(grep -cE 'FIRST_FAIL' "$OUT/pp_${name}_run$i.log") FIRST_FAIL lines"
	done
	grep -vE '^\s*$' "$OUT/pp_${name}_run1.log" | head -30
}

sanitize() {
	step "compute-sanitizer memcheck: the C kernel tests"
	compute-sanitizer --tool memcheck ./kernels/build/kernel_test >"$OUT/memcheck_c.log" 2>&1
	tail -2 "$OUT/memcheck_c.log"
	say "memcheck kernel_test: $(grep -E 'ERROR SUMMARY' "$OUT/memcheck_c.log" | tail -1 | sed 's/^=* *//'), $(grep -E '^(PASS|FAIL):' "$OUT/memcheck_c.log" | tail -1)"
	step "compute-sanitizer memcheck: the rocm suite on the tiny family"
	(cd internal/hip && compute-sanitizer --tool memcheck "$ROOT/.gpu/hip.test" -test.v -test.count=1 -test.timeout 30m \
		-test.run "${SANITIZE_RUN:-TestMatchesReference|TestDecodeRoute|TestDeterministic|TestReplayBitIdentical|TestErrorsName|TestTiedOutputUploadedOnce}") \
		>"$OUT/memcheck_go.log" 2>&1
	grep -E '^(--- |PASS|FAIL)|ERROR SUMMARY' "$OUT/memcheck_go.log"
	say "memcheck hip.test (tiny family): $(grep -E 'ERROR SUMMARY' "$OUT/memcheck_go.log" | tail -1 | sed 's/^=* *//')"
	verdict "$OUT/memcheck_go.log" "rocm suite under memcheck"
}

preset() {
	local name=$1 big=$MODELS/$1.gguf
	gen "$name" || return
	local sub="/^${name//./\\.}\$" # the preset's subtest (-test.run splits at slashes outside parentheses)
	case " $PARTS " in *" compare "*)
		step "$name: GPU against the CPU reference (three standard prompts; decode route on p0_short)"
		GRETA_MODEL=$big hiptest -test.v -test.count=1 -test.timeout 30m -test.run "^(TestMatchesReference|TestDecodeRoute)\$$sub" \
			>"$OUT/compare_$name.log" 2>&1
		grep -E '^\s*--- |agree |FIRST_FAIL|compared' "$OUT/compare_$name.log"
		verdict "$OUT/compare_$name.log" "$name: GPU within tolerance of the CPU reference"
		grep -E 'agree ' "$OUT/compare_$name.log" | sed -E 's/^\s*[a-z_]+\.go:[0-9]+: //; s/, digest [0-9a-f]+//' | while read -r l; do say "$l"; done
	esac
	case " $PARTS " in *" digests "*)
		step "$name: three runs of the digests"
		for i in 1 2 3; do
			GRETA_MODEL=$big hiptest -test.v -test.count=1 -test.run "^TestDigests\$$sub" >"$OUT/digests_$name$i.log" 2>&1
			digest_lines "$OUT/digests_$name$i.log" >"$OUT/digests_$name$i.txt"
		done
		cat "$OUT/digests_${name}1.txt"
		three_runs "$name" "$OUT/digests_${name}1.txt" "$OUT/digests_${name}2.txt" "$OUT/digests_${name}3.txt"
		grep -qE -- "--- FAIL: TestDigests" "$OUT/digests_${name}1.log" && say "$name: digests DIFFER from the committed testdata/<device>/$name.digests"
	esac
	case " $PARTS " in *" bench "*)
		step "$name: benchmarks (prefill of 1653 tokens, decode at 1653 context)"
		{
			GRETA_MODEL=$big hiptest -test.run '^$' -test.bench '^BenchmarkPrefill$/^(untraced|traced)$' -test.benchtime 10x
			GRETA_MODEL=$big hiptest -test.run '^$' -test.bench '^BenchmarkDecode$' -test.benchtime 100x
		} >"$OUT/bench_$name.log" 2>&1
		grep -E '^Benchmark|FAIL' "$OUT/bench_$name.log"
		local un tr dec
		un=$(grep -E '^BenchmarkPrefill/untraced' "$OUT/bench_$name.log" | grep -oE '[0-9.]+ ms/prefill' | head -1)
		tr=$(grep -E '^BenchmarkPrefill/traced-' "$OUT/bench_$name.log" | grep -oE '[0-9.]+ ms/prefill' | head -1)
		dec=$(grep -E '^BenchmarkDecode' "$OUT/bench_$name.log" | grep -oE '[0-9.]+ ms/token' | head -1)
		say "$name: engine prefill 1653 tokens ${un:-?} untraced, ${tr:-?} traced (default plan, recorder); decode at 1653 context ${dec:-?}"
		step "$name: PyTorch eager, same architecture and dimensions"
		PYTHONUNBUFFERED=1 python3 kernels/test/torch_baseline.py --preset "$name" >"$OUT/torch_$name.log" 2>&1
		grep -E '^torch ' "$OUT/torch_$name.log" | while read -r l; do say "$l"; done
		grep -qE '^torch .*prefill' "$OUT/torch_$name.log" || say "torch $name: FAILED (log $OUT/torch_$name.log)"
	esac
}

goldens() {
	step "record the per-device digests of the tiny family (internal/hip/testdata/<device>/<model>.digests)"
	hiptest -test.count=1 -test.run 'TestDigests' -update 2>&1 | tail -2
	for f in internal/hip/testdata/*/*.digests; do cp "$f" "$OUT/$(basename "$(dirname "$f")")__$(basename "$f")"; cat "$f"; done
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
build
for s in "${@:-tiny}"; do
	case $s in
	tiny | sanitize | goldens | policy) "$s" ;;
	policy-*) policy_preset "${s#policy-}" ;;
	llama3.2-1b | qwen2.5-0.5b | tinyllama) preset "$s" ;;
	*) echo "gpu_check.sh: unknown step $s (tiny, policy, policy-PRESET, sanitize, llama3.2-1b, qwen2.5-0.5b, tinyllama, goldens)" >&2; exit 2 ;;
	esac
done
step "summary"
cat "$SUMMARY"

#!/usr/bin/env bash
# gpu_check.sh: the GPU proof of the HIP backend on an NVIDIA machine, from the repository
# root, with test binaries built elsewhere (no Go toolchain needed here):
#   go test -c -tags rocm -o .gpu/hip.test ./internal/hip
#   go build -o .gpu/synthgen.bin <a program calling synth.WriteFile(path, TinyLlama, F32, 0)>
# Steps: correct | sanitize | bench | goldens (any subset, in order). Logs go to $OUT (or .gpu/out).
set -uo pipefail
OUT=${OUT:-.gpu/out}
mkdir -p "$OUT"
ROOT=$PWD
BIG=${BIG:-/tmp/tinyllama.gguf}
export LD_LIBRARY_PATH=$ROOT/kernels/build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
step() { printf '\n=== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

build() {
	step "build the NVIDIA library and the C test driver"
	make kernels kernels-test HIP_PLATFORM=nvidia >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
}

bigmodel() {
	[ -f "$BIG" ] && return
	step "generate the tinyllama-preset F32 model"
	/usr/bin/time -f "synth %e s" .gpu/synthgen.bin "$BIG" || exit 1
	ls -la "$BIG"
}

hiptest() { (cd internal/hip && "$ROOT/.gpu/hip.test" "$@"); }

correct() {
	step "kernel tests"
	./kernels/build/kernel_test bench 2>&1 | tee "$OUT/kernel_test.log" | grep -v '^ok '
	step "rocm suite on the tiny model"
	hiptest -test.v -test.count=1 2>&1 | tee "$OUT/hip_tiny.log" | grep -E '^(---|===|ok|FAIL|PASS)|hip_test|digest' | grep -v '=== RUN'
	bigmodel
	step "tinyllama: GPU vs CPU reference, then three runs of the digests"
	GRETA_MODEL=$BIG hiptest -test.v -test.count=1 -test.run 'TestMatchesReference/tinyllama' 2>&1 | tee "$OUT/hip_big.log" | grep -E '^(---|ok|FAIL|PASS)|hip_test'
	step "tinyllama: own error against the CPU reference (replay), floors and planted 1e-4 faults"
	GRETA_MODEL=$BIG hiptest -test.v -test.count=1 -test.run 'TestOwnError/tinyllama' 2>&1 | tee "$OUT/own_big.log" | grep -E '^\s*(---|ok|FAIL|PASS)|replay_test|\|'
	for i in 1 2 3; do
		GRETA_MODEL=$BIG hiptest -test.v -test.count=1 -test.run 'TestDigests' 2>&1 | grep 'digest ' | sed 's/ (.*//' | tee "$OUT/digest$i.log"
	done
	cmp "$OUT/digest1.log" "$OUT/digest2.log" && cmp "$OUT/digest1.log" "$OUT/digest3.log" && echo "three runs: identical digests"
}

sanitize() {
	step "compute-sanitizer memcheck: C test driver, then the rocm suite (tiny model)"
	compute-sanitizer --tool memcheck ./kernels/build/kernel_test >"$OUT/memcheck_c.log" 2>&1; tail -1 "$OUT/memcheck_c.log"
	(cd internal/hip && compute-sanitizer --tool memcheck "$ROOT/.gpu/hip.test" -test.v -test.count=1 -test.run 'TestDeterministic|TestDecodeRoute|TestErrorsName|TestFaultLocalisation|TestMatchesReference/tiny|TestReplayBitIdentical') >"$OUT/memcheck_go.log" 2>&1
	grep -E '^(--- |PASS|FAIL|=====.*ERROR)' "$OUT/memcheck_go.log"
}

goldens() {
	bigmodel
	step "record the per-device digests (testdata/<device>/<model>.digests)"
	GRETA_MODEL=$BIG hiptest -test.count=1 -test.run 'TestDigests' -update 2>&1 | tail -2
	for f in internal/hip/testdata/*/*.digests; do cp "$f" "$OUT/$(basename "$(dirname "$f")")__$(basename "$f")"; cat "$f"; done
}

bench() {
	bigmodel
	step "benchmarks (tinyllama F32)"
	GRETA_MODEL=$BIG hiptest -test.run '^$' -test.bench . -test.benchtime 10x 2>&1 | tee "$OUT/bench.log" | grep -E 'Benchmark|ok|FAIL'
	step "PyTorch eager, same dims"
	PYTHONUNBUFFERED=1 python3 kernels/test/torch_baseline.py 2>&1 | tee "$OUT/torch.log" | tail -3
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader
build
for s in "${@:-correct}"; do "$s"; done

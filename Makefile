# gretabisect: common tasks. `make help` lists them.
GO        ?= go
PKGS      ?= ./...
# SIMD inner loops of the CPU reference (amd64, Go 1.26 experiment); same bits as the portable path.
SIMD      ?= GOEXPERIMENT=simd

.PHONY: help test test-short test-simd race lint bisect bisect-inject update bench determinism-arm64 fuzz ci

help:
	@grep -h -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

test: ## run every test (CPU reference, committed goldens)
	$(GO) test $(PKGS)

test-short: ## the quick subset
	$(GO) test -short $(PKGS)

test-simd: ## the tests with the SIMD inner loops
	$(SIMD) $(GO) test $(PKGS)

race: ## the race detector on the quick subset
	$(GO) test -race -short $(PKGS)

lint: ## gofmt, go vet (portable, SIMD and rocm-tagged builds)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(SIMD) $(GO) vet $(PKGS)
	$(GO) vet -tags rocm $(PKGS)

bisect: ## the main job: the B3.61 suite on the embedded tiny model against the committed goldens
	$(GO) run ./cmd/gretabisect bisect

bisect-inject: ## the main job with a planted fault, to see the localisation end to end
	-$(GO) run ./cmd/gretabisect bisect --inject 'stage=k_post_rope,layer=3,pos>=826,scale=1.01'

update: ## re-record every golden file
	$(GO) test $(PKGS) -update

bench: ## benchmarks of the CPU reference (SIMD build)
	$(SIMD) $(GO) test -run '^$$' -bench . -benchtime 1x ./internal/ref/ ./golden/ ./internal/gguf/ ./internal/tokenizer/

determinism-arm64: ## the determinism test on arm64 under qemu-user (apt-get install qemu-user-static)
	GOARCH=arm64 $(GO) test -exec qemu-aarch64-static -run TestDeterminism -count=1 ./internal/ref/

ci: ## what CI runs
	bash .ci/run

-include kernels/kernels.mk

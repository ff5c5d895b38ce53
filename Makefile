# Thin wrapper over CMake: `make run` installs what is missing, builds and runs the default
# experiment; `make test` builds and runs the whole test suite.
BUILD ?= build
JOBS ?= $(shell nproc)
DATAMUX_DATA ?= $(abspath ../shared/data)
export DATAMUX_DATA
WARMUP ?= experiments/quickstart_warmup.yaml
EXPERIMENT ?= experiments/quickstart.yaml

.PHONY: all deps build run run-baseline test sanitize analyze clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	./$(BUILD)/datamux devices
	./$(BUILD)/datamux train $(WARMUP)
	./$(BUILD)/datamux train $(EXPERIMENT)

# The N=1 baseline of the same size, trained for the same time as the quickstart's fine-tuning.
run-baseline: deps build
	./$(BUILD)/datamux train experiments/quickstart_baseline.yaml

# The developer/CI build: warnings are errors (a plain build never makes them so). The suite runs
# twice: with the GEMM backend each device gets by default (the host BLAS on CPU devices), then with
# CLBlast forced, so both backends pass everything. The labels oclgrind and small_work_groups check
# kernel launches, which the backend does not change (Oclgrind always gets CLBlast): first pass only.
test: deps $(BUILD)/Makefile
	cmake -S . -B $(BUILD) -DDATAMUX_WERROR=ON
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure
	cd $(BUILD) && DATAMUX_GEMM_BACKEND=clblast ctest --output-on-failure -LE "oclgrind|small_work_groups"

# Without the oclgrind label: Oclgrind's wrapper preloads its runtime, and ASan must come first.
sanitize:
	cmake -S . -B build-asan -DDATAMUX_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DDATAMUX_WERROR=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure -LE oclgrind

# The clang static analyser (.clang-tidy) over every host, layers and data source; fails on any
# finding. Needs clang-tidy (Debian: apt-get install clang-tidy).
analyze:
	@command -v clang-tidy >/dev/null || { echo "make analyze: needs clang-tidy (apt-get install clang-tidy)" >&2; exit 2; }
	cmake -S . -B build-analyze -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	find host layers data -name '*.c' | sort | xargs -n 8 -P $(JOBS) clang-tidy -p build-analyze --quiet

clean:
	rm -rf $(BUILD) build-asan build-analyze

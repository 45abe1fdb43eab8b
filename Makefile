# The whole set-up on a fresh Debian 12 machine:
#   make test         install what is missing, build, run every test suite
#   make quickstart   (with the training issue) train the nano model on Fashion-MNIST
BUILD_DIR ?= build
BUILD_TYPE ?= Release
CUDA ?= AUTO
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: deps configure build test test-cpu-only asan clean format

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DINFOMAMBA_CUDA=$(CUDA) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Build without the CUDA backend (the CPU-only configuration).
test-cpu-only:
	@$(MAKE) test BUILD_DIR=build-cpu CUDA=OFF

# AddressSanitizer + UndefinedBehaviorSanitizer build of the same tests.
asan:
	@$(MAKE) test BUILD_DIR=build-asan BUILD_TYPE=Debug CMAKE_FLAGS=-DINFOMAMBA_SANITIZE=ON

format:
	@git ls-files '*.h' '*.cpp' '*.cu' | xargs clang-format -i

clean:
	@rm -rf build build-cpu build-asan

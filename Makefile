# The two commands: `make run` and `make test`. Everything else is a helper of those.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
PRESET ?= release
BUILD := build/$(PRESET)
PORT ?= 8080

.PHONY: run test deps build test-asan fuzz model clean bench

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset $(PRESET) >/dev/null
	@cmake --build --preset $(PRESET) -j $(JOBS)

model:
	@bash scripts/fetch-model.sh

run: build model
	./$(BUILD)/fastpath serve --host 127.0.0.1 --port $(PORT)

test: build
	@bash scripts/run-tests.sh $(PRESET)

test-asan:
	@$(MAKE) test PRESET=asan

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)

clean:
	rm -rf build

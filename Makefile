# Developer entry points. CI runs .ci/run, which is `make test` preceded by go vet.

GO       ?= go
# Keep in step with .ci/run and the README.
TESTARGS := -race -shuffle=on -count=1 -timeout 20m
FUZZTIME ?= 20s

# bash with pipefail, so a failure on the left of a pipe (a package that does not build) fails the target.
SHELL       := bash
.SHELLFLAGS := -eu -o pipefail -c

.PHONY: check test fuzz bench

# Tidy is only checked, never applied: several people edit go.mod at once, and rewriting it is a
# deliberate change of its own.
check:
	$(GO) vet ./...
	$(GO) mod tidy -diff

test:
	$(GO) test $(TESTARGS) ./...

# Every fuzz target for FUZZTIME each. go test -list prints a package's test names and then an
# "ok <package>" line, which is how a name is matched to its package (-fuzz takes one package
# and one target at a time). Minimizing is capped by count, not time: a new input of a few KiB (a
# quote) would otherwise be minimized until the time cap, during which nothing new is tried.
fuzz:
	@$(GO) test -list '^Fuzz.*' ./... | \
	awk '/^Fuzz/ { names[++n] = $$1; next } /^ok/ { for (i = 1; i <= n; i++) print $$2, names[i]; n = 0 }' | \
	while read -r pkg target; do \
		echo "== $$pkg $$target ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x "$$pkg"; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

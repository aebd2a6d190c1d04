# fraudpipe: `make run` runs the pipeline, `make test` runs every test.
GO      ?= go
BIN     := bin/fraudpipe
ARGS    ?=
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.0

.PHONY: run build test unit e2e e2e-kafka bench lint fmt produce generate clean

## run: the whole pipeline on the embedded broker (data in ./data; Ctrl-C stops it, the next run resumes)
run: build
	./$(BIN) run $(ARGS)

build:
	$(GO) build -o $(BIN) ./cmd/fraudpipe

## test: the shipped rules fixtures, then unit, processor and e2e tests with the race detector (e2e needs kcat: see .ci/run)
test:
	$(GO) run ./cmd/fraudpipe rules test examples/rules.yaml
	$(GO) test -race -count=1 -p 1 -timeout 45m ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test -race -count=1 -timeout 30m -v ./e2e/

## e2e-kafka: the same e2e suite, and the producer's restart test, against Apache Kafka (KRaft, from Maven Central; needs Java and Maven)
e2e-kafka:
	bash e2e/kafka/kafka.sh fetch
	FRAUDPIPE_E2E_BROKER=apache $(GO) test -race -count=1 -timeout 45m ./e2e/
	FRAUDPIPE_E2E_BROKER=apache $(GO) test -race -count=1 -run AcrossBrokerRestarts ./kafka/gokaadapter/

## bench: one detector measured end to end (bench-results.json), then the users' path (`fraudpipe run` fed by kcat and
##   the Java client, bench-users-path.json), then the decision API (bench-api.json), then microbenchmarks with allocations
BENCH_ARGS ?=
bench: build
	./$(BIN) bench $(BENCH_ARGS)
	./$(BIN) bench --users-path --count 1000000 --accounts 100000 --rates 10000 --out bench-users-path.json $(USERS_PATH_ARGS)
	./$(BIN) bench --api --accounts 100000 --rates 1000,5000,10000 --clients 128,512 --out bench-api.json $(API_ARGS)
	$(GO) test -run '^$$' -bench . -benchmem ./rules/ ./processors/store/ ./producer/

## produce: send a JSON-lines file of payments (FILE=examples/payments.jsonl) to the running pipeline
FILE ?= examples/payments.jsonl
produce: build
	./$(BIN) produce --file $(FILE) $(ARGS)

## generate: a synthetic stream (COUNT payments at RATE per second), with its labels for rules backtest --labels topic
COUNT ?= 20000
RATE  ?= 2000
generate: build
	./$(BIN) produce --generate --labels --count $(COUNT) --rate $(RATE) $(ARGS)

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data

# See scripts/test.sh, scripts/kafka.sh, scripts/redis.sh.
.PHONY: test test-short demo bench faults image services-up services-down vet fmt

test:
	scripts/test.sh

# No services: the tests fall back to in-process fakes.
test-short:
	go test ./...

demo:
	go run ./cmd/demo

# Real Kafka, Redis and the simulator process; writes docs/benchmarks.md.
bench:
	scripts/bench.sh

# kill -9, Redis and Kafka outages, WeChat faults, rebalances; prints a table.
faults:
	scripts/faults.sh

# An OCI image without a Docker engine, into .cache/image.
image:
	scripts/image.sh

services-up:
	@r=$$(scripts/redis.sh start) && k=$$(scripts/kafka.sh start) && \
	  echo "export WXTERM_TEST_REDIS=$$r WXTERM_TEST_KAFKA=$$k WXTERM_TEST_REDIS_CTL=$(CURDIR)/scripts/redis.sh WXTERM_TEST_KAFKA_CTL=$(CURDIR)/scripts/kafka.sh"

services-down:
	scripts/kafka.sh stop
	scripts/redis.sh stop

vet:
	go vet ./...

fmt:
	go fmt ./...

package e2e

import (
	"context"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadPartition reads the partition rc names from its first offset and
// calls each for every message, until ctx ends or a read fails and onErr
// says to stop (onErr returns whether to keep reading). It closes the
// reader without letting a slow broker hold it up more than 3 s. It is how
// tests, bench and faults collect results and dead letters.
func ReadPartition(ctx context.Context, rc kafka.ReaderConfig, each func(kafka.Message), onErr func(error) bool) {
	r := kafka.NewReader(rc)
	defer func() {
		done := make(chan struct{})
		go func() { _ = r.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
		}
	}()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		onErr(err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil || !onErr(err) {
				return
			}
			continue
		}
		each(m)
	}
}

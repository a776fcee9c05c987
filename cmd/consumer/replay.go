package main

import (
	"context"
	"errors"
	"io"

	"github.com/wxterm/wxterm/internal/consumer"
)

func runReplay(ctx context.Context, c *config, cons *consumer.Consumer, stdout io.Writer) error {
	return errors.New("replay: not implemented yet")
}

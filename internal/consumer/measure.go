package consumer

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxterm/wxterm/internal/wxapi"
)

// Operations of the call-duration histogram's op label.
const (
	opTerminate = "terminate"
	opQuery     = "query"
)

// measure is the middleware that records each call's latency by API,
// operation and HTTP status ("error" without an answer).
func measure(duration *prometheus.HistogramVec) middleware {
	return func(op string, next callFunc) callFunc {
		return func(ctx context.Context, r wxapi.Request) (*wxapi.Contract, error) {
			start := time.Now()
			ct, err := next(ctx, r)
			status := strconv.Itoa(answerStatus(ct))
			var we *wxapi.Error
			switch {
			case err == nil:
			case errors.As(err, &we) && we.HTTPStatus != 0:
				status = strconv.Itoa(we.HTTPStatus)
			default:
				status = "error"
			}
			duration.WithLabelValues(string(r.API), op, status).Observe(time.Since(start).Seconds())
			return ct, err
		}
	}
}

package wxapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"testing"
)

func TestClassify(t *testing.T) {
	netErr := &url.Error{Op: "Post", URL: "https://api.mch.weixin.qq.com/v3/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		// SPEC §3: transient
		{"network error", &Error{Err: netErr}, Transient},
		{"bare network error", netErr, Transient},
		{"timeout", &Error{Err: context.DeadlineExceeded, Sent: true}, Transient},
		{"connection reset while reading", &Error{Err: io.ErrUnexpectedEOF, Sent: true}, Transient},
		{"500 SYSTEM_ERROR", &Error{HTTPStatus: 500, Code: "SYSTEM_ERROR"}, Transient},
		{"502 no body", &Error{HTTPStatus: 502}, Transient},
		{"503", &Error{HTTPStatus: 503}, Transient},
		{"429 FREQUENCY_LIMITED", &Error{HTTPStatus: 429, Code: "FREQUENCY_LIMITED"}, Transient},
		{"429 RATELIMIT_EXCEEDED", &Error{HTTPStatus: 429, Code: "RATELIMIT_EXCEEDED"}, Transient},
		{"429 RATELIMIT_EXCEED (documented)", &Error{HTTPStatus: 429, Code: "RATELIMIT_EXCEED"}, Transient},
		{"RATELIMIT_EXCEED under 403", &Error{HTTPStatus: 403, Code: "RATELIMIT_EXCEED"}, Transient},
		{"403 CONTRACT_NOT_EXIST", &Error{HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}, Permanent},
		{"SYSTEM_ERROR under another status", &Error{HTTPStatus: 400, Code: "SYSTEM_ERROR"}, Transient},
		{"undecodable 200", &Error{HTTPStatus: 200, Err: errors.New("decode answer: EOF")}, Transient},
		// permanent
		{"400 PARAM_ERROR", &Error{HTTPStatus: 400, Code: "PARAM_ERROR"}, Permanent},
		{"400 INVALID_REQUEST", &Error{HTTPStatus: 400, Code: "INVALID_REQUEST"}, Permanent},
		{"404 RESOURCE_NOT_EXISTS", &Error{HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS"}, Permanent},
		{"404 NOT_FOUND", &Error{HTTPStatus: 404, Code: "NOT_FOUND"}, Permanent},
		{"404 no code", &Error{HTTPStatus: 404}, Permanent},
		{"403 NO_AUTH", &Error{HTTPStatus: 403, Code: "NO_AUTH"}, Permanent},
		{"unknown 4xx", &Error{HTTPStatus: 409, Code: "SOMETHING_NEW"}, Permanent},
		{"unknown 400 code", &Error{HTTPStatus: 400, Code: "APPID_MCHID_NOT_MATCH"}, Permanent},
		{"invalid request", &Error{Err: fmt.Errorf("%w: plan_id is required", ErrInvalidRequest)}, Permanent},
		// systemic
		{"401 SIGN_ERROR", &Error{HTTPStatus: 401, Code: "SIGN_ERROR"}, Systemic},
		{"401 other code", &Error{HTTPStatus: 401, Code: "UNAUTHORIZED"}, Systemic},
		{"SIGN_ERROR under another status", &Error{HTTPStatus: 400, Code: "SIGN_ERROR"}, Systemic},
		{"response signature invalid", &Error{HTTPStatus: 200, Sent: true, Err: fmt.Errorf("%w: verify failed", ErrSignature)}, Systemic},
		{"missing key", fmt.Errorf("wxapi: %w: merchant private key is required", ErrConfig), Systemic},
		// wrapped
		{"wrapped *Error", fmt.Errorf("consumer: contract 1: %w", &Error{HTTPStatus: 404}), Permanent},
		{"unknown 5xx", &Error{HTTPStatus: 599, Code: "WHATEVER"}, Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Errorf("Classify(%v) = %v; want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestIsFrequencyLimited(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&Error{HTTPStatus: 429, Code: "FREQUENCY_LIMITED"}, true},
		{fmt.Errorf("x: %w", &Error{HTTPStatus: 429}), true},
		{&Error{HTTPStatus: 403, Code: "FREQUENCY_LIMITED"}, true},
		{&Error{HTTPStatus: 403, Code: "RATELIMIT_EXCEED"}, true},
		{&Error{HTTPStatus: 500, Code: "SYSTEM_ERROR"}, false},
		{errors.New("429"), false},
	} {
		if got := IsFrequencyLimited(tc.err); got != tc.want {
			t.Errorf("IsFrequencyLimited(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{API: PapayPartner, Op: "terminate", HTTPStatus: 400, Code: "PARAM_ERROR", Message: "sub_mchid: is required"},
			"wxapi: terminate papay_partner: 400 PARAM_ERROR: sub_mchid: is required"},
		{&Error{API: GlobalPapay, Op: "query", HTTPStatus: 503}, "wxapi: query global_papay: 503 Service Unavailable"},
		{&Error{API: CreditRepayment, Op: "terminate", Err: context.DeadlineExceeded}, "wxapi: terminate credit_repayment: context deadline exceeded"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q; want %q", got, tc.want)
		}
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{Transient: "transient", Permanent: "permanent", Systemic: "systemic", Class(7): "class(7)"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q; want %q", int(c), got, want)
		}
	}
}

func TestMayBeTerminated(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"global 403 CONTRACT_NOT_EXIST", &Error{Op: opTerminate, HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}, true},
		{"400 INVALID_REQUEST", &Error{Op: opTerminate, HTTPStatus: 400, Code: "INVALID_REQUEST"}, true},
		{"undocumented 4xx", &Error{Op: opTerminate, HTTPStatus: 409, Code: "CONTRACT_TERMINATED"}, true},
		{"wrapped", fmt.Errorf("x: %w", &Error{Op: opTerminate, HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}), true},
		{"400 PARAM_ERROR", &Error{Op: opTerminate, HTTPStatus: 400, Code: "PARAM_ERROR"}, false},
		{"403 NO_AUTH", &Error{Op: opTerminate, HTTPStatus: 403, Code: "NO_AUTH"}, false},
		{"404", &Error{Op: opTerminate, HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS"}, false},
		{"invalid request, not sent", &Error{Op: opTerminate, Err: ErrInvalidRequest}, false},
		{"500", &Error{Op: opTerminate, HTTPStatus: 500, Code: "SYSTEM_ERROR"}, false},
		{"a query's refusal", &Error{Op: opQuery, HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}, false},
		{"not an *Error", errors.New("403"), false},
	} {
		if got := MayBeTerminated(tc.err); got != tc.want {
			t.Errorf("%s: MayBeTerminated = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestIsNotFoundAndNoAuth(t *testing.T) {
	for _, tc := range []struct {
		name               string
		err                error
		notFound, noAuthed bool
	}{
		{"404 RESOURCE_NOT_EXISTS", &Error{Op: opQuery, HTTPStatus: 404, Code: "RESOURCE_NOT_EXISTS"}, true, false},
		{"404 NOT_FOUND on terminate", &Error{Op: opTerminate, HTTPStatus: 404, Code: "NOT_FOUND"}, true, false},
		{"query 403 CONTRACT_NOT_EXIST", &Error{Op: opQuery, HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}, true, false},
		{"terminate 403 CONTRACT_NOT_EXIST: ambiguous", &Error{Op: opTerminate, HTTPStatus: 403, Code: "CONTRACT_NOT_EXIST"}, false, false},
		{"403 NO_AUTH", fmt.Errorf("x: %w", &Error{Op: opTerminate, HTTPStatus: 403, Code: "NO_AUTH"}), false, true},
		{"500", &Error{Op: opQuery, HTTPStatus: 500}, false, false},
	} {
		if got := IsNotFound(tc.err); got != tc.notFound {
			t.Errorf("%s: IsNotFound = %v; want %v", tc.name, got, tc.notFound)
		}
		if got := IsNoAuth(tc.err); got != tc.noAuthed {
			t.Errorf("%s: IsNoAuth = %v; want %v", tc.name, got, tc.noAuthed)
		}
	}
}

// Package intentid reads and checks an encoded intent's ids (request_id and
// out_contract_code) without decoding it: the replay's fast path, which
// looks up intents already answered (docs/benchmarks.md measured
// event.DecodeIntent at 29.8 µs an intent against 0.5 µs here). The event
// package checks ids with the same functions.
package intentid

import "bytes"

// MaxIntentBytes bounds an intent's encoded size; anything larger is invalid
// before it is parsed, so a huge message cannot cost more than a small one.
const MaxIntentBytes = 16 << 10

// ValidRequestID checks the intent schema's pattern for request_id
// (^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$) with a byte loop: it runs on every
// message a replay peeks at.
func ValidRequestID[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 128 || !alnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !alnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return false
		}
	}
	return true
}

// NotificationPrefix starts the request id of every result derived from a
// WeChat Pay notification (event.Notification.RequestID): the schema
// reserves it, so no intent's request id collides with a notification's.
const NotificationPrefix = "notification:"

// Reserved reports whether request id s is reserved for notifications.
func Reserved[T string | []byte](s T) bool {
	return len(s) >= len(NotificationPrefix) && string(s[:len(NotificationPrefix)]) == NotificationPrefix
}

// ValidCode checks the intent schema's pattern for out_contract_code
// (^[A-Za-z0-9]{1,64}$).
func ValidCode[T string | []byte](s T) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !alnum(s[i]) {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// Peek reads just the request id and contract code of an encoded intent,
// without validating the rest against the schema: far cheaper than
// event.DecodeIntent, for paths that only need to look an intent up (a replay over
// intents already answered). It walks the bytes once, checking them as
// encoding/json.Valid would (validValue). ok is false unless the bytes are a
// JSON object whose top level holds each of the two once, as strings in
// their schema's format, and key, if set, matches the code. Anything unusual
// (escapes in those values, a repeated key, malformed JSON) answers !ok, and
// the caller takes the full path.
func Peek(b, key []byte) (requestID, outContractCode string, ok bool) {
	if len(b) > MaxIntentBytes {
		return "", "", false
	}
	var req, code []byte
	var seenReq, seenCode bool
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", "", false
	}
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != '}' {
		j := validString(b, i)
		if j < 0 {
			return "", "", false
		}
		k := b[i+1 : j-1]
		i = skipWS(b, j)
		if i >= len(b) || b[i] != ':' {
			return "", "", false
		}
		i = skipWS(b, i+1)
		target := (*[]byte)(nil)
		switch {
		case bytes.EqualFold(k, []byte("request_id")):
			// encoding/json matches keys without case: a variant would be
			// another reading of the same field.
			if seenReq || string(k) != "request_id" {
				return "", "", false
			}
			seenReq, target = true, &req
		case bytes.EqualFold(k, []byte("out_contract_code")):
			if seenCode || string(k) != "out_contract_code" {
				return "", "", false
			}
			seenCode, target = true, &code
		case bytes.IndexByte(k, '\\') >= 0:
			return "", "", false // an escaped key could spell either name
		}
		if target != nil {
			j = validString(b, i)
			if j < 0 || bytes.IndexByte(b[i+1:j-1], '\\') >= 0 {
				return "", "", false
			}
			*target, i = b[i+1:j-1], j
		} else if i = validValue(b, i, 1); i < 0 {
			return "", "", false
		}
		i = skipWS(b, i)
		if i < len(b) && b[i] == ',' {
			if i = skipWS(b, i+1); i < len(b) && b[i] == '}' {
				return "", "", false // a trailing comma
			}
		} else if i >= len(b) || b[i] != '}' {
			return "", "", false
		}
	}
	if i >= len(b) || skipWS(b, i+1) != len(b) || !seenReq || !seenCode || !ValidRequestID(req) || Reserved(req) || !ValidCode(code) ||
		(len(key) > 0 && string(key) != string(code)) {
		return "", "", false
	}
	return string(req), string(code), true
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

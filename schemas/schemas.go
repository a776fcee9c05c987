// Package schemas embeds the versioned JSON Schemas of the termination intent
// and the result event, with their examples, so that the consumer, the
// producer and upstream services validate against the same files.
package schemas

import "embed"

// FS holds intent.v1.json, result.v1.json, notification.v1.json and
// examples/*.json.
//
//go:embed *.json examples/*.json
var FS embed.FS

// File names of the current schema versions inside FS.
const (
	IntentV1 = "intent.v1.json"
	ResultV1 = "result.v1.json"
)

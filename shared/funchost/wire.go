package funchost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// InvokeRequest is the payload the host POSTs to /<functionName> for every
// non-forwarded trigger.
type InvokeRequest struct {
	Data     map[string]json.RawMessage `json:"Data"`
	Metadata map[string]json.RawMessage `json:"Metadata"`
}

// InvokeResponse is the handler's reply to an invocation. It must be sent
// with a 2xx status (non-2xx fails the invocation), Content-Type
// application/json, and a non-empty body.
type InvokeResponse struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// maxUnwrap bounds how many string layers Unwrap peels. It is a safety net
// only: every layer escapes the backslashes and quotes of the one inside, so
// their number at least doubles per layer and no payload that fits in memory
// reaches this depth. A small bound (it was 4) made a value sent twice-encoded
// decode differently from the same value sent once-encoded.
const maxUnwrap = 64

// Unwrap peels JSON string layers off a value as long as the string's
// content is itself JSON, and returns the innermost JSON. The host sends
// strings and numbers serialised twice ("\"{\\\"id\\\":1}\"", "\"4\""); the
// public docs show them once ({"id":1}, 4). Both shapes give the same result.
// A string whose content is not JSON is returned as a JSON string.
func Unwrap(raw json.RawMessage) json.RawMessage {
	cur := bytes.TrimSpace(raw)
	for i := 0; i < maxUnwrap && len(cur) > 0 && cur[0] == '"'; i++ {
		var s string
		if err := json.Unmarshal(cur, &s); err != nil {
			return cur
		}
		inner := bytes.TrimSpace([]byte(s))
		if !json.Valid(inner) || len(inner) == 0 {
			return cur
		}
		cur = inner
	}
	return cur
}

// Body returns a trigger value as message body bytes: JSON objects and
// arrays as their JSON text, strings as their content.
func Body(raw json.RawMessage) []byte {
	v := Unwrap(raw)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return []byte(s)
		}
	}
	return []byte(v)
}

// String decodes a metadata value as a string, tolerating both encodings.
// Missing or null values give "".
func String(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	v := Unwrap(raw)
	if string(v) == "null" {
		return ""
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(v)
}

// Int decodes a metadata value as an integer ("4", 4 or "\"4\"").
func Int(raw json.RawMessage) (int64, error) {
	s := String(raw)
	if s == "" {
		return 0, fmt.Errorf("missing integer")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %w", err)
	}
	return n, nil
}

// timeLayouts are the shapes a DateTime takes in metadata: the host re-parses
// dates to second precision and drops the zone of UTC ones.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "01/02/2006 15:04:05"}

// Time decodes a metadata DateTime, read as UTC when it has no zone.
func Time(raw json.RawMessage) (time.Time, error) {
	s := String(raw)
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date-time")
}

// Object decodes an object-valued metadata entry (ApplicationProperties).
func Object(raw json.RawMessage) map[string]any {
	var m map[string]any
	if len(raw) == 0 || json.Unmarshal(Unwrap(raw), &m) != nil {
		return nil
	}
	return m
}

// QueueMessage is a Service Bus message as a queue-triggered function sees it.
type QueueMessage struct {
	Function      string
	InvocationID  string
	Body          []byte
	MessageID     string
	DeliveryCount int
	EnqueuedTime  time.Time
	ContentType   string
	Properties    map[string]any
	// DeadLetterReason is set for messages read from a dead-letter queue.
	DeadLetterReason      string
	DeadLetterDescription string
	DeadLetterSource      string
}

// DecodeQueueMessage reads the trigger value and Service Bus metadata of an
// invocation whose trigger binding is named binding.
func DecodeQueueMessage(req *InvokeRequest, binding string) (*QueueMessage, error) {
	raw, ok := req.Data[binding]
	if !ok {
		return nil, fmt.Errorf("invocation has no Data.%s", binding)
	}
	m := &QueueMessage{Body: Body(raw), DeliveryCount: 1}
	md := req.Metadata
	m.MessageID = String(md["MessageId"])
	m.ContentType = String(md["ContentType"])
	if n, err := Int(md["DeliveryCount"]); err == nil {
		m.DeliveryCount = int(n)
	}
	if t, err := Time(md["EnqueuedTimeUtc"]); err == nil {
		m.EnqueuedTime = t
	}
	m.Properties = Object(md["ApplicationProperties"])
	if m.Properties == nil {
		m.Properties = Object(md["UserProperties"])
	}
	if v, ok := m.Properties["DeadLetterReason"].(string); ok {
		m.DeadLetterReason = v
	}
	if v, ok := m.Properties["DeadLetterErrorDescription"].(string); ok {
		m.DeadLetterDescription = v
	}
	m.DeadLetterSource = String(md["DeadLetterSource"])
	if sys := Object(md["sys"]); sys != nil {
		if name, ok := sys["MethodName"].(string); ok {
			m.Function = name
		}
	}
	return m, nil
}

// isJSONContentType reports whether a Content-Type header is application/json.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

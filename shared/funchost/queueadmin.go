package funchost

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/problem"
	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
)

// QueueMessagesPattern is the local host's route for putting a message on
// the embedded queue from outside (`dsr send`). Azure has no such route: in
// Azure other systems send to Service Bus itself, and `dsr serve` never
// serves it (only LocalHost does, and only `dsr local` runs a LocalHost).
// The path lies outside /api, where no function route can take it, under
// /admin, the namespace the Functions host keeps for its own endpoints.
const QueueMessagesPattern = "POST /admin/queues/{name}/messages"

// Limits of a message sent through QueueMessagesPattern, those of a Service
// Bus Standard queue: a body of at most 256 KiB and a MessageId of at most
// 128 characters.
const (
	MaxQueueMessageBody = 256 << 10
	MaxMessageIDLength  = 128
	// maxEnvelope bounds the whole envelope: the body as a JSON string
	// (escaping can double it) plus the properties.
	maxEnvelope = 4*MaxQueueMessageBody + 64<<10
)

// SendEnvelope is the JSON envelope QueueMessagesPattern takes: the message
// body as text plus what a Service Bus sender sets beside it. Only the body
// and MessageId are required; the rest default as in Service Bus.
type SendEnvelope struct {
	// MessageID is the Service Bus MessageId: the duplicate detection key
	// of the queue, and for dsr-intake the request's idempotency key.
	MessageID string `json:"messageId"`
	// Body is the message body, exactly as the receiver gets it.
	Body *string `json:"body"`
	// ContentType defaults to application/json.
	ContentType string `json:"contentType,omitempty"`
	// Subject is the Service Bus Subject (label).
	Subject string `json:"subject,omitempty"`
	// ApplicationProperties are the message's application properties:
	// strings, numbers and booleans, as Service Bus allows.
	ApplicationProperties map[string]any `json:"applicationProperties,omitempty"`
}

// SendReceipt is the answer to an accepted message. Like Service Bus, the
// host does not say whether the message was dropped as a duplicate.
type SendReceipt struct {
	Queue     string `json:"queue"`
	MessageID string `json:"messageId"`
}

// queueNames are the queues some function of the app is triggered by (not
// their dead-letter queues, which only the broker fills), sorted.
func (h *LocalHost) queueNames() []string {
	var out []string
	for _, f := range h.Functions {
		t := f.Trigger()
		if t.Type != ServiceBusTrigger || strings.HasSuffix(t.QueueName, embedded.DeadLetterSuffix) {
			continue
		}
		if !containsString(out, t.QueueName) {
			out = append(out, t.QueueName)
		}
	}
	sort.Strings(out)
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// sendMessage puts one message on a queue of the embedded broker, as a
// Service Bus sender would: the MessageId feeds the broker's duplicate
// detection, the application properties reach the function's
// ApplicationProperties metadata. Queues no function listens to are
// refused: a message there would never be delivered. The message body is
// never logged.
func (h *LocalHost) sendMessage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	known := h.queueNames()
	if !containsString(known, name) {
		p := problem.New(http.StatusNotFound, "queue-not-found", "Unknown queue",
			"no function of this app listens to that queue; known queues: "+strings.Join(known, ", "))
		problem.Write(w, r, p)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type", "",
			`send the envelope {"messageId","body","applicationProperties"} with Content-Type: application/json`))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxEnvelope+1))
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusBadRequest, "unreadable-body", "", "the body could not be read"))
		return
	}
	if len(raw) > maxEnvelope {
		problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large", "", "the envelope is too large"))
		return
	}
	var env SendEnvelope
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&env); err != nil || dec.More() {
		problem.Write(w, r, fieldProblem(http.StatusBadRequest, "malformed-envelope", "",
			`the body must be one JSON object {"messageId","body","contentType","subject","applicationProperties"}`))
		return
	}
	if p := checkEnvelope(&env); p != nil {
		problem.Write(w, r, p)
		return
	}
	props := make(map[string]any, len(env.ApplicationProperties))
	for k, v := range env.ApplicationProperties {
		props[k] = propertyValue(v)
	}
	err = h.Broker.Send(r.Context(), name, queue.Message{
		ID: env.MessageID, Body: []byte(*env.Body), ContentType: env.ContentType, Subject: env.Subject, Properties: props,
	})
	if err != nil {
		h.Log.Error("queue message not sent", "queue", name, "err", err)
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "send-failed", "", "the message could not be put on the queue"))
		return
	}
	h.Log.Info("message put on queue from outside", "queue", name, "bytes", len(*env.Body), "properties", len(props))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(SendReceipt{Queue: name, MessageID: env.MessageID})
}

// checkEnvelope applies Service Bus's rules to a message; problems name
// the field, never its value.
func checkEnvelope(env *SendEnvelope) *problem.Details {
	switch {
	case env.MessageID == "":
		return fieldProblem(http.StatusBadRequest, "invalid-message", "messageId", "required: it is the MessageId (the duplicate detection and idempotency key)")
	case utf8.RuneCountInString(env.MessageID) > MaxMessageIDLength:
		return fieldProblem(http.StatusBadRequest, "invalid-message", "messageId", "must be at most 128 characters")
	case env.Body == nil:
		return fieldProblem(http.StatusBadRequest, "invalid-message", "body", "required: the message body as a string")
	case len(*env.Body) > MaxQueueMessageBody:
		return fieldProblem(http.StatusRequestEntityTooLarge, "message-too-large", "body", "must be at most 256 KiB (the Service Bus Standard limit)")
	}
	for k, v := range env.ApplicationProperties {
		if k == "" {
			return fieldProblem(http.StatusBadRequest, "invalid-message", "applicationProperties", "property names must not be empty")
		}
		switch v.(type) {
		case string, bool, json.Number:
		default:
			return fieldProblem(http.StatusBadRequest, "invalid-message", "applicationProperties."+k, "must be a string, number or boolean")
		}
	}
	return nil
}

// propertyValue turns a decoded property into the type Service Bus would
// deliver: integers as int64, other numbers as float64.
func propertyValue(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	if f, err := n.Float64(); err == nil {
		return f
	}
	return n.String()
}

// fieldProblem is a problem about one envelope field (empty: the whole).
func fieldProblem(status int, code, field, detail string) *problem.Details {
	if field == "" {
		return problem.New(status, code, "", detail)
	}
	p := problem.New(status, code, "", field+": "+detail)
	p.Errors = []problem.FieldError{{Field: field, Detail: detail}}
	return p
}

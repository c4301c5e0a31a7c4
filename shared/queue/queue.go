// Package queue is the one small interface through which stages hand work to
// the next stage. Implementations: servicebus (Azure Service Bus, production)
// and embedded (an in-process queue with Service Bus semantics, `dsr local`).
//
// Messages carry ids, never personal data.
package queue

import (
	"context"
	"time"
)

// Message is one message to send.
type Message struct {
	// ID is the MessageId; the broker drops a second message with the same ID
	// inside its duplicate detection window. Derive it from request and stage.
	ID string
	// Body is the payload (JSON).
	Body []byte
	// ContentType of Body; "application/json" when empty.
	ContentType string
	// Subject is the Service Bus Subject (label), e.g. the stage name.
	Subject string
	// Properties are application properties (strings, numbers, bools).
	Properties map[string]any
	// ScheduledAt delays delivery until then (zero: now).
	ScheduledAt time.Time
}

// Sender sends messages to named queues.
type Sender interface {
	Send(ctx context.Context, queueName string, m Message) error
}

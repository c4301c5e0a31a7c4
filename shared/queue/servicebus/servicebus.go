// Package servicebus sends queue messages with Azure Service Bus
// (azservicebus), authenticated by a managed identity or a connection string.
package servicebus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/dsr-functions/dsr/shared/config"
	"github.com/dsr-functions/dsr/shared/queue"
)

// Sender implements queue.Sender over Service Bus, one AMQP sender per queue.
type Sender struct {
	client  *azservicebus.Client
	mu      sync.Mutex
	senders map[string]*azservicebus.Sender
}

var _ queue.Sender = (*Sender)(nil)

// New connects with a connection string, or with cred to the namespace of an
// identity-based connection (ServiceBusConnection__fullyQualifiedNamespace).
func New(conn config.Connection, cred azcore.TokenCredential) (*Sender, error) {
	var client *azservicebus.Client
	var err error
	switch {
	case conn.ConnectionString != "":
		client, err = azservicebus.NewClientFromConnectionString(conn.ConnectionString, nil)
	case conn.FullyQualifiedNamespace != "":
		if cred == nil {
			return nil, errors.New("service bus: a credential is required for an identity-based connection")
		}
		client, err = azservicebus.NewClient(conn.FullyQualifiedNamespace, cred, nil)
	default:
		return nil, errors.New("service bus: ServiceBusConnection is not set (connection string or __fullyQualifiedNamespace)")
	}
	if err != nil {
		return nil, fmt.Errorf("service bus client: %w", err)
	}
	return &Sender{client: client, senders: map[string]*azservicebus.Sender{}}, nil
}

// Send sends one message with its MessageId, content type, subject,
// application properties and scheduled enqueue time.
func (s *Sender) Send(ctx context.Context, queueName string, m queue.Message) error {
	snd, err := s.sender(queueName)
	if err != nil {
		return err
	}
	msg := toMessage(m)
	if err := snd.SendMessage(ctx, msg, nil); err != nil {
		return fmt.Errorf("send to %s: %w", queueName, err)
	}
	return nil
}

// toMessage maps our message onto the Service Bus message: MessageId (the
// duplicate detection key), content type (default application/json),
// subject, application properties and scheduled enqueue time.
func toMessage(m queue.Message) *azservicebus.Message {
	ct := m.ContentType
	if ct == "" {
		ct = "application/json"
	}
	msg := &azservicebus.Message{
		MessageID:             to.Ptr(m.ID),
		Body:                  m.Body,
		ContentType:           to.Ptr(ct),
		ApplicationProperties: m.Properties,
	}
	if m.Subject != "" {
		msg.Subject = to.Ptr(m.Subject)
	}
	if !m.ScheduledAt.IsZero() {
		msg.ScheduledEnqueueTime = to.Ptr(m.ScheduledAt.UTC())
	}
	return msg
}

func (s *Sender) sender(queueName string) (*azservicebus.Sender, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if snd := s.senders[queueName]; snd != nil {
		return snd, nil
	}
	snd, err := s.client.NewSender(queueName, nil)
	if err != nil {
		return nil, fmt.Errorf("service bus sender for %s: %w", queueName, err)
	}
	s.senders[queueName] = snd
	return snd, nil
}

// Close closes every sender and the client.
func (s *Sender) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, snd := range s.senders {
		_ = snd.Close(ctx)
	}
	return s.client.Close(ctx)
}

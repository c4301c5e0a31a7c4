package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// QueueMessage is a message for the local host's embedded queue, with what
// a Service Bus sender sets: MessageId (duplicate detection, and on
// dsr-intake the request's idempotency key), content type, subject and
// application properties (strings, numbers, booleans).
type QueueMessage struct {
	ID          string
	Body        []byte
	ContentType string
	Subject     string
	Properties  map[string]any
}

// SendReceipt is the local host's answer to an accepted message. Like
// Service Bus, it does not say whether the message was a duplicate.
type SendReceipt struct {
	Queue     string          `json:"queue"`
	MessageID string          `json:"messageId"`
	JSON      json.RawMessage `json:"-"`
}

// ErrNotLocal is returned by SendMessage for a base URL that is not this
// machine: only `dsr local` has an embedded queue.
var ErrNotLocal = errors.New("the embedded queue exists only in `dsr local` (a 127.0.0.1 URL); in Azure, send to the Service Bus queue itself")

// SendMessage puts m on the named queue of `dsr local`'s embedded queue
// (POST /admin/queues/{name}/messages, a route of the local host only). The
// body must be text (UTF-8), as the JSON envelope carries it as a string.
func (cl *Client) SendMessage(ctx context.Context, queueName string, m QueueMessage) (*SendReceipt, error) {
	if !IsLoopback(cl.base) {
		return nil, ErrNotLocal
	}
	if queueName == "" {
		return nil, errors.New("send: no queue name")
	}
	body := string(m.Body)
	env, err := json.Marshal(struct {
		MessageID   string         `json:"messageId"`
		Body        *string        `json:"body"`
		ContentType string         `json:"contentType,omitempty"`
		Subject     string         `json:"subject,omitempty"`
		Properties  map[string]any `json:"applicationProperties,omitempty"`
	}{m.ID, &body, m.ContentType, m.Subject, m.Properties})
	if err != nil {
		return nil, fmt.Errorf("send: encode message: %w", err)
	}
	c := call{method: http.MethodPost, path: "/admin/queues/" + url.PathEscape(queueName) + "/messages", body: env}
	a, err := cl.do(ctx, c)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			se.Hint = "this host has no queue route: is it `dsr local`?"
		}
		return nil, err
	}
	r := &SendReceipt{}
	if err := decode(c.method, c.path, a, r, &r.JSON); err != nil {
		return nil, err
	}
	return r, nil
}

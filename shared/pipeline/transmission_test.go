package pipeline

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/transmit"
)

// memTransmitter answers with the errors queued in fail, then succeeds.
type memTransmitter struct {
	fail  []error
	tries int
	sent  [][]byte
}

func (m *memTransmitter) Send(_ context.Context, _ string, p transmit.Package) (transmit.Result, error) {
	m.tries++
	b, err := io.ReadAll(p.Body)
	if err != nil {
		return transmit.Result{}, err
	}
	if len(m.fail) > 0 {
		err := m.fail[0]
		m.fail = m.fail[1:]
		return transmit.Result{}, err
	}
	m.sent = append(m.sent, b)
	return transmit.Result{HTTPStatus: 200}, nil
}

func withProvided(w *world) {
	w.svc.Sources.Datasets[0].Provided = &sources.Provided{Fields: []string{"email", "name"}}
}

// A receiver that is down is offered the package again on a schedule
// whose waits grow, not at once; when it answers, the request completes
// with the package sent once.
func TestTransmissionRetriesWithBackOff(t *testing.T) {
	w := newWorld(t)
	withProvided(w)
	down := &transmit.HTTPError{Status: 503}
	m := &memTransmitter{fail: []error{down, down, down}}
	w.svc.Transmitter = m
	id := w.submit(`{"type":"portability","subject":{"email":"ann@x.example"},"transmitTo":"https://controller.example/import"}`)
	w.drain(1)
	if st := w.get(id); st.Stage != dsr.StageTransmission || m.tries != 1 || st.Transmission.Status != "" || st.Transmission.Attempts != 1 {
		t.Fatalf("after the first try: %s/%s tries %d %+v", st.Stage, st.State, m.tries, st.Transmission)
	}
	if _, _, ok := w.sent.take(w.now); ok {
		t.Fatal("the retry is due at once; it must wait")
	}
	var waits []time.Duration
	for try := 2; try <= 4; try++ {
		start := w.now
		for range 500 {
			w.now = w.now.Add(5 * time.Second)
			if w.deliver(2); m.tries == try { // each message delivered twice: a redelivery sends nothing more
				break
			}
		}
		if m.tries != try {
			t.Fatalf("try %d never came (tries %d)", try, m.tries)
		}
		waits = append(waits, w.now.Sub(start))
	}
	if waits[0] < transmissionBackoff.Floor(1) || waits[2] <= waits[0] {
		t.Errorf("waits between tries %v: want at least %s, growing", waits, transmissionBackoff.Floor(1))
	}
	st := w.get(id)
	if st.State != dsr.StateCompleted || st.Transmission.Status != dsr.TransmissionSent || st.Transmission.Attempts != 4 || st.NeedsFollowUp() || len(m.sent) != 1 {
		t.Fatalf("after the receiver came back: %s %+v sent %d", st.State, st.Transmission, len(m.sent))
	}
	if ev := strings.Join(w.audit.events(id), " "); !strings.Contains(ev, "transmission.sent") {
		t.Errorf("audit %s", ev)
	}
}

// Exhausted attempts, a receiver's refusal (4xx) and a refused address
// end the transmission at once or after MaxTransmissionAttempts; the
// request completes for follow-up.
func TestTransmissionGivesUp(t *testing.T) {
	for name, tc := range map[string]struct {
		fail   []error
		status string
		tries  int
	}{
		"always down": {fail: []error{&transmit.HTTPError{Status: 503}, &transmit.HTTPError{Status: 503}, &transmit.HTTPError{Status: 503},
			&transmit.HTTPError{Status: 503}, &transmit.HTTPError{Status: 503}}, status: dsr.TransmissionFailed, tries: MaxTransmissionAttempts},
		"forbidden":        {fail: []error{&transmit.HTTPError{Status: 403}}, status: dsr.TransmissionFailed, tries: 1},
		"private resolved": {fail: []error{errors.Join(transmit.ErrRefused, errors.New("private"))}, status: dsr.TransmissionRefused, tries: 1},
	} {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t)
			withProvided(w)
			m := &memTransmitter{fail: tc.fail}
			w.svc.Transmitter = m
			id := w.submit(`{"type":"portability","subject":{"email":"ann@x.example"},"transmitTo":"https://controller.example/import"}`)
			for range 2000 {
				w.drain(1)
				if w.get(id).State.Terminal() {
					break
				}
				w.now = w.now.Add(10 * time.Second)
			}
			st := w.get(id)
			if st.State != dsr.StateCompleted || st.Transmission.Status != tc.status || m.tries != tc.tries || !st.NeedsFollowUp() {
				t.Fatalf("%s %+v tries %d", st.State, st.Transmission, m.tries)
			}
		})
	}
}

// Without a transmitter (no secret to sign with) a transmitTo is refused
// at submission, and nothing is stored.
func TestTransmitToRefusedWithoutTransmitter(t *testing.T) {
	w := newWorld(t)
	sub, err := dsr.ParseSubmission([]byte(`{"type":"portability","subject":{"email":"ann@x.example"},"transmitTo":"https://controller.example/import"}`), "", w.now)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.svc.Submit(context.Background(), sub, "", "http", "test", dsr.Actor{Kind: "test"})
	var ie *dsr.InputError
	if !errors.As(err, &ie) || ie.Code != "transmission-unavailable" || ie.Errors[0].Field != "transmitTo" {
		t.Fatalf("err %v", err)
	}
	if n := len(w.reqs.docs); n != 0 {
		t.Fatalf("%d requests stored", n)
	}
}

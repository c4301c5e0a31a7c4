package pipeline

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/blobs"
	"github.com/dsr-functions/dsr/shared/dsr"
)

// memProofs keeps proofs in memory, with their creation times.
type memProofs struct {
	mu      sync.Mutex
	data    map[string][]byte
	types   map[string]string
	created map[string]time.Time
	now     func() time.Time
	failPut bool
}

func newMemProofs(now func() time.Time) *memProofs {
	return &memProofs{data: map[string][]byte{}, types: map[string]string{}, created: map[string]time.Time{}, now: now}
}

func (m *memProofs) Put(_ context.Context, id, ct string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut {
		return errors.New("storage down")
	}
	m.data[id], m.types[id], m.created[id] = bytes.Clone(data), ct, m.now()
	return nil
}

func (m *memProofs) Open(_ context.Context, id string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[id]
	if !ok {
		return nil, blobs.ErrProofNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (m *memProofs) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.data, id)
	return nil
}

func (m *memProofs) List(_ context.Context, fn func(string, time.Time) error) error {
	m.mu.Lock()
	ids := make(map[string]time.Time, len(m.created))
	for id := range m.data {
		ids[id] = m.created[id]
	}
	m.mu.Unlock()
	for id, c := range ids {
		if err := fn(id, c); err != nil {
			return err
		}
	}
	return nil
}

func (m *memProofs) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.data[id]
	return ok
}

var (
	testPDF = []byte("%PDF-1.7\n1 0 obj <<>> endobj\n%%EOF\n")
	testPNG = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	testJPG = []byte("\xff\xd8\xff\xe0\x00\x10JFIF")
)

const agentBody = `{"type":"erasure","subject":{"email":"ann@x.example"},"agent":{"name":"Sam Agent","email":"sam@agent.example","relationship":"lawyer"}}`

func (w *world) submitAgent(proof []byte) (*dsr.Stored, error) {
	w.t.Helper()
	sub, err := dsr.ParseSubmission([]byte(agentBody), "", w.now)
	if err != nil {
		w.t.Fatal(err)
	}
	return w.svc.SubmitWithProof(context.Background(), sub, proof, "portal", dsr.Actor{Kind: "agent"})
}

// The sweeper reads a proof's request only where something may be due.
func TestSweepableAges(t *testing.T) {
	r := 90 * 24 * time.Hour
	for age, want := range map[time.Duration]bool{
		0: false, 59 * time.Minute: false, time.Hour: true, 119 * time.Minute: true, 2 * time.Hour: false,
		r - time.Minute: false, r: true, 2 * r: true,
	} {
		if got := sweepable(age, r); got != want {
			t.Errorf("age %s: %v, want %v", age, got, want)
		}
	}
}

func TestSniffProof(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"pdf":                {testPDF, ProofPDF},
		"png":                {testPNG, ProofPNG},
		"jpeg":               {testJPG, ProofJPEG},
		"html renamed .pdf":  {[]byte("<!doctype html><script>alert(1)</script>%PDF-"), ""},
		"svg":                {[]byte(`<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>`), ""},
		"pdf after a space":  {append([]byte(" "), testPDF...), ""},
		"zip":                {[]byte("PK\x03\x04"), ""},
		"truncated png":      {[]byte("\x89PNG"), ""},
		"empty":              {nil, ""},
		"gif (not accepted)": {[]byte("GIF89a"), ""},
	} {
		if got := SniffProof(tc.data); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
}

// An agent's request stores the proof, then the request that describes
// it; the code goes to the subject, never to the agent; bad proofs store
// nothing.
func TestSubmitWithProof(t *testing.T) {
	w := newWorld(t)
	mail := withVerification(w)
	proofs := newMemProofs(func() time.Time { return w.now })
	w.svc.Proofs = proofs
	st, err := w.submitAgent(testPDF)
	if err != nil {
		t.Fatal(err)
	}
	got := w.get(st.ID)
	if got.State != dsr.StateAwaitingVerification || got.Agent == nil || got.Agent.Email != "sam@agent.example" {
		t.Fatalf("stored: %s %+v", got.State, got.Agent)
	}
	p := got.Agent.Proof
	if p == nil || p.ContentType != ProofPDF || p.Bytes != int64(len(testPDF)) || len(p.SHA256) != 64 || !p.UploadedAt.Equal(w.now) {
		t.Fatalf("proof info %+v", p)
	}
	if !proofs.has(st.ID) || proofs.types[st.ID] != ProofPDF {
		t.Fatal("the proof is not stored")
	}
	if len(mail.sent) != 1 || mail.sent[0].To != "ann@x.example" {
		t.Fatalf("mail %+v, want one to the subject", mail.sent)
	}
	if strings.Contains(w.logs.String(), "sam@agent.example") || strings.Contains(w.logs.String(), "Sam Agent") {
		t.Error("the agent is in the logs")
	}
	// Wrong, missing, oversize proofs and a storage failure store nothing.
	before := len(w.reqs.docs)
	for name, tc := range map[string]struct {
		data []byte
		want error
	}{
		"html":    {[]byte("<html><body>%PDF-</body></html>"), ErrProofType},
		"missing": {nil, ErrProofMissing},
		"too big": {append(bytes.Clone(testPDF), make([]byte, MaxProofBytes)...), ErrProofTooLarge},
	} {
		if _, err := w.submitAgent(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	proofs.failPut = true
	if _, err := w.submitAgent(testPNG); err == nil {
		t.Error("a proof that could not be stored was accepted")
	}
	if len(w.reqs.docs) != before || len(proofs.data) != 1 {
		t.Errorf("refused proofs left %d requests and %d proofs", len(w.reqs.docs)-before, len(proofs.data)-1)
	}
	w.svc.Proofs = nil
	if _, err := w.submitAgent(testPDF); !errors.Is(err, ErrNoProofStore) {
		t.Errorf("without a proof store: %v", err)
	}
}

// Every view of a proof is audited; a deleted proof is not served.
func TestOpenProofAudited(t *testing.T) {
	w := newWorld(t)
	withVerification(w)
	w.svc.Proofs = newMemProofs(func() time.Time { return w.now })
	st, err := w.submitAgent(testJPG)
	if err != nil {
		t.Fatal(err)
	}
	rc, info, err := w.svc.OpenProof(context.Background(), w.get(st.ID), dsr.Actor{Kind: "user", ID: "u1", Name: "Pat"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, testJPG) || info.ContentType != ProofJPEG {
		t.Fatalf("read %q as %s", b, info.ContentType)
	}
	entries, _ := w.audit.ForRequest(context.Background(), st.ID)
	viewed := false
	for _, e := range entries {
		viewed = viewed || e.Event == "proof.viewed" && e.Actor != nil && e.Actor.ID == "u1"
	}
	if !viewed {
		t.Errorf("no proof.viewed entry in %+v", entries)
	}
	plain := w.submit(`{"type":"access","subject":{"email":"bob@y.example"}}`)
	if _, _, err := w.svc.OpenProof(context.Background(), w.get(plain), dsr.Actor{Kind: "user"}); !errors.Is(err, ErrNoProof) {
		t.Errorf("a request without a proof: %v", err)
	}
}

// The sweeper deletes a proof ProofRetention after its request ended,
// records and audits it once, and recovers from a crash at any step;
// proofs without a request go after ProofOrphanAfter.
func TestSweepProofs(t *testing.T) {
	w := newWorld(t)
	withVerification(w)
	proofs := newMemProofs(func() time.Time { return w.now })
	w.svc.Proofs = proofs
	w.svc.ProofRetention = 48 * time.Hour
	ctx := context.Background()
	st, err := w.submitAgent(testPDF)
	if err != nil {
		t.Fatal(err)
	}
	// An orphan: the proof of a request whose creation never happened.
	orphan := dsr.NewID(w.now)
	_ = proofs.Put(ctx, orphan, ProofPDF, testPDF)

	w.now = w.now.Add(30 * time.Minute)
	if n, err := w.svc.SweepProofs(ctx); err != nil || n != 0 || !proofs.has(orphan) {
		t.Fatalf("a young orphan: %d %v", n, err)
	}
	w.now = w.now.Add(time.Hour)
	if n, err := w.svc.SweepProofs(ctx); err != nil || n != 1 || proofs.has(orphan) || !proofs.has(st.ID) {
		t.Fatalf("an old orphan and an open request: %d %v", n, err)
	}
	if _, err := w.svc.Cancel(ctx, st.ID, "", dsr.Actor{Kind: "user"}); err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(48*time.Hour - time.Minute)
	if n, _ := w.svc.SweepProofs(ctx); n != 0 || !proofs.has(st.ID) {
		t.Fatal("deleted before the retention ended")
	}
	w.now = w.now.Add(2 * time.Minute)
	if n, err := w.svc.SweepProofs(ctx); err != nil || n != 1 || proofs.has(st.ID) {
		t.Fatalf("after the retention: %d %v", n, err)
	}
	got := w.get(st.ID)
	if got.Agent.Proof.DeletedAt == nil || !got.Agent.Proof.DeletedAt.Equal(w.now) {
		t.Fatalf("deletion not recorded: %+v", got.Agent.Proof)
	}
	if _, _, err := w.svc.OpenProof(ctx, got, dsr.Actor{Kind: "user"}); !errors.Is(err, ErrProofDeleted) {
		t.Errorf("a deleted proof: %v", err)
	}
	// A crash after recording but before deleting the blob: the next
	// sweep deletes it, without a second record or audit entry.
	_ = proofs.Put(ctx, st.ID, ProofPDF, testPDF)
	proofs.created[st.ID] = w.now.Add(-49 * time.Hour)
	w.now = w.now.Add(time.Hour)
	if n, err := w.svc.SweepProofs(ctx); err != nil || n != 1 || proofs.has(st.ID) {
		t.Fatalf("after a crash: %d %v", n, err)
	}
	if n, err := w.svc.SweepProofs(ctx); err != nil || n != 0 {
		t.Fatalf("again: %d %v", n, err)
	}
	if again := w.get(st.ID); !again.Agent.Proof.DeletedAt.Equal(*got.Agent.Proof.DeletedAt) {
		t.Error("the deletion was recorded twice")
	}
	entries, _ := w.audit.ForRequest(ctx, st.ID)
	n := 0
	for _, e := range entries {
		if e.Event == "proof.deleted" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d proof.deleted entries, want 1", n)
	}
}

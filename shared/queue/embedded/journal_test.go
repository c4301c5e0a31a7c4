package embedded_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/queue"
	"github.com/dsr-functions/dsr/shared/queue/embedded"
)

func open(t *testing.T, o embedded.Options) *embedded.Broker {
	t.Helper()
	b, err := embedded.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// crash ends a broker as a crash would: a crash loses nothing Close would
// write, since every change is synced as it is made; Close only lets go of
// the journal and of the directory's lock, which the kernel drops for a
// crashed process.
func crash(b *embedded.Broker) { _ = b.Close() }

// unlocked is what Peek shows of a queue after a restart: the same
// messages, none locked.
func unlocked(ds []embedded.Delivery) []embedded.Delivery {
	for i := range ds {
		ds[i].LockToken = ""
	}
	return ds
}

func msg(id string) queue.Message {
	return queue.Message{ID: id, Body: []byte(`{"n":"` + id + `"}`), Subject: "stage-" + id,
		Properties: map[string]any{"requestId": id, "attempt": int64(3), "ratio": 0.5, "final": true}}
}

// A reopened broker (the first one "crashed": never closed) holds exactly
// the messages not completed, with their DeliveryCount, sequence numbers,
// properties and schedule; dead-lettered ones stay dead-lettered; locked
// ones are available at once.
func TestReopenRebuildsState(t *testing.T) {
	clock := newClock()
	dir := t.TempDir()
	o := embedded.Options{Now: clock.Now, Dir: dir, MaxDeliveryCount: 2}
	b := open(t, o)

	send(t, b, q, msg("completed"))
	send(t, b, q, msg("locked"))
	scheduled := msg("scheduled")
	scheduled.ScheduledAt = clock.Now().Add(time.Hour)
	send(t, b, q, scheduled)
	send(t, b, q, msg("abandoned"))
	send(t, b, q, msg("dead"))
	send(t, b, q, msg("poison"))
	send(t, b, "other", queue.Message{ID: "x", Body: []byte("plain"), ContentType: "text/plain"})

	if d := receive(t, b, q); d.MessageID != "completed" || b.Complete(q, d.LockToken) != nil {
		t.Fatalf("complete %s", d.MessageID)
	}
	if d := receive(t, b, q); d.MessageID != "locked" {
		t.Fatalf("got %s", d.MessageID)
	}
	if d := receive(t, b, q); d.MessageID != "abandoned" || b.Abandon(q, d.LockToken) != nil {
		t.Fatalf("abandon %s", d.MessageID)
	}
	// abandoned is first again; take it and dead, leave poison.
	if d := receive(t, b, q); d.MessageID != "abandoned" || d.DeliveryCount != 2 || b.Abandon(q, d.LockToken) != nil {
		t.Fatalf("abandon %s (%d)", d.MessageID, d.DeliveryCount)
	}
	d := receive(t, b, q)
	if d.MessageID != "dead" || b.DeadLetter(q, d.LockToken, "BadInput", "not a stage message") != nil {
		t.Fatalf("dead-letter %s", d.MessageID)
	}
	d = receive(t, b, q)
	if d.MessageID != "poison" || b.Abandon(q, d.LockToken) != nil {
		t.Fatalf("abandon %s", d.MessageID)
	}
	// The dead-letter queue's first message was received and completed.
	if d := receive(t, b, dlq(q)); d.MessageID != "abandoned" || b.Complete(dlq(q), d.LockToken) != nil {
		t.Fatalf("complete from the dead-letter queue: %s", d.MessageID)
	}
	before := map[string][]embedded.Delivery{}
	for _, name := range []string{q, dlq(q), "other"} {
		before[name] = unlocked(b.Peek(name))
	}
	if n := len(before[q]) + len(before[dlq(q)]) + len(before["other"]); n != 5 {
		t.Fatalf("%d messages before the crash, want 5: %+v", n, before)
	}

	crash(b)
	r := open(t, o)
	if r.Restored() != 5 {
		t.Errorf("Restored() = %d, want 5", r.Restored())
	}
	for name, want := range before {
		if got := r.Peek(name); !reflect.DeepEqual(got, want) {
			t.Errorf("%s after reopening:\n got %+v\nwant %+v", name, got, want)
		}
	}
	dead := r.Peek(dlq(q))
	if len(dead) != 1 || dead[0].MessageID != "dead" || dead[0].Properties["DeadLetterReason"] != "BadInput" || dead[0].DeadLetterSource != q {
		t.Errorf("dead-letter queue: %+v", dead)
	}
	if p := r.Peek(q)[0].Properties; p["attempt"] != int64(3) || p["ratio"] != 0.5 || p["final"] != true || p["requestId"] != "locked" {
		t.Errorf("properties after reopening: %#v", p)
	}
	// The message locked at the crash comes first, at once, delivered a
	// second time; poison is next and dead-letters at its second failure.
	if d := receive(t, r, q); d.MessageID != "locked" || d.DeliveryCount != 2 {
		t.Fatalf("after reopening: %s (count %d)", d.MessageID, d.DeliveryCount)
	}
	if d := receive(t, r, q); d.MessageID != "poison" || d.DeliveryCount != 2 || r.Abandon(q, d.LockToken) != nil {
		t.Fatalf("after reopening: %s (count %d)", d.MessageID, d.DeliveryCount)
	}
	if got := r.Peek(dlq(q)); len(got) != 2 || got[1].Properties["DeadLetterReason"] != embedded.ReasonMaxDelivery {
		t.Fatalf("poison not dead-lettered: %+v", got)
	}
	receiveNone(t, r, q, 30*time.Millisecond) // scheduled is not due
	clock.Advance(time.Hour)
	if d := receive(t, r, q); d.MessageID != "scheduled" {
		t.Fatalf("scheduled: got %s", d.MessageID)
	}
	// New messages get sequence numbers after every earlier one.
	send(t, r, "other", msg("new"))
	if got := r.Peek("other"); len(got) != 2 || got[1].SequenceNumber <= 7 {
		t.Fatalf("sequence after reopening: %+v", got)
	}
	// Closed, it reopens the same once more.
	want := unlocked(r.Peek(q))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := open(t, o).Peek(q); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Close and reopening:\n got %+v\nwant %+v", got, want)
	}
}

// A MessageId seen within the window is still dropped after a restart, also
// when its message was completed; past the window it is accepted again.
func TestDuplicateDetectionSurvivesRestart(t *testing.T) {
	clock := newClock()
	o := embedded.Options{Now: clock.Now, Dir: t.TempDir(), DuplicateWindow: 10 * time.Minute}
	b := open(t, o)
	send(t, b, q, msg("a"))
	send(t, b, q, msg("b"))
	if d := receive(t, b, q); b.Complete(q, d.LockToken) != nil {
		t.Fatal("complete")
	}
	crash(b)
	b = open(t, o)
	send(t, b, q, msg("a"))
	send(t, b, q, msg("b"))
	if got := b.Peek(q); len(got) != 1 || got[0].MessageID != "b" {
		t.Fatalf("duplicates accepted after a restart: %+v", got)
	}
	clock.Advance(11 * time.Minute)
	crash(b)
	b = open(t, o)
	send(t, b, q, msg("a"))
	if got := b.Peek(q); len(got) != 2 || got[1].MessageID != "a" {
		t.Fatalf("a is not accepted past the window: %+v", got)
	}
}

// A record torn by a crash at the journal's end is ignored; the broker
// starts with what came before it and journals on after it.
func TestTornTailIgnored(t *testing.T) {
	dir := t.TempDir()
	o := embedded.Options{Dir: dir}
	b := open(t, o)
	send(t, b, q, msg("kept"))
	path := filepath.Join(dir, "journal")
	crash(b)
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range []string{
		`0badc0de {"op":"put","q":"work","msg":{"id":"torn"`, // no newline
		`0badc0de {"op":"done","q":"work","seq":1}` + "\n",   // checksum mismatch
		"\x00\x00\x00\x00",
	} {
		if err := os.WriteFile(path, append(append([]byte(nil), whole...), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		b := open(t, o)
		if got := b.Peek(q); len(got) != 1 || got[0].MessageID != "kept" {
			t.Fatalf("tail %q: %+v", tail, got)
		}
		send(t, b, q, msg("after-"+tail[:4]))
		crash(b)
		r := open(t, o)
		if got := r.Peek(q); len(got) != 2 {
			t.Fatalf("tail %q, then a send: %+v", tail, got)
		}
		crash(r)
		if err := os.WriteFile(path, whole, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Damage before good records is not a crash's doing: refused, naming it.
	lines := strings.SplitAfter(string(whole), "\n")
	bad := lines[0] + "0badc0de {}\n" + strings.Join(lines[1:], "")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.Open(o); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Open with a damaged record inside: %v", err)
	}
}

// The journal is compacted: settling thousands of messages leaves a small
// file, which still remembers their ids for duplicate detection.
func TestJournalCompacts(t *testing.T) {
	dir := t.TempDir()
	o := embedded.Options{Dir: dir}
	b := open(t, o)
	for i := range 1500 {
		id := "m" + string(rune('a'+i%26)) + strings.Repeat("x", i%7) + "-" + time.Duration(i).String()
		send(t, b, q, queue.Message{ID: id, Body: []byte("{}")})
		d := receive(t, b, q)
		if err := b.Complete(q, d.LockToken); err != nil {
			t.Fatal(err)
		}
	}
	send(t, b, q, queue.Message{ID: "last", Body: []byte("{}")})
	data, err := os.ReadFile(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	// 4,501 records uncompacted; a snapshot holds 1,503 (the counter, one
	// message, 1,501 ids) and grows to at most twice that.
	if n := strings.Count(string(data), "\n"); n > 3100 {
		t.Fatalf("journal has %d records after 1,500 settled messages", n)
	}
	crash(b)
	r := open(t, o)
	if got := r.Peek(q); len(got) != 1 || got[0].MessageID != "last" || got[0].SequenceNumber != 1501 {
		t.Fatalf("after compaction: %+v", got)
	}
	send(t, r, q, queue.Message{ID: "ma-0s", Body: []byte("{}")})
	if got := r.Peek(q); len(got) != 1 {
		t.Fatalf("a settled message's id was forgotten: %+v", got)
	}
}

// Without Dir, Open is New: nothing is written anywhere.
func TestOpenWithoutDirIsMemoryOnly(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	b := open(t, embedded.Options{})
	if err := b.Send(context.Background(), q, msg("a")); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(wd); len(entries) != 0 {
		t.Fatalf("files written: %v", entries)
	}
}

// A second broker on the same directory (a second `dsr local` from the same
// folder) is refused while the first holds it, and welcome once it is gone.
func TestOpenRefusesADirectoryInUse(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock on Windows (lock_other.go)")
	}
	o := embedded.Options{Dir: t.TempDir()}
	b := open(t, o)
	if _, err := embedded.Open(o); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
	crash(b)
	open(t, o)
}

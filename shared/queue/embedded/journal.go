package embedded

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// The journal is why a restarted `dsr local` resumes in-flight requests at
// once instead of waiting for the sweeper: every change that must survive a
// crash is appended to Dir/journal and synced before the broker answers.
// A line is "<crc32 of the JSON, 8 hex digits> <JSON record>\n". A crash can
// tear only the last line (it is written in one call); loading ignores a
// torn or unreadable last line, and refuses a damaged line followed by good
// ones, which no crash produces.
//
// Lock state is not journaled on purpose: a crashed process's locks die
// with it, as a Service Bus lock expires, so after a restart every message
// is available at once with the DeliveryCount it had reached.
const (
	journalFile = "journal"
	// compactAfter is the number of records after which a journal that is
	// mostly settled messages is rewritten as a snapshot.
	compactAfter = 1000
)

// Journal operations.
const (
	opPut  = "put"  // a message enters a queue (Send, or a snapshot's entry)
	opSeen = "seen" // a MessageId in the duplicate detection set (snapshot)
	opLock = "lock" // a delivery: DeliveryCount is now N
	opDone = "done" // a message was completed
	opDead = "dead" // a message moved to its queue's dead-letter queue
	opSeq  = "seq"  // the sequence counter (snapshot)
)

type record struct {
	Op    string `json:"op"`
	Queue string `json:"q,omitempty"`
	Seq   int64  `json:"seq,omitempty"`
	// At: put (when the MessageId was seen; zero for a snapshot entry whose
	// id is recorded by a seen record), seen, dead (when).
	At time.Time `json:"at,omitzero"`
	// ID: seen.
	ID string `json:"id,omitempty"`
	// N: lock (the new DeliveryCount).
	N           int       `json:"n,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Description string    `json:"description,omitempty"`
	Msg         *savedMsg `json:"msg,omitempty"`
}

type savedMsg struct {
	ID               string         `json:"id"`
	Body             []byte         `json:"body"`
	ContentType      string         `json:"contentType,omitempty"`
	Subject          string         `json:"subject,omitempty"`
	Properties       map[string]any `json:"properties,omitempty"`
	DeliveryCount    int            `json:"deliveryCount,omitempty"`
	Sequence         int64          `json:"sequence"`
	Enqueued         time.Time      `json:"enqueued"`
	Expires          time.Time      `json:"expires"`
	Available        time.Time      `json:"available"`
	DeadLetterSource string         `json:"deadLetterSource,omitempty"`
}

func saved(e *entry) *savedMsg {
	return &savedMsg{
		ID: e.d.MessageID, Body: e.d.Body, ContentType: e.d.ContentType, Subject: e.d.Subject,
		Properties: e.d.Properties, DeliveryCount: e.d.DeliveryCount, Sequence: e.d.SequenceNumber,
		Enqueued: e.d.EnqueuedTime, Expires: e.d.ExpiresAt, Available: e.available, DeadLetterSource: e.d.DeadLetterSource,
	}
}

func (m *savedMsg) entry() *entry {
	props := make(map[string]any, len(m.Properties))
	for k, v := range m.Properties {
		props[k] = number(v)
	}
	return &entry{available: m.Available, d: Delivery{
		MessageID: m.ID, Body: m.Body, ContentType: m.ContentType, Subject: m.Subject, Properties: props,
		DeliveryCount: m.DeliveryCount, SequenceNumber: m.Sequence, EnqueuedTime: m.Enqueued, ExpiresAt: m.Expires,
		DeadLetterSource: m.DeadLetterSource,
	}}
}

// number turns a property read back as json.Number into int64 when it is
// whole, else float64: application properties are strings, numbers and
// bools, and a property sent as 3 should not come back as 3.0.
func number(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	if i, err := n.Int64(); err == nil {
		return i
	}
	f, _ := n.Float64()
	return f
}

// journal is the open journal file.
type journal struct {
	f       *os.File
	size    int64
	records int
}

// Open returns a broker. With o.Dir set it rebuilds the queues from the
// journal there (creating the directory if need be) and journals every
// change from then on; without, it is New. Close it when done.
func Open(o Options) (*Broker, error) {
	b := New(o)
	if o.Dir == "" {
		return b, nil
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded queue: %w", err)
	}
	lock, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := b.load(filepath.Join(o.Dir, journalFile)); err != nil {
		closeLock(lock)
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// A fresh snapshot drops settled messages and any torn tail at once.
	if err := b.compactLocked(); err != nil {
		closeLock(lock)
		return nil, err
	}
	b.lock = lock
	return b, nil
}

// Close closes the journal; the broker keeps working in memory only.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.j == nil {
		return nil
	}
	err := b.j.f.Close()
	b.j = nil
	closeLock(b.lock)
	b.lock = nil
	return err
}

func closeLock(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// Restored is how many messages (dead-lettered ones included) Open found.
func (b *Broker) Restored() int { return b.restored }

// load replays the journal at path into the empty broker.
func (b *Broker) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded queue: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var offset int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			// Empty, or a last record torn by a crash: ignored.
			break
		}
		if err != nil {
			return fmt.Errorf("embedded queue: read %s: %w", path, err)
		}
		rec, perr := parseRecord(line)
		if perr != nil {
			if _, err := r.Peek(1); errors.Is(err, io.EOF) {
				break // the torn last record
			}
			return fmt.Errorf("embedded queue: %s line %d (offset %d): %w; move the file away to start empty", path, n, offset, perr)
		}
		b.replay(rec)
		offset += int64(len(line))
	}
	for _, qs := range b.queues {
		b.restored += len(qs.entries)
	}
	return nil
}

func parseRecord(line []byte) (record, error) {
	var rec record
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) < 10 || line[8] != ' ' {
		return rec, errors.New("not a journal record")
	}
	sum, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(line[9:]) {
		return rec, errors.New("checksum mismatch")
	}
	dec := json.NewDecoder(bytes.NewReader(line[9:]))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil {
		return rec, fmt.Errorf("bad record: %w", err)
	}
	return rec, nil
}

// replay applies one record; records naming a message that is not there
// (settled before a snapshot) change nothing.
func (b *Broker) replay(rec record) {
	b.seq = max(b.seq, rec.Seq)
	switch rec.Op {
	case opPut:
		if rec.Msg == nil {
			return
		}
		qs := b.q(rec.Queue)
		qs.entries = append(qs.entries, rec.Msg.entry())
		b.seq = max(b.seq, rec.Msg.Sequence)
		if !rec.At.IsZero() {
			qs.seen[rec.Msg.ID] = rec.At
		}
	case opSeen:
		b.q(rec.Queue).seen[rec.ID] = rec.At
	case opLock:
		if e := b.bySeq(rec.Queue, rec.Seq); e != nil {
			e.d.DeliveryCount = rec.N
		}
	case opDone:
		qs := b.q(rec.Queue)
		for i, e := range qs.entries {
			if e.d.SequenceNumber == rec.Seq {
				qs.entries = append(qs.entries[:i], qs.entries[i+1:]...)
				break
			}
		}
	case opDead:
		qs := b.q(rec.Queue)
		for i, e := range qs.entries {
			if e.d.SequenceNumber == rec.Seq {
				b.moveToDeadLetter(rec.Queue, qs, i, rec.Reason, rec.Description, rec.At)
				break
			}
		}
	}
}

func (b *Broker) bySeq(queueName string, seq int64) *entry {
	for _, e := range b.q(queueName).entries {
		if e.d.SequenceNumber == seq {
			return e
		}
	}
	return nil
}

// write appends one record and syncs it; b.mu must be held. Without a
// journal it does nothing. A failed write is cut off again, so a later
// record never follows a partial one.
func (b *Broker) write(rec record) error {
	if b.j == nil {
		return nil
	}
	// Compacting before the append, never after it: a caller may journal a
	// change before making it, and a snapshot must not miss it.
	if b.j.records > compactAfter && b.j.records > 2*b.liveRecords() {
		if err := b.compactLocked(); err != nil {
			return err
		}
	}
	line, err := frame(rec)
	if err != nil {
		return err
	}
	if _, err := b.j.f.Write(line); err != nil {
		_ = b.j.f.Truncate(b.j.size)
		return fmt.Errorf("embedded queue: journal: %w", err)
	}
	if err := b.j.f.Sync(); err != nil {
		return fmt.Errorf("embedded queue: journal: %w", err)
	}
	b.j.size += int64(len(line))
	b.j.records++
	return nil
}

func frame(rec record) ([]byte, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("embedded queue: journal record: %w", err)
	}
	line := make([]byte, 0, len(body)+10)
	line = fmt.Appendf(line, "%08x ", crc32.ChecksumIEEE(body))
	line = append(line, body...)
	return append(line, '\n'), nil
}

// liveRecords is how many records a snapshot would hold now.
func (b *Broker) liveRecords() int {
	n := 1
	for _, qs := range b.queues {
		n += len(qs.entries) + len(qs.seen)
	}
	return n
}

// compactLocked rewrites the journal as a snapshot of the current state
// (write to a temporary file, sync, rename over the journal, sync the
// directory) and reopens it for appending; b.mu must be held, b.opts.Dir
// set.
func (b *Broker) compactLocked() error {
	dir := b.opts.Dir
	path := filepath.Join(dir, journalFile)
	tmp := path + ".tmp"
	now := b.opts.Now()
	var buf bytes.Buffer
	records := 0
	add := func(rec record) error {
		line, err := frame(rec)
		if err != nil {
			return err
		}
		buf.Write(line)
		records++
		return nil
	}
	if err := add(record{Op: opSeq, Seq: b.seq}); err != nil {
		return err
	}
	names := make([]string, 0, len(b.queues))
	for name := range b.queues {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		qs := b.queues[name]
		for _, e := range qs.entries {
			if err := add(record{Op: opPut, Queue: name, Msg: saved(e)}); err != nil {
				return err
			}
		}
		ids := make([]string, 0, len(qs.seen))
		for id, at := range qs.seen {
			if now.Sub(at) <= b.opts.DuplicateWindow {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			if err := add(record{Op: opSeen, Queue: name, ID: id, At: qs.seen[id]}); err != nil {
				return err
			}
		}
	}
	if err := writeSynced(tmp, buf.Bytes()); err != nil {
		return fmt.Errorf("embedded queue: snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("embedded queue: snapshot: %w", err)
	}
	syncDir(dir)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("embedded queue: journal: %w", err)
	}
	if b.j != nil {
		_ = b.j.f.Close()
	}
	b.j = &journal{f: f, size: int64(buf.Len()), records: records}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename durable where the system allows syncing a
// directory (not on Windows, where the rename is durable already).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

package blobdataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/testutil/azuritetest"
)

// fanoutRig is a fixture with two datasets that fan out (contacts over 6
// blobs, cases over 4 blobs relating to contacts), a scan queue that
// records the messages sent, and a clock the test moves.
type fanoutRig struct {
	*fixture
	datasets  []sources.Dataset
	mu        sync.Mutex
	sent      []string // message ids
	bodies    map[string][]byte
	completed [][]string
	now       time.Time
	state     string
}

func newFanoutRig(t *testing.T) *fanoutRig {
	f := newFixture(t)
	r := &fanoutRig{fixture: f, bodies: map[string][]byte{}, now: time.Now().UTC()}
	r.state = azuritetest.Container(t, f.acct, "state")
	for b := range 6 {
		var lines []string
		for i := range 40 {
			n := b*40 + i
			email := fmt.Sprintf("person%d@example.com", n)
			if n%50 == 7 {
				email = "Ann <ANN@example.com>"
			}
			lines = append(lines, fmt.Sprintf(`{"id":"c%d","email":%q,"phone":"+1 206 555 %04d","note":"pad %s"}`, n, email, n, strings.Repeat("x", 60)))
		}
		f.put(fmt.Sprintf("contacts/part-%d.ndjson", b), strings.Join(lines, "\n")+"\n")
	}
	for b := range 4 {
		var lines []string
		for i := range 30 {
			n := b*30 + i
			lines = append(lines, fmt.Sprintf(`{"caseid":"k%d","contact":"c%d","text":"about %s"}`, n, (n*7)%240, strings.Repeat("y", 300)))
		}
		f.put(fmt.Sprintf("cases/part-%d.ndjson", b), strings.Join(lines, "\n")+"\n")
	}
	r.datasets = []sources.Dataset{
		{Name: "contacts", Prefix: "contacts/", Format: sources.FormatNDJSON, Key: "id",
			Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}, {Field: "phone", Kind: sources.KindPhone}, {Field: "id", Kind: sources.KindID}}},
		{Name: "cases", Prefix: "cases/", Format: sources.FormatNDJSON, Key: "caseid", FreeText: []string{"text"},
			Relations: []sources.Relation{{Field: "contact", References: "contacts", ReferencesField: "id"}}},
	}
	return r
}

// connector returns a connector over the rig's datasets that fans out
// (shards of 8 KiB: each blob is a shard), or one that does not.
func (r *fanoutRig) connector(fan bool) *Connector {
	r.t.Helper()
	c := r.fixture.connector(r.datasets...)
	if fan {
		WithFanout(Fanout{
			Container:  r.acct.Service.NewContainerClient(r.state),
			Secret:     []byte("test-secret"),
			ShardBytes: 8 << 10,
			Now:        func() time.Time { r.mu.Lock(); defer r.mu.Unlock(); return r.now },
			Send: func(_ context.Context, id string, body []byte) error {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.sent = append(r.sent, id)
				r.bodies[id] = body
				return nil
			},
			Completed: func(_ context.Context, ids []string) {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.completed = append(r.completed, ids)
			},
		})(c)
	}
	return c
}

// take returns the messages sent since the last take.
func (r *fanoutRig) take() []ShardMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ShardMessage
	for _, id := range r.sent {
		m, err := ParseShardMessage(r.bodies[id])
		if err != nil {
			r.t.Fatalf("message %s: %v", id, err)
		}
		out = append(out, m)
	}
	r.sent = nil
	return out
}

// runAll runs every message, concurrently, as the host would.
func (r *fanoutRig) runAll(c *Connector, msgs []ShardMessage) {
	r.t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		wg.Go(func() { errs[i] = c.RunShard(r.ctx, m) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			r.t.Fatalf("RunShard: %v", err)
		}
	}
}

var annSubj = sources.Subject{Emails: []string{"ann@example.com"}}

func waiting(id string, since time.Time) context.Context {
	return sources.WithSince(sources.WithRequest(context.Background(), id, annSubj), since)
}

// A fanned-out discovery waits (ErrPending with its progress), its shards
// run concurrently, the shard that completes the job wakes the request,
// and the discovery then gives exactly what an in-process scan gives,
// relations followed through a second fanned-out dataset.
func TestFanoutFindsWhatAScanFinds(t *testing.T) {
	r := newFanoutRig(t)
	c := r.connector(true)
	subjects := []sources.Subject{annSubj, {Phones: []string{"+12065550101"}}, {IDs: map[string]string{"id": "c35"}}}
	ctx := sources.WithWaiters(context.Background(), []sources.Waiter{{ID: "r1", Since: r.now}, {ID: "r2", Since: r.now}, {ID: "r3", Since: r.now}})

	_, err := c.DiscoverMany(ctx, subjects)
	var p *PendingScan
	if !errors.Is(err, sources.ErrPending) || !errors.As(err, &p) {
		t.Fatalf("first discovery: %v, want a pending scan", err)
	}
	if p.Progress.Shards != 6 || p.Progress.Done != 0 || p.Progress.Bytes == 0 {
		t.Errorf("progress %+v, want 6 shards none done", p.Progress)
	}
	msgs := r.take()
	if len(msgs) != 6 {
		t.Fatalf("%d shard messages, want 6", len(msgs))
	}
	for _, id := range r.bodies {
		if strings.Contains(string(id), "example.com") || strings.Contains(string(id), "2065550101") || strings.Contains(string(id), `"c35"`) {
			t.Errorf("a scan message holds an identifier: %s", id)
		}
	}
	r.runAll(c, msgs)
	if len(r.completed) != 1 || strings.Join(r.completed[0], ",") != "r1,r2,r3" {
		t.Fatalf("completion woke %v, want [r1 r2 r3] once", r.completed)
	}
	// Contacts are done; cases (related) fan out next.
	_, err = c.DiscoverMany(ctx, subjects)
	if !errors.As(err, &p) || p.Progress.Shards != 8 {
		t.Fatalf("second discovery: %v, want the cases' 8 shards (4 blobs in 2 parts) pending", err)
	}
	r.runAll(c, r.take())
	got, err := c.DiscoverMany(ctx, subjects)
	if err != nil {
		t.Fatalf("third discovery: %v", err)
	}
	want, err := r.connector(false).DiscoverMany(context.Background(), subjects)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fanned out:\n%+v\nin process:\n%+v", got, want)
	}
	if want[0].Total() < 6 || want[2].Total() < 2 {
		t.Fatalf("the test data finds too little: %d and %d records", want[0].Total(), want[2].Total())
	}
	if len(r.take()) != 0 {
		t.Error("a complete discovery sent more shards")
	}
}

// Redelivered shards count once; a shard that crashed after recording its
// result but before counting it is counted by its redelivery; a job whose
// tally is full but that crashed before its result was assembled is
// completed by any redelivered shard.
func TestFanoutShardRedeliveryAndCrashes(t *testing.T) {
	r := newFanoutRig(t)
	c := r.connector(true)
	ctx := waiting("r1", r.now)
	if _, err := c.DiscoverMany(ctx, []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
		t.Fatalf("discovery: %v", err)
	}
	msgs := r.take()
	// Shard 0 twice, shard 1 three times.
	r.runAll(c, []ShardMessage{msgs[0], msgs[0], msgs[1], msgs[1], msgs[1]})
	if n := r.doneShards(msgs[0].Job); n != 2 {
		t.Fatalf("%d shards done after redeliveries of 2 shards", n)
	}
	r.runAll(c, msgs[2:5])
	// The last shard records its result and dies before it looks whether
	// the job is complete: every result is there, the job is not complete.
	job := r.job(msgs[0].Job)
	res, err := c.scanShard(r.ctx, msgs[5].Job, &job, msgs[5].Shard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.fanout.putJSON(r.ctx, shardName(msgs[5].Job, msgs[5].Shard), res, nil); err != nil {
		t.Fatal(err)
	}
	if n, tl := r.doneShards(msgs[0].Job), r.tally(msgs[0].Job); n != 6 || tl.Complete || len(r.completed) != 0 {
		t.Fatalf("after the crash: %d done, complete %v, woken %v", n, tl.Complete, r.completed)
	}
	r.runAll(c, msgs[5:6]) // its redelivery
	if tl := r.tally(msgs[0].Job); !tl.Complete || len(r.completed) != 1 {
		t.Fatalf("after the redelivery: complete %v, woken %v", tl.Complete, r.completed)
	}
	// A crash between the full tally and the result: any redelivery
	// assembles it again.
	tl := r.tally(msgs[0].Job)
	tl.Complete = false
	if _, err := c.fanout.putJSON(r.ctx, tallyName(msgs[0].Job), tl, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.acct.Service.NewContainerClient(r.state).NewBlobClient(resultName(msgs[0].Job)).Delete(r.ctx, nil); err != nil {
		t.Fatal(err)
	}
	r.runAll(c, msgs[3:4])
	if tl := r.tally(msgs[0].Job); !tl.Complete {
		t.Fatal("the redelivered shard did not complete the job")
	}
	got, err := c.DiscoverMany(ctx, []sources.Subject{annSubj})
	for errors.Is(err, sources.ErrPending) { // cases
		r.runAll(c, r.take())
		got, err = c.DiscoverMany(ctx, []sources.Subject{annSubj})
	}
	if err != nil {
		t.Fatal(err)
	}
	want, _ := r.connector(false).DiscoverMany(context.Background(), []sources.Subject{annSubj})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after crashes:\n%+v\nwant\n%+v", *got[0], *want[0])
	}
}

// doneShards counts a job's shard results.
func (r *fanoutRig) doneShards(id string) int {
	r.t.Helper()
	lj := &loadedJob{id: id}
	if err := (&Fanout{Container: r.acct.Service.NewContainerClient(r.state)}).listDone(r.ctx, lj); err != nil {
		r.t.Fatal(err)
	}
	return len(lj.done)
}

func (r *fanoutRig) tally(id string) jobTally {
	r.t.Helper()
	var j jobTally
	ok, _, err := (&Fanout{Container: r.acct.Service.NewContainerClient(r.state)}).getJSON(r.ctx, tallyName(id), &j)
	if err != nil || !ok {
		r.t.Fatalf("tally %s: %v %v", id, ok, err)
	}
	return j
}

func (r *fanoutRig) job(id string) scanJob {
	r.t.Helper()
	var j scanJob
	ok, _, err := (&Fanout{Container: r.acct.Service.NewContainerClient(r.state)}).getJSON(r.ctx, jobName(id), &j)
	if err != nil || !ok {
		r.t.Fatalf("job %s: %v %v", id, ok, err)
	}
	return j
}

// A job whose shards stop reporting (a message lost, an instance gone)
// gets its unfinished shards sent again after Stale, at most maxResends
// times; then the discovery fails and its next attempt plans a new job.
// A job planned before the request's stage began is not its answer.
func TestFanoutStaleJobsAndFreshness(t *testing.T) {
	r := newFanoutRig(t)
	c := r.connector(true)
	ctx := waiting("r1", r.now)
	if _, err := c.DiscoverMany(ctx, []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
		t.Fatal(err)
	}
	msgs := r.take()
	r.runAll(c, msgs[:4]) // two are lost
	if _, err := c.DiscoverMany(ctx, []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) || len(r.take()) != 0 {
		t.Fatal("a job that is not stale was sent again")
	}
	for resend := 1; resend <= maxResends; resend++ {
		r.now = r.now.Add(DefaultStale + time.Second)
		if _, err := c.DiscoverMany(ctx, []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
			t.Fatalf("resend %d: %v", resend, err)
		}
		again := r.take() // in any order: shards are sent at once
		slices.SortFunc(again, func(a, b ShardMessage) int { return a.Shard - b.Shard })
		lost := slices.Clone(msgs[4:])
		slices.SortFunc(lost, func(a, b ShardMessage) int { return a.Shard - b.Shard })
		if !slices.Equal(again, lost) {
			t.Fatalf("resend %d sent %v, want the 2 unfinished shards %v", resend, again, lost)
		}
		if !strings.HasSuffix(r.lastIDs(), fmt.Sprintf(":%d", resend)) {
			t.Errorf("resend %d has a message id a queue would take for a duplicate", resend)
		}
	}
	r.now = r.now.Add(DefaultStale + time.Second)
	if _, err := c.DiscoverMany(ctx, []sources.Subject{annSubj}); err == nil || errors.Is(err, sources.ErrPending) {
		t.Fatalf("after %d resends: %v, want a failure", maxResends, err)
	}

	// A request whose stage began after the job was planned plans anew.
	later := waiting("r2", r.now.Add(time.Second))
	if _, err := c.DiscoverMany(later, []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
		t.Fatal(err)
	}
	fresh := r.take()
	if len(fresh) != 6 || fresh[0].Job == msgs[0].Job {
		t.Fatalf("a later request got %d messages of job %s (old job %s)", len(fresh), fresh[0].Job, msgs[0].Job)
	}
}

func (r *fanoutRig) lastIDs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id := range r.bodies {
		ids = append(ids, id)
	}
	last := ""
	for _, id := range ids {
		if id > last {
			last = id
		}
	}
	return last
}

// A malformed record in one shard fails the dataset's part for every
// subject of the job, permanently, as an in-process scan does; the other
// datasets are searched.
func TestFanoutDataErrorFailsTheDataset(t *testing.T) {
	r := newFanoutRig(t)
	r.put("contacts/part-3.ndjson", `{"id":"c999","email":"ann@example.com"`+"\n")
	c := r.connector(true)
	ctx := waiting("r1", r.now)
	var got []*sources.Discovery
	var err error
	for range 4 {
		got, err = c.DiscoverMany(ctx, []sources.Subject{annSubj})
		if !errors.Is(err, sources.ErrPending) {
			break
		}
		r.runAll(c, r.take())
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := r.connector(false).DiscoverMany(context.Background(), []sources.Subject{annSubj})
	if err != nil {
		t.Fatal(err)
	}
	if m := matchesOf(t, got[0], "contacts"); m.Error == "" || !m.Permanent || strings.Contains(m.Error, "ann@") {
		t.Errorf("contacts: %+v, want a permanent failure without data", m)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fanned out:\n%+v\nin process:\n%+v", got, want)
	}
}

func TestParseShardMessage(t *testing.T) {
	good, _ := json.Marshal(ShardMessage{Job: strings.Repeat("ab", 16), Shard: 3})
	if m, err := ParseShardMessage(good); err != nil || m.Shard != 3 {
		t.Errorf("good message: %+v %v", m, err)
	}
	for _, bad := range []string{``, `{}`, `{"job":"x","shard":1}`, `{"job":"` + strings.Repeat("ab", 16) + `","shard":-1}`,
		`{"job":"` + strings.Repeat("ab", 16) + `","shard":1,"extra":true}`, `[1]`} {
		if _, err := ParseShardMessage([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestPlanShards(t *testing.T) {
	blobs := []jobBlob{{"a", 100, ""}, {"b", 100, ""}, {"c", 500, ""}, {"d", 50, ""}, {"e", 50, ""}, {"f", 50, ""}}
	whole := func(b int) jobPiece { return jobPiece{Blob: b, End: blobs[b].Size} }
	if got := planShards(blobs, 200, 64, false); !reflect.DeepEqual(got, [][]jobPiece{{whole(0), whole(1)}, {whole(2)}, {whole(3), whole(4), whole(5)}}) {
		t.Errorf("planShards = %v", got)
	}
	// Split: c in 3 parts of at most 200 bytes, covering it exactly.
	got := planShards(blobs, 200, 64, true)
	want := [][]jobPiece{{whole(0), whole(1)}, {{2, 0, 167}}, {{2, 167, 334}}, {{2, 334, 500}}, {whole(3), whole(4), whole(5)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("planShards split = %v, want %v", got, want)
	}
	// Bounded: at most 2 shards, the target grows.
	for _, split := range []bool{false, true} {
		if got := planShards(blobs, 10, 2, split); len(got) > 2 {
			t.Errorf("planShards with max 2 (split %v) = %v", split, got)
		}
	}
}

// One large NDJSON blob is split over shards at record boundaries: every
// record is scanned by exactly one part, whatever the boundaries cut
// (a line, a CRLF, a blank line, a long line spanning several parts), and
// the discovery's ordinals and byte offsets are the in-process scan's.
func TestFanoutSplitsOneLargeBlob(t *testing.T) {
	f := newFixture(t)
	var b strings.Builder
	for i := range 600 {
		email := fmt.Sprintf("p%d@example.com", i)
		if i%37 == 5 {
			email = "ANN@example.com"
		}
		switch i % 9 {
		case 3:
			b.WriteString("\n")
		case 4:
			b.WriteString("   \r\n")
		}
		pad := strings.Repeat("z", (i*31)%90)
		if i == 300 {
			pad = strings.Repeat("long", 3000) // 12 KB: spans parts
		}
		end := "\n"
		if i%5 == 0 {
			end = "\r\n"
		}
		fmt.Fprintf(&b, `{"id":"c%d","email":%q,"pad":%q}%s`, i, email, pad, end)
	}
	b.WriteString(`{"id":"last","email":"ann@example.com"}`) // no line ending
	f.put("big.ndjson", b.String())
	d := sources.Dataset{Name: "big", Blob: "big.ndjson", Format: sources.FormatNDJSON, Key: "id",
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}
	for _, shard := range []int64{1 << 10, 3000, 4099} {
		t.Run(fmt.Sprint(shard), func(t *testing.T) {
			r := &fanoutRig{fixture: f, bodies: map[string][]byte{}, now: time.Now().UTC()}
			r.state = azuritetest.Container(t, f.acct, "state")
			r.datasets = []sources.Dataset{d}
			c := r.connector(true)
			c.fanout.ShardBytes = shard
			ctx := waiting("r1", r.now.Add(-time.Minute))
			_, err := c.DiscoverMany(ctx, []sources.Subject{annSubj})
			var p *PendingScan
			if !errors.As(err, &p) || p.Progress.Shards < 3 {
				t.Fatalf("discovery: %v, want a scan over several parts", err)
			}
			r.runAll(c, r.take())
			got, err := c.DiscoverMany(ctx, []sources.Subject{annSubj})
			if err != nil {
				t.Fatal(err)
			}
			want, err := r.connector(false).DiscoverMany(context.Background(), []sources.Subject{annSubj})
			if err != nil {
				t.Fatal(err)
			}
			if want[0].Total() != 18 {
				t.Fatalf("the in-process scan finds %d records, want 18", want[0].Total())
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("split scan:\n%+v\nin process:\n%+v", got, want)
			}
		})
	}
}

// The sweeper deletes a scan's blobs once they are a day old, not before.
func TestFanoutSweep(t *testing.T) {
	r := newFanoutRig(t)
	r.now = time.Now().UTC()
	c := r.connector(true)
	if _, err := c.DiscoverMany(waiting("r1", r.now), []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
		t.Fatal(err)
	}
	r.runAll(c, r.take())
	if n, err := c.SweepScans(r.ctx, 24*time.Hour); n != 0 || err != nil {
		t.Fatalf("fresh scans swept: %d %v", n, err)
	}
	r.now = r.now.Add(25 * time.Hour)
	n, err := c.SweepScans(r.ctx, 24*time.Hour)
	if err != nil || n < 9 { // job, tally, 6 shard results, result, registry
		t.Fatalf("a day later: %d swept, %v", n, err)
	}
	if n, _ := c.SweepScans(r.ctx, 24*time.Hour); n != 0 {
		t.Errorf("%d blobs left to sweep after the sweep", n)
	}
}

// A shard delivered when nothing waits for it any more (its job complete
// or swept, or a shard number the job does not have) succeeds without
// writing: the tally, read while the shard is scanned, stops it.
func TestFanoutShardNoLongerWanted(t *testing.T) {
	r := newFanoutRig(t)
	c := r.connector(true)
	if _, err := c.DiscoverMany(waiting("r1", r.now), []sources.Subject{annSubj}); !errors.Is(err, sources.ErrPending) {
		t.Fatal(err)
	}
	msgs := r.take()
	r.runAll(c, msgs)
	job := msgs[0].Job
	if n, tl := r.doneShards(job), r.tally(job); n != len(msgs) || !tl.Complete || len(r.completed) != 1 {
		t.Fatalf("after every shard: %d done, complete %v, woken %v", n, tl.Complete, r.completed)
	}
	shards := r.acct.Service.NewContainerClient(r.state)
	if _, err := shards.NewBlobClient(shardName(job, 2)).Delete(r.ctx, nil); err != nil {
		t.Fatal(err)
	}
	// Complete: a late redelivery of shard 2 (on an instance that knows
	// the job, and on one that does not) writes no result and wakes nobody
	// again.
	late := []ShardMessage{{Job: job, Shard: 2}}
	r.runAll(c, late)
	r.runAll(r.connector(true), late)
	if n := r.doneShards(job); n != len(msgs)-1 || len(r.completed) != 1 {
		t.Fatalf("a shard of a complete job: %d done, woken %v", n, r.completed)
	}
	// A shard number the job does not have.
	r.runAll(c, []ShardMessage{{Job: job, Shard: len(msgs) + 3}})
	if n := r.doneShards(job); n != len(msgs)-1 {
		t.Fatalf("a shard the job does not have: %d done", n)
	}
	// Swept: no tally, no job.
	r.now = r.now.Add(25 * time.Hour)
	if _, err := c.SweepScans(r.ctx, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	r.runAll(c, msgs[0:1])
	r.runAll(r.connector(true), msgs[0:1])
	if n := r.doneShards(job); n != 0 {
		t.Fatalf("a shard of a swept job: %d results written", n)
	}
}

// statCounting is the Azure store, counting the requests for a blob's
// size or version made before reading it (HEADs, listings) and the opens
// that tell the size themselves.
type statCounting struct {
	azureStore
	stats, sized *atomic.Int64
}

func (s statCounting) stat(ctx context.Context, cont, name string) (string, int64, error) {
	s.stats.Add(1)
	return s.azureStore.stat(ctx, cont, name)
}

func (s statCounting) sizes(ctx context.Context, cont, prefix, name string) (map[string]blobProps, error) {
	s.stats.Add(1)
	return s.azureStore.sizes(ctx, cont, prefix, name)
}

func (s statCounting) openSized(ctx context.Context, cont, name string) (io.ReadCloser, blobProps, error) {
	s.sized.Add(1)
	return s.azureStore.openSized(ctx, cont, name)
}

// A single-blob dataset that may fan out is opened without asking its
// size first: small, it is scanned from that download; large, the
// download is closed and the blob fanned out; missing, the dataset fails
// as a scan's does.
func TestFanoutSingleBlobOpenedOnce(t *testing.T) {
	r := newFanoutRig(t)
	small := strings.Repeat(`{"email":"other@example.com"}`+"\n", 20) + `{"email":"ann@example.com"}` + "\n"
	r.put("one/small.ndjson", small)
	r.put("one/large.ndjson", strings.Repeat(small, 40)) // about 3 shards of 8 KiB
	id := []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}
	r.datasets = []sources.Dataset{
		{Name: "small", Blob: "one/small.ndjson", Format: sources.FormatNDJSON, Identifiers: id},
		{Name: "large", Blob: "one/large.ndjson", Format: sources.FormatNDJSON, Identifiers: id},
		{Name: "missing", Blob: "one/missing.ndjson", Format: sources.FormatNDJSON, Identifiers: id},
	}
	c := r.connector(true)
	count := statCounting{azureStore: c.store.(azureStore), stats: &atomic.Int64{}, sized: &atomic.Int64{}}
	c.store = count
	_, err := c.DiscoverMany(waiting("r1", r.now), []sources.Subject{annSubj})
	if !errors.Is(err, sources.ErrPending) {
		t.Fatalf("discovery: %v, want the large blob fanned out", err)
	}
	if msgs := r.take(); len(msgs) < 2 {
		t.Fatalf("%d shard messages for the large blob, want it split", len(msgs))
	}
	if n, o := count.stats.Load(), count.sized.Load(); n != 0 || o != 3 {
		t.Errorf("%d size requests and %d sized opens, want none and one per dataset", n, o)
	}
	// The small and missing datasets alone: found, and failed as data.
	r.datasets = r.datasets[:1:1]
	r.datasets = append(r.datasets, sources.Dataset{Name: "missing", Blob: "one/missing.ndjson", Format: sources.FormatNDJSON, Identifiers: id})
	c = r.connector(true)
	got, err := c.DiscoverMany(waiting("r2", r.now), []sources.Subject{annSubj})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Datasets[0].Records != 1 {
		t.Errorf("small dataset: %d records, want 1", got[0].Datasets[0].Records)
	}
	if miss := got[0].Datasets[1]; !miss.Permanent || !strings.Contains(miss.Error, "not found") {
		t.Errorf("missing blob: %+v, want a permanent not-found failure", miss)
	}
}

// TestMatcherCacheLoadsAJobOnce checks the instance's job cache: shards
// of one job arriving together read the job once; a failed read is not
// kept (the next shard reads again); a waiting shard gives up with its
// context; and only one shard at a time completes a job here.
func TestMatcherCacheLoadsAJobOnce(t *testing.T) {
	var mc matcherCache
	ctx := context.Background()
	var reads atomic.Int32
	release := make(chan struct{})
	read := func(context.Context) (*scanJob, error) {
		reads.Add(1)
		<-release
		return &scanJob{Dataset: "d"}, nil
	}
	var wg sync.WaitGroup
	got := make([]*scanJob, 8)
	for i := range got {
		wg.Go(func() {
			j, err := mc.loadJob(ctx, "job1", read)
			if err != nil {
				t.Error(err)
			}
			got[i] = j
		})
	}
	// Let them all arrive, then end the one read.
	for deadline := time.Now().Add(5 * time.Second); reads.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Fatalf("8 shards arriving together read the job %d times, want 1", n)
	}
	for i, j := range got {
		if j == nil || j != got[0] {
			t.Fatalf("shard %d got job %p, the first %p", i, j, got[0])
		}
	}

	// A failed read is not kept.
	fail := errors.New("boom")
	if _, err := mc.loadJob(ctx, "job2", func(context.Context) (*scanJob, error) { return nil, fail }); !errors.Is(err, fail) {
		t.Fatalf("failed read: %v", err)
	}
	if j, err := mc.loadJob(ctx, "job2", func(context.Context) (*scanJob, error) { return &scanJob{Dataset: "d2"}, nil }); err != nil || j.Dataset != "d2" {
		t.Fatalf("read after a failure = %v, %v", j, err)
	}

	// A shard waiting for another's read gives up with its context.
	block := make(chan struct{})
	defer close(block)
	go mc.loadJob(ctx, "job3", func(context.Context) (*scanJob, error) { <-block; return &scanJob{}, nil })
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mc.mu.Lock()
		loading := mc.entry("job3").loading != nil
		mc.mu.Unlock()
		if loading {
			break
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := mc.loadJob(short, "job3", read); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiting shard whose context ended: %v", err)
	}

	if !mc.beginComplete("job1") {
		t.Fatal("the first shard may not complete the job")
	}
	if mc.beginComplete("job1") {
		t.Fatal("two shards complete the job at once")
	}
	mc.endComplete("job1")
	if !mc.beginComplete("job1") {
		t.Fatal("after the first ended, a redelivered shard may not complete the job")
	}
}

package blobdataset

// Discovery fanned out over Function instances (issue 15).
//
// One invocation reads a dataset at the speed of one instance; a lake of
// terabytes takes longer than an invocation may run. With a Fanout, the
// scan of a large dataset (at least two shards of ShardBytes) becomes a
// job: its blobs are grouped into shards, one message per shard goes on
// the scan queue, and each shard invocation (RunShard) scans its blobs for
// the job's subjects and records its result. The discovery that planned
// the job returns a PendingError instead of waiting: the request waits
// like for any system that answers later, and when the last shard has
// reported, the shard that completed the job has the waiting requests'
// discovery run again (Fanout.Completed), which now finds the job's result
// and goes on (the relations' fixed point runs as before: a related
// dataset that is large fans out in turn).
//
// Exactly once under redelivery and crashes:
//   - a shard's result is a blob of its own, written before the shard
//     counts as done; scanning a shard twice writes the same result;
//   - a shard is done when its result blob exists: it is written only if
//     absent (If-None-Match), so a redelivered shard counts once, and
//     shards finishing together do not contend for one blob;
//   - after writing its result a shard lists the job's results (a
//     strongly consistent listing: the last one written sees every
//     other); when all are there it assembles the job's result (every
//     shard's, in blob order, written only if absent) and then marks the
//     job complete in its tally (a conditional write); a crash in between
//     leaves every result and no completion, which the redelivered
//     message finishes.
//
// A discovery finds its job again through its dataset's registry (one
// blob per dataset definition and blob names), which lists the recent
// jobs with a keyed hash of each subject and its relation keys: one read
// serves a batch of any size, and no identifier is stored in it. A job is taken only if it was planned after the request's stage
// began (sources.Waiter.Since): an access request does not reuse a scan
// made before an erasure, and verification after an erasure scans again.
// The job and result blobs hold the subjects and what was found, like the
// request's own discovery, in the state container; the sweeper deletes
// them after a day.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Fanout configures discovery fanned out over the scan queue.
type Fanout struct {
	// Container holds the jobs, shard results and registries (under ScanPrefix).
	Container *container.Client
	// Secret keys the registries' names and subject keys.
	Secret []byte
	// Send puts one shard message on the scan queue; messageID makes a
	// resend of the same shard a duplicate the queue may drop.
	Send func(ctx context.Context, messageID string, body []byte) error
	// Completed is told the waiting requests of a job that just completed,
	// so that their discovery runs again now rather than at the next check.
	Completed func(ctx context.Context, requestIDs []string)
	// ShardBytes is the target size of a shard (DefaultShardBytes if 0); a
	// dataset fans out when its blobs make at least two shards.
	ShardBytes int64
	// MaxShards bounds a job's shards (DefaultMaxShards if 0): a larger
	// dataset gets larger shards.
	MaxShards int
	// Stale is how long a job may go without a shard reporting before its
	// unfinished shards are sent again (DefaultStale if 0).
	Stale time.Duration
	// Poll is how soon a waiting request checks again if no completion
	// wakes it (DefaultPoll if 0).
	Poll time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Defaults of Fanout.
const (
	DefaultShardBytes = 256 << 20
	DefaultMaxShards  = 64
	DefaultStale      = 5 * time.Minute
	DefaultPoll       = 30 * time.Second
	// maxResends is how often a stale job's shards are sent again before
	// the job is dropped and the discovery fails (to be planned afresh by
	// its next attempt).
	maxResends = 3
	// ScanPrefix starts the names of the fan-out's blobs in the container.
	ScanPrefix = "scan/"
)

// WithFanout lets discovery fan large datasets out over the scan queue.
func WithFanout(f Fanout) Option {
	return func(c *Connector) {
		if f.ShardBytes <= 0 {
			f.ShardBytes = DefaultShardBytes
		}
		if f.MaxShards <= 0 {
			f.MaxShards = DefaultMaxShards
		}
		if f.Stale <= 0 {
			f.Stale = DefaultStale
		}
		if f.Poll <= 0 {
			f.Poll = DefaultPoll
		}
		if f.Now == nil {
			f.Now = time.Now
		}
		c.fanout = &f
	}
}

// ShardMessage is the body of a scan queue message: it names a job and one
// of its shards, nothing else.
type ShardMessage struct {
	Job   string `json:"job"`
	Shard int    `json:"shard"`
}

// ParseShardMessage reads a scan queue message.
func ParseShardMessage(body []byte) (ShardMessage, error) {
	var m ShardMessage
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return m, fmt.Errorf("scan message: %w", err)
	}
	if !validJobID(m.Job) || m.Shard < 0 {
		return m, errors.New("scan message: no job id or shard")
	}
	return m, nil
}

func validJobID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// scanJob is a fanned-out scan of one dataset for some subjects: written
// once, when it is planned. What changes is in its jobTally.
type scanJob struct {
	Dataset   string       `json:"dataset"`
	PlannedAt time.Time    `json:"plannedAt"`
	Blobs     []jobBlob    `json:"blobs"`
	Shards    [][]jobPiece `json:"shards"`
	Subjects  []jobSubject `json:"subjects"`
}

// jobTally is what changes of a job, in a small blob of its own that
// discoveries and completing shards change with conditional writes: the
// requests to wake, whether the result is there, the resends. Which
// shards are done is the set of shard results written (listed).
type jobTally struct {
	Shards int   `json:"shards"`
	Bytes  int64 `json:"bytes"`
	// ShardBytes are the bytes of each shard (for progress).
	ShardBytes []int64  `json:"shardBytes"`
	Waiters    []string `json:"waiters,omitempty"`
	Complete   bool     `json:"complete,omitempty"`
	// SentAt is when the shards were last sent (planned or resent).
	SentAt  time.Time `json:"sentAt"`
	Resends int       `json:"resends,omitempty"`
}

type jobBlob struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// ETag pins the parts of a blob split over shards to one version.
	ETag string `json:"etag"`
}

// jobPiece is part of a shard: the records of blob Blob that start in
// [Start, End); the whole blob when that is all of it.
type jobPiece struct {
	Blob  int   `json:"b"`
	Start int64 `json:"s,omitempty"`
	End   int64 `json:"e"`
}

type jobSubject struct {
	Subject sources.Subject `json:"subject"`
	Keys    keySet          `json:"keys,omitempty"`
}

// shardResult is what a shard found: one entry per piece of the shard, or
// the reason its data cannot be read. (The job's result has one entry per
// blob.)
type shardResult struct {
	Blobs []savedBlob `json:"blobs,omitempty"`
	Error string      `json:"error,omitempty"`
}

type savedBlob struct {
	ETag string `json:"etag"`
	// Records is how many records a piece holds (its hits' ordinals count
	// from its start); the job's result numbers them from the blob's.
	Records int64      `json:"records,omitempty"`
	Hits    []savedHit `json:"hits,omitempty"`
	Keys    []savedKey `json:"keys,omitempty"`
}

type savedHit struct {
	Subject int   `json:"s"`
	Ordinal int64 `json:"o"`
	Mention bool  `json:"m,omitempty"`
	Offset  int64 `json:"off"`
	Length  int64 `json:"len"`
}

type savedKey struct {
	Subject int    `json:"s"`
	Field   string `json:"f"`
	Value   string `json:"v"`
}

func saveBlob(b blobResult) savedBlob {
	s := savedBlob{ETag: b.etag}
	for _, h := range b.hits {
		s.Hits = append(s.Hits, savedHit{h.subject, h.ordinal, h.mention, h.offset, h.length})
	}
	for _, k := range b.keys {
		s.Keys = append(s.Keys, savedKey{k.subject, k.field, k.value})
	}
	return s
}

func (s savedBlob) result() blobResult {
	b := blobResult{etag: s.ETag}
	for _, h := range s.Hits {
		b.hits = append(b.hits, hit{subject: h.Subject, ordinal: h.Ordinal, mention: h.Mention, offset: h.Offset, length: h.Length})
	}
	for _, k := range s.Keys {
		b.keys = append(b.keys, subjectKey{k.Subject, keyValue{k.Field, k.Value}})
	}
	return b
}

// registry lists the recent jobs of one dataset (as its blobs are named
// now), each with its subjects' keys in job order: one read tells a
// discovery of any number of subjects which jobs hold them.
type registry struct {
	Jobs []registered `json:"jobs"`
}

type registered struct {
	Job       string    `json:"job"`
	PlannedAt time.Time `json:"plannedAt"`
	Keys      []string  `json:"keys"`
}

// registryKeep is how long a job stays in its dataset's registry.
const registryKeep = 24 * time.Hour

func jobName(id string) string    { return ScanPrefix + "jobs/" + id + ".json" }
func resultName(id string) string { return ScanPrefix + "jobs/" + id + "/result.json" }
func tallyName(id string) string  { return ScanPrefix + "jobs/" + id + "/tally.json" }
func shardName(id string, shard int) string {
	return fmt.Sprintf("%sjobs/%s/shard-%05d.json", ScanPrefix, id, shard)
}
func registryName(key string) string { return ScanPrefix + "registry/" + key + ".json" }

// fanoutFormat reports whether datasets of format f can fan out: formats
// read blob by blob by scanBlob.
func fanoutFormat(f sources.Format) bool {
	switch f {
	case sources.FormatNDJSON, sources.FormatCSV, sources.FormatJSONArray, sources.FormatParquet:
		return true
	}
	return false
}

// planShards groups blobs (in name order) into shards of about target
// bytes, at most maxShards of them (the target grows to keep the count). A
// blob larger than the target is split into parts at record boundaries
// when split allows (NDJSON), else is a shard of its own.
func planShards(blobs []jobBlob, target int64, maxShards int, split bool) [][]jobPiece {
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	target = max(target, 1)
	if n := (total + target - 1) / target; n > int64(maxShards) {
		target = (total + int64(maxShards) - 1) / int64(maxShards)
	}
	for {
		shards := packShards(blobs, target, split)
		if len(shards) <= maxShards {
			return shards
		}
		target += target/2 + 1
	}
}

// packShards packs blobs in order into shards of at most target bytes.
func packShards(blobs []jobBlob, target int64, split bool) [][]jobPiece {
	var shards [][]jobPiece
	var cur []jobPiece
	var size int64
	flush := func() {
		if len(cur) > 0 {
			shards = append(shards, cur)
			cur, size = nil, 0
		}
	}
	for i, b := range blobs {
		if split && b.Size > target {
			flush()
			parts := (b.Size + target - 1) / target
			step := (b.Size + parts - 1) / parts
			for start := int64(0); start < b.Size; start += step {
				shards = append(shards, []jobPiece{{Blob: i, Start: start, End: min(b.Size, start+step)}})
			}
			continue
		}
		if len(cur) > 0 && size+b.Size > target {
			flush()
		}
		cur = append(cur, jobPiece{Blob: i, End: b.Size})
		size += b.Size
	}
	flush()
	return shards
}

// PendingScan is the error of a discovery waiting for fanned-out scans: it
// is a sources.ErrPending with the jobs' progress.
type PendingScan struct {
	Progress sources.Progress
	After    time.Duration
}

func (p *PendingScan) Error() string {
	return fmt.Sprintf("scan fanned out: %d of %d shards done", p.Progress.Done, p.Progress.Shards)
}
func (p *PendingScan) Is(target error) bool { return target == sources.ErrPending }

// RetryAfter tells the pipeline how soon to look again (sources.RetryHinter).
func (p *PendingScan) RetryAfter() time.Duration { return p.After }

// DiscoveryProgress is what the request shows while it waits (sources.ProgressReporter).
func (p *PendingScan) DiscoveryProgress() sources.Progress { return p.Progress }

// datasetKey names a dataset's registry: its definition and blob names.
func (f *Fanout) datasetKey(d *sources.Dataset, blobs []jobBlob) string {
	mac := hmac.New(sha256.New, f.Secret)
	def, _ := json.Marshal(d)
	fmt.Fprintf(mac, "dsr-scan-dataset\x00%s\x00", def)
	for _, b := range blobs {
		fmt.Fprintf(mac, "%q\x00", b.Name)
	}
	return hex.EncodeToString(mac.Sum(nil)[:20])
}

// subjectKey names a subject's scan of d: its identifiers and the
// relation keys d's rules look at (a keyed hash: no identifier is kept in
// the registry).
func (f *Fanout) subjectKey(d *sources.Dataset, st *subjectState) string {
	mac := hmac.New(sha256.New, f.Secret)
	subj, _ := json.Marshal(st.subj)
	fmt.Fprintf(mac, "dsr-scan-subject\x00%s\x00%s\x00", d.Name, subj)
	for _, r := range d.Relations {
		vals := make([]string, 0, len(st.keys[r.References][r.ReferencesField]))
		for v := range st.keys[r.References][r.ReferencesField] {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		fmt.Fprintf(mac, "%s\x00%s\x00%q\x00", r.References, r.ReferencesField, vals)
	}
	return hex.EncodeToString(mac.Sum(nil)[:20])
}

// marker is where a registry says a subject's scan is: a job and the
// subject's index in it.
type marker struct {
	Job   string
	Index int
}

// find returns the newest job planned at or after since that holds key.
func (r *registry) find(key string, since time.Time) (marker, bool) {
	for j := len(r.Jobs) - 1; j >= 0; j-- {
		e := r.Jobs[j]
		if e.PlannedAt.Before(since) || !validJobID(e.Job) {
			continue
		}
		if k := slices.Index(e.Keys, key); k >= 0 {
			return marker{Job: e.Job, Index: k}, true
		}
	}
	return marker{}, false
}

// register adds a job to a dataset's registry (a conditional write,
// retried when another discovery registered one meanwhile), dropping
// entries older than registryKeep.
func (f *Fanout) register(ctx context.Context, name string, e registered) error {
	for {
		var reg registry
		found, etag, err := f.getJSON(ctx, name, &reg)
		if err != nil {
			return err
		}
		reg.Jobs = slices.DeleteFunc(reg.Jobs, func(old registered) bool { return e.PlannedAt.Sub(old.PlannedAt) > registryKeep })
		reg.Jobs = append(reg.Jobs, e)
		var cond *azcore.ETag
		if found {
			cond = &etag
		} else {
			none := azcore.ETagAny
			cond = &none
		}
		_, err = f.putJSONIf(ctx, name, reg, cond, !found)
		if err == nil {
			return nil
		}
		if !bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) {
			return err
		}
	}
}

// loadedJob is a job as one call read it: its tally (with ETag) always,
// the job itself when needed, and its result once complete.
type loadedJob struct {
	id        string
	tally     jobTally
	tallyETag azcore.ETag
	job       *scanJob
	// done are the shards whose results are written, with when.
	done    map[int]time.Time
	results []scanResult
	err     error
}

// listDone lists the shards whose results are written: a shard is done
// once its result is (one list, whatever the number of shards).
func (f *Fanout) listDone(ctx context.Context, lj *loadedJob) error {
	lj.done = map[int]time.Time{}
	prefix := ScanPrefix + "jobs/" + lj.id + "/shard-"
	pager := f.Container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list a scan's shard results: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			var n int
			if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(*it.Name, prefix), ".json"), "%d", &n); err != nil {
				continue
			}
			var at time.Time
			if it.Properties != nil && it.Properties.LastModified != nil {
				at = *it.Properties.LastModified
			}
			lj.done[n] = at
		}
	}
	return nil
}

// loadTally reads a job's tally; false if the job is gone (swept).
func (f *Fanout) loadTally(ctx context.Context, lj *loadedJob) (bool, error) {
	lj.tally = jobTally{}
	ok, etag, err := f.getJSON(ctx, tallyName(lj.id), &lj.tally)
	if err != nil || !ok {
		return false, err
	}
	lj.tallyETag = etag
	return true, nil
}

// loadJob reads the job itself (once).
func (f *Fanout) loadJob(ctx context.Context, lj *loadedJob) (bool, error) {
	if lj.job != nil {
		return true, nil
	}
	var j scanJob
	ok, _, err := f.getJSON(ctx, jobName(lj.id), &j)
	if err != nil || !ok {
		return false, err
	}
	lj.job = &j
	return true, nil
}

// scanFanout is scan for a dataset of many shards: the subjects whose job
// is complete get its result, the others wait for a job (joined or new),
// and then the call fails with a PendingScan.
func (c *Connector) scanFanout(ctx context.Context, d *sources.Dataset, due []*subjectState, blobs []jobBlob) ([]scanResult, error) {
	f := c.fanout
	now := f.Now().UTC()
	waiters := sources.WaitersFrom(ctx)
	out := make([]scanResult, len(due))
	jobs := map[string]*loadedJob{}
	var need []int
	var pending []*loadedJob
	regName := registryName(f.datasetKey(d, blobs))
	var reg registry
	if _, _, err := f.getJSON(ctx, regName, &reg); err != nil {
		return nil, err
	}
	keys := make([]string, len(due))
	for i, st := range due {
		keys[i] = f.subjectKey(d, st)
		w := waiterOf(waiters, i, len(due))
		since := w.Since
		if since.IsZero() {
			since = now.Add(-f.Stale)
		}
		mk, found := reg.find(keys[i], since)
		if !found {
			need = append(need, i)
			continue
		}
		lj := jobs[mk.Job]
		if lj == nil {
			lj = &loadedJob{id: mk.Job}
			ok, err := f.loadTally(ctx, lj)
			if err != nil {
				return nil, err
			}
			if !ok {
				need = append(need, i)
				continue
			}
			jobs[mk.Job] = lj
		}
		if !lj.tally.Complete {
			if !slices.Contains(pending, lj) {
				pending = append(pending, lj)
			}
			continue
		}
		if lj.results == nil && lj.err == nil {
			lj.results, lj.err = f.loadResult(ctx, d, lj)
		}
		if lj.err != nil {
			return nil, lj.err
		}
		if mk.Index >= len(lj.results) {
			return nil, fmt.Errorf("dataset %s: a fanned-out scan's result does not fit its registry", d.Name)
		}
		out[i] = lj.results[mk.Index]
	}
	if len(need) > 0 {
		lj, err := c.planJob(ctx, d, due, need, keys, blobs, waiters, now, regName)
		if err != nil {
			return nil, err
		}
		pending = append(pending, lj)
	}
	if len(pending) == 0 {
		return out, nil
	}
	// The whole call waits for these jobs (a batch waits as one): each
	// wakes every request of the call when it completes.
	var ids []string
	for _, w := range waiters {
		if w.ID != "" {
			ids = append(ids, w.ID)
		}
	}
	p := &PendingScan{After: f.Poll}
	for _, lj := range pending {
		if err := f.addWaiters(ctx, lj, ids); err != nil {
			return nil, err
		}
		if lj.tally.Complete {
			// Completed while we looked, maybe before our requests were
			// among its waiters: look again soon.
			p.After = time.Second
		}
		if err := f.listDone(ctx, lj); err != nil {
			return nil, err
		}
		if err := f.resendIfStale(ctx, lj, now); err != nil {
			return nil, err
		}
		p.Progress.Shards += lj.tally.Shards
		p.Progress.Done += len(lj.done)
		for s := range lj.done {
			if s < len(lj.tally.ShardBytes) {
				p.Progress.DoneBytes += lj.tally.ShardBytes[s]
			}
		}
		p.Progress.Bytes += lj.tally.Bytes
	}
	return nil, p
}

// waiterOf is the request behind subject i of n (the zero Waiter if the
// context does not say).
func waiterOf(ws []sources.Waiter, i, n int) sources.Waiter {
	if len(ws) == n {
		return ws[i]
	}
	if len(ws) == 1 {
		return ws[0]
	}
	return sources.Waiter{}
}

// planJob creates a job for the subjects due[need...], registers them,
// and sends its shards.
func (c *Connector) planJob(ctx context.Context, d *sources.Dataset, due []*subjectState, need []int, keys []string, blobs []jobBlob, waiters []sources.Waiter, now time.Time, regName string) (*loadedJob, error) {
	f := c.fanout
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	job := &scanJob{Dataset: d.Name, PlannedAt: now, Blobs: blobs, Shards: planShards(blobs, f.ShardBytes, f.MaxShards, d.Format == sources.FormatNDJSON)}
	lj := &loadedJob{id: hex.EncodeToString(id[:]), job: job}
	lj.tally = jobTally{Shards: len(job.Shards), SentAt: now}
	for _, pieces := range job.Shards {
		var n int64
		for _, p := range pieces {
			n += p.End - p.Start
		}
		lj.tally.ShardBytes = append(lj.tally.ShardBytes, n)
		lj.tally.Bytes += n
	}
	for _, i := range need {
		job.Subjects = append(job.Subjects, jobSubject{Subject: due[i].subj, Keys: due[i].keys})
		if w := waiterOf(waiters, i, len(due)); w.ID != "" && !slices.Contains(lj.tally.Waiters, w.ID) {
			lj.tally.Waiters = append(lj.tally.Waiters, w.ID)
		}
	}
	// The job and its tally are written at once; both before the job is
	// registered or any shard is sent, so whoever finds the job finds both.
	var jobErr error
	var wrote sync.WaitGroup
	wrote.Go(func() { _, jobErr = f.putJSON(ctx, jobName(lj.id), job, nil) })
	etag, err := f.putJSON(ctx, tallyName(lj.id), lj.tally, nil)
	wrote.Wait()
	if err = errors.Join(jobErr, err); err != nil {
		return nil, fmt.Errorf("dataset %s: plan a fanned-out scan: %w", d.Name, err)
	}
	lj.tallyETag = etag
	entry := registered{Job: lj.id, PlannedAt: now}
	for _, i := range need {
		entry.Keys = append(entry.Keys, keys[i])
	}
	// The shards go out while the job is registered (a read and a
	// conditional write): a shard needs only the job and its tally. If
	// the registration fails, the discovery fails and is retried, and
	// the job no discovery finds runs once and is swept.
	var sendErr error
	var sent sync.WaitGroup
	sent.Go(func() { sendErr = f.sendShards(ctx, lj, 0) })
	regErr := f.register(ctx, regName, entry)
	sent.Wait()
	if regErr != nil {
		return nil, fmt.Errorf("dataset %s: plan a fanned-out scan: %w", d.Name, regErr)
	}
	if sendErr != nil {
		return nil, fmt.Errorf("dataset %s: %w", d.Name, sendErr)
	}
	return lj, nil
}

// sendShards sends the messages of the job's unfinished shards.
func (f *Fanout) sendShards(ctx context.Context, lj *loadedJob, resend int) error {
	var todo []int
	for s := range lj.tally.Shards {
		if _, done := lj.done[s]; !done {
			todo = append(todo, s)
		}
	}
	// sendsAtOnce at a time: a job of 64 shards was 64 round trips to
	// Service Bus one after another before its first shard could start.
	// The order does not matter, and a shard not sent is sent again by
	// resendIfStale (the message ids make a duplicate harmless).
	return forEachN(ctx, len(todo), sendsAtOnce, func(ctx context.Context, k int) error {
		s := todo[k]
		body, _ := json.Marshal(ShardMessage{Job: lj.id, Shard: s})
		if err := f.Send(ctx, fmt.Sprintf("scan:%s:%d:%d", lj.id, s, resend), body); err != nil {
			return fmt.Errorf("send shard %d of a scan: %w", s, err)
		}
		return nil
	})
}

// sendsAtOnce is how many shard messages sendShards sends at once.
const sendsAtOnce = 16

// updateTally changes the job's tally with change (false: nothing to
// change) in a conditional write, reading it again and retrying when
// another shard or discovery changed it meanwhile.
func (f *Fanout) updateTally(ctx context.Context, lj *loadedJob, change func(t *jobTally) bool) error {
	for change(&lj.tally) {
		etag, err := f.putJSON(ctx, tallyName(lj.id), lj.tally, &lj.tallyETag)
		if err == nil {
			lj.tallyETag = etag
			return nil
		}
		if !bloberror.HasCode(err, bloberror.ConditionNotMet) {
			return err
		}
		ok, err := f.loadTally(ctx, lj)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("a fanned-out scan's job is gone: %w", sources.ErrChanged)
		}
	}
	return nil
}

// resendIfStale sends a job's unfinished shards again when none has
// reported for Stale (a message dead-lettered, an instance lost); after
// maxResends the job is given up: an error for this discovery, whose next
// attempt plans a new job.
func (f *Fanout) resendIfStale(ctx context.Context, lj *loadedJob, now time.Time) error {
	// The last sign of life: the last send, or the newest shard result.
	last := func(t *jobTally) time.Time {
		at := t.SentAt
		for _, d := range lj.done {
			if d.After(at) {
				at = d
			}
		}
		return at
	}
	exhausted, resend := false, false
	err := f.updateTally(ctx, lj, func(t *jobTally) bool {
		exhausted, resend = false, false
		if t.Complete || len(lj.done) >= t.Shards || now.Sub(last(t)) < f.Stale {
			return false
		}
		if t.Resends >= maxResends {
			exhausted = true
			return false
		}
		t.Resends++
		t.SentAt = now
		resend = true
		return true
	})
	if err != nil {
		return err
	}
	if exhausted {
		return fmt.Errorf("a fanned-out scan made no progress after %d resends of its shards", maxResends)
	}
	if resend {
		return f.sendShards(ctx, lj, lj.tally.Resends)
	}
	return nil
}

// addWaiters adds requests to those told when the job completes.
func (f *Fanout) addWaiters(ctx context.Context, lj *loadedJob, ids []string) error {
	return f.updateTally(ctx, lj, func(t *jobTally) bool {
		if t.Complete {
			return false
		}
		added := false
		for _, id := range ids {
			if !slices.Contains(t.Waiters, id) {
				t.Waiters = append(t.Waiters, id)
				added = true
			}
		}
		return added
	})
}

// loadResult reads a complete job's result: each subject's scan result,
// or the DataError of a shard whose data cannot be read.
func (f *Fanout) loadResult(ctx context.Context, d *sources.Dataset, lj *loadedJob) ([]scanResult, error) {
	ok, err := f.loadJob(ctx, lj)
	if err != nil {
		return nil, err
	}
	var res shardResult
	found, _, err := f.getJSON(ctx, resultName(lj.id), &res)
	if err != nil {
		return nil, err
	}
	if !ok || !found || len(res.Blobs) != len(lj.job.Blobs) && res.Error == "" {
		return nil, fmt.Errorf("dataset %s: a fanned-out scan is complete without its result", d.Name)
	}
	if res.Error != "" {
		return nil, &sources.DataError{Dataset: d.Name, Reason: res.Error}
	}
	names := make([]string, len(lj.job.Blobs))
	blobs := make([]blobResult, len(lj.job.Blobs))
	for i, b := range lj.job.Blobs {
		names[i] = b.Name
		blobs[i] = res.Blobs[i].result()
	}
	return assemble(d, len(lj.job.Subjects), names, blobs), nil
}

// RunShard scans one shard of a job (the scan queue's message) and counts
// it done; the shard that completes the job assembles its result and tells
// Completed about the waiting requests. Running a shard again is
// harmless. An error is for the queue to deliver the message again: a
// blob that cannot be read for now. Data that cannot be read is the
// shard's result (the dataset's part fails, without retries).
func (c *Connector) RunShard(ctx context.Context, m ShardMessage) error {
	f := c.fanout
	if f == nil {
		return errors.New("scan: this connector does not fan out")
	}
	lj := &loadedJob{id: m.Job}
	// The tally says whether the shard is still wanted (the job swept or
	// complete, the shard not one of its shards: nothing waits for it).
	// It is read while the job is read and the shard scanned, which it
	// stops if not: a round trip less before every shard's scan.
	scanCtx, stop := context.WithCancel(ctx)
	defer stop()
	tallied := make(chan error, 1)
	wanted := false
	go func() {
		ok, err := f.loadTally(ctx, lj)
		wanted = err == nil && ok && !lj.tally.Complete && m.Shard < lj.tally.Shards
		if !wanted {
			stop()
		}
		tallied <- err
	}()
	// waitTally returns whether to go on, or the tally's error.
	waitTally := func() (bool, error) {
		if err := <-tallied; err != nil {
			return false, fmt.Errorf("scan: read the job's tally: %w", err)
		}
		return wanted, nil
	}
	// A job never changes once planned: an instance reads it once, even
	// when its first shards arrive together.
	job, jobErr := c.shardMatchers.loadJob(scanCtx, m.Job, func(ctx context.Context) (*scanJob, error) {
		tmp := &loadedJob{id: m.Job}
		ok, err := f.loadJob(ctx, tmp)
		if err == nil && !ok {
			err = errors.New("the job is gone")
		}
		return tmp.job, err
	})
	var res shardResult
	scanErr := jobErr
	if jobErr == nil && m.Shard < len(job.Shards) {
		res, scanErr = c.scanShard(scanCtx, m.Job, job, m.Shard)
	}
	if ok, err := waitTally(); !ok || err != nil {
		return err
	}
	if jobErr != nil {
		return fmt.Errorf("scan: read the job: %w", jobErr)
	}
	if scanErr != nil {
		return scanErr
	}
	lj.job = job
	// A redelivered shard scans again (rare) rather than every shard
	// listing first: its result is written only if absent. The first
	// result written counts; a redelivery's is the same.
	any := azcore.ETagAny
	own := m.Shard
	if _, err := f.putJSONIf(ctx, shardName(m.Job, m.Shard), res, &any, true); bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		own = -1 // the stored result counts, not this one
	} else if err != nil {
		return fmt.Errorf("scan: record shard: %w", err)
	}
	if err := f.listDone(ctx, lj); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if len(lj.done) < lj.tally.Shards {
		return nil
	}
	// Every shard is done: whichever shard sees it (several at once, or a
	// redelivery after a crash) completes the job; the one whose write
	// marks it complete wakes the waiting requests (if it dies first,
	// they look again at their next check).
	if lj.tally.Complete {
		return nil
	}
	// Shards of a job that finish together here all see it done: one
	// completes it, the others leave it to that one (which, if it fails
	// or its instance dies, is redelivered and completes it then) rather
	// than each reading every result again.
	if !c.shardMatchers.beginComplete(m.Job) {
		return nil
	}
	defer c.shardMatchers.endComplete(m.Job)
	marked, err := f.complete(ctx, lj, own, res)
	if err != nil {
		return err
	}
	if marked && f.Completed != nil && len(lj.tally.Waiters) > 0 {
		f.Completed(ctx, lj.tally.Waiters)
	}
	return nil
}

// scanShard scans the pieces of one shard for the job's subjects.
func (c *Connector) scanShard(ctx context.Context, jobID string, job *scanJob, shard int) (shardResult, error) {
	d := c.cfg.Dataset(job.Dataset)
	if d == nil {
		return shardResult{Error: "the dataset is no longer configured"}, nil
	}
	// The matcher (tens of milliseconds for a thousand subjects, once per
	// job here) is built while the pieces' downloads are opened, so the
	// first byte's latency is not added to it.
	matcher := func() *datasetMatcher {
		return c.shardMatchers.get(jobID, func() *datasetMatcher {
			states := make([]*subjectState, len(job.Subjects))
			for i, s := range job.Subjects {
				keys := s.Keys
				if keys == nil {
					keys = keySet{}
				}
				states[i] = &subjectState{subj: s.Subject, keys: keys}
			}
			return newDatasetMatcher(c.cfg, d, states)
		})
	}
	go matcher()
	refs := c.cfg.ReferencedFields(d.Name)
	pieces := job.Shards[shard]
	res := shardResult{Blobs: make([]savedBlob, len(pieces))}
	err := c.forEachBlob(ctx, len(pieces), func(ctx context.Context, i int) error {
		p := pieces[i]
		b := job.Blobs[p.Blob]
		if p.Start == 0 && p.End == b.Size {
			r, err := c.scanBlobWith(ctx, d, b.Name, matcher, refs)
			res.Blobs[i] = saveBlob(r)
			return err
		}
		r, n, err := c.scanRange(ctx, d, b, p.Start, p.End, matcher, refs)
		res.Blobs[i] = saveBlob(r)
		res.Blobs[i].Records = n
		return err
	})
	var bad *sources.DataError
	if errors.As(err, &bad) {
		return shardResult{Error: bad.Reason}, nil
	}
	if err != nil {
		return shardResult{}, fmt.Errorf("scan: %w", err)
	}
	return res, nil
}

// completeReads is how many shard results complete reads at once.
const completeReads = 16

// complete assembles the job's result from its shards' (shard own's is
// ownResult, written by this call, so not read again; own is -1 if none
// was) and marks it complete; marked says whether this call's write did.
func (f *Fanout) complete(ctx context.Context, lj *loadedJob, own int, ownResult shardResult) (marked bool, err error) {
	// One entry per blob: a split blob's parts joined, their records
	// numbered on from the parts before.
	//
	// The shards' results are read completeReads at a time: this is the
	// tail of every fanned-out discovery (read one after another, 16
	// results took as long as a shard's scan).
	results := make([]shardResult, len(lj.job.Shards))
	if own >= 0 {
		results[own] = ownResult
	}
	err = forEachN(ctx, len(results), completeReads, func(ctx context.Context, s int) error {
		if s == own {
			return nil
		}
		ok, _, err := f.getJSON(ctx, shardName(lj.id, s), &results[s])
		if err != nil {
			return fmt.Errorf("scan: read shard %d: %w", s, err)
		}
		if !ok || results[s].Error == "" && len(results[s].Blobs) != len(lj.job.Shards[s]) {
			return fmt.Errorf("scan: shard %d is counted but has no result", s)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	res := shardResult{Blobs: make([]savedBlob, len(lj.job.Blobs))}
	before := make([]int64, len(lj.job.Blobs))
	for s, pieces := range lj.job.Shards {
		sr := results[s]
		if sr.Error != "" {
			res = shardResult{Error: sr.Error}
			break
		}
		for i, p := range pieces {
			part, whole := sr.Blobs[i], &res.Blobs[p.Blob]
			if whole.ETag != "" && whole.ETag != part.ETag {
				return false, fmt.Errorf("scan: the parts of a blob were read from different versions: %w", sources.ErrChanged)
			}
			whole.ETag = part.ETag
			for _, h := range part.Hits {
				h.Ordinal += before[p.Blob]
				whole.Hits = append(whole.Hits, h)
			}
			whole.Keys = append(whole.Keys, part.Keys...)
			before[p.Blob] += part.Records
		}
	}
	any := azcore.ETagAny
	if _, err := f.putJSONIf(ctx, resultName(lj.id), res, &any, true); err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists) {
		return false, fmt.Errorf("scan: record the result: %w", err)
	}
	err = f.updateTally(ctx, lj, func(t *jobTally) bool {
		marked = !t.Complete
		t.Complete = true
		return marked
	})
	return marked, err
}

// getJSON reads a blob as JSON into v; false if it does not exist.
func (f *Fanout) getJSON(ctx context.Context, name string, v any) (bool, azcore.ETag, error) {
	resp, err := f.Container.NewBlobClient(name).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", strings.TrimPrefix(name, ScanPrefix), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, "", fmt.Errorf("read %s: %w", strings.TrimPrefix(name, ScanPrefix), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, "", fmt.Errorf("read %s: %w", strings.TrimPrefix(name, ScanPrefix), err)
	}
	var etag azcore.ETag
	if resp.ETag != nil {
		etag = *resp.ETag
	}
	return true, etag, nil
}

// putJSON writes v as a blob; with ifMatch, only over that version.
func (f *Fanout) putJSON(ctx context.Context, name string, v any, ifMatch *azcore.ETag) (azcore.ETag, error) {
	return f.putJSONIf(ctx, name, v, ifMatch, false)
}

// putJSONIf is putJSON; with absent, cond is If-None-Match (only if the
// blob does not exist), else If-Match.
func (f *Fanout) putJSONIf(ctx context.Context, name string, v any, cond *azcore.ETag, absent bool) (azcore.ETag, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	opts := &blockblob.UploadBufferOptions{HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")}}
	switch {
	case cond != nil && absent:
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: cond}}
	case cond != nil:
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: cond}}
	}
	resp, err := f.Container.NewBlockBlobClient(name).UploadBuffer(ctx, b, opts)
	if err != nil {
		return "", err
	}
	if resp.ETag == nil {
		return "", errors.New("upload without an ETag")
	}
	return *resp.ETag, nil
}

// SweepScans deletes the fan-out's blobs (jobs, shard results, results,
// registries) last written more than olderThan ago: a day after a scan no
// discovery takes it (Stale and the resends end a job long before), and
// they hold subjects and what was found. Without fan-out it does nothing.
func (c *Connector) SweepScans(ctx context.Context, olderThan time.Duration) (int, error) {
	f := c.fanout
	if f == nil {
		return 0, nil
	}
	cutoff := f.Now().Add(-olderThan)
	n := 0
	pager := f.Container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(ScanPrefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return n, fmt.Errorf("sweep scans: %w", err)
		}
		for _, it := range page.Segment.BlobItems {
			if it.Properties == nil || it.Properties.LastModified == nil || !it.Properties.LastModified.Before(cutoff) {
				continue
			}
			_, err := f.Container.NewBlobClient(*it.Name).Delete(ctx, nil)
			if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
				return n, fmt.Errorf("sweep scans: %w", err)
			}
			n++
		}
	}
	return n, nil
}

// matcherCache keeps the jobs and matchers of the last few jobs an
// instance ran shards of: building a matcher for a thousand subjects
// costs more than scanning a shard, and an instance often runs several
// shards of a job.
type matcherCache struct {
	mu      sync.Mutex
	entries []*cachedMatcher
}

type cachedMatcher struct {
	job  string
	once sync.Once
	m    *datasetMatcher
	// scan is the job itself, once read; loading is closed when a read
	// under way ends.
	scan    *scanJob
	loading chan struct{}
	// completing is set while a shard here completes the job.
	completing bool
}

// entry returns the job's entry, adding it (and dropping the oldest) if
// it is not there; under mc.mu.
func (mc *matcherCache) entry(job string) *cachedMatcher {
	for _, x := range mc.entries {
		if x.job == job {
			return x
		}
	}
	e := &cachedMatcher{job: job}
	mc.entries = append(mc.entries, e)
	if len(mc.entries) > matcherCacheSize {
		mc.entries = mc.entries[1:]
	}
	return e
}

// loadJob returns the job, calling read for it only if no shard here has
// read it yet and none is reading it: the first shards of a job arrive at
// an instance together, and a job of a thousand subjects took each of
// them tens of milliseconds to read and decode. A failed read is not
// kept: the shards waiting for it read it themselves.
func (mc *matcherCache) loadJob(ctx context.Context, job string, read func(context.Context) (*scanJob, error)) (*scanJob, error) {
	for {
		mc.mu.Lock()
		e := mc.entry(job)
		if e.scan != nil {
			mc.mu.Unlock()
			return e.scan, nil
		}
		if wait := e.loading; wait != nil {
			mc.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		e.loading = done
		mc.mu.Unlock()
		j, err := read(ctx)
		mc.mu.Lock()
		if err == nil {
			e.scan = j
		}
		e.loading = nil
		close(done)
		mc.mu.Unlock()
		return j, err
	}
}

// beginComplete reports whether the caller is to complete the job: false
// while another shard here is completing it. endComplete ends that.
func (mc *matcherCache) beginComplete(job string) bool {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	e := mc.entry(job)
	if e.completing {
		return false
	}
	e.completing = true
	return true
}

func (mc *matcherCache) endComplete(job string) {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.entry(job).completing = false
}

// matcherCacheSize is how many jobs' matchers an instance keeps.
const matcherCacheSize = 4

// get returns the job's matcher, building it once.
func (mc *matcherCache) get(job string, build func() *datasetMatcher) *datasetMatcher {
	mc.mu.Lock()
	e := mc.entry(job)
	mc.mu.Unlock()
	e.once.Do(func() { e.m = build() })
	return e.m
}

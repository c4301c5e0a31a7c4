package blobdataset

// Delta Lake tables (format "delta"): discovery, export and copy-on-write
// changes. The dataset's prefix is the table root; delta_log.go reads the
// log into the live data files.
//
// Discovery scans each live Parquet file as a Parquet dataset's blob is
// scanned (the footer and the needed columns, ranged reads pinned to the
// file's ETag), with the file's partition values (add.partitionValues) as
// fields of every row. A Location names one data file (Blob, its full blob
// name; ETag, the file's) and the matched rows by ordinal in that file.
// Read loads the log again and reads only files that are still live.
//
// Erasure, rectification and restriction rewrite one data file per
// Location, copy-on-write: the rows are rewritten as for a Parquet blob
// (deleted rows dropped, replaced fields encoded, every other value copied
// as it was) into a new file under a new name beside the old one, and a
// new log version is committed that removes the old file and adds the new
// one (none if every row was deleted). The commit is created only if
// absent (If-None-Match: *); when another writer took that version the log
// is read again and the commit retried at the next version, as long as the
// old file is still live and the table's metadata did not change (else
// sources.ErrChanged: the caller discovers again). Log entries are never
// overwritten. commitInfo names the CommitPlan (dsrPlan), where Committed
// finds it.
//
// The old file is only removed from the table, not deleted: it stays
// readable (time travel, anyone reading the files) until the table is
// VACUUMed after its retention period. sources.Dataset.ChangeNote says so
// in the reports.
//
// A rewrite result's ETag is "<etag>@<blob>" of the new file ("" when the
// whole file was deleted); Read follows a Location whose ETag has that form
// to the new file, so rectified rows can be read back.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/sources"
)

// deltaCommitRetries is how often a rewrite commits again at a later
// version after another writer took the one it tried.
const deltaCommitRetries = 8

// deltaCommitsScanned bounds how many of the newest JSON commits Committed
// reads looking for a plan.
const deltaCommitsScanned = 1000

// deltaPlanKey is the commitInfo field naming the CommitPlan of a commit.
const deltaPlanKey = "dsrPlan"

// deltaHook, when set (tests), runs at stage "data-written" (the new data
// file is committed, the log entry not yet) and "log-committed"; an error
// stops the rewrite there, as a crash would.
var deltaHook func(stage string) error

// deltaTarget is the data file a Location names and the ETag it is pinned
// to: a rewrite result's "<etag>@<blob>" names the file that replaced it.
func deltaTarget(loc sources.Location) (string, string) {
	if etag, name, ok := strings.Cut(loc.ETag, "@"); ok && name != "" {
		return name, etag
	}
	return loc.Blob, loc.ETag
}

// withPartition is fields with the partition fields they lack appended.
func withPartition(fields []sources.Field, part []sources.Field) []sources.Field {
	out := slices.Clone(fields)
	for _, p := range part {
		if !slices.ContainsFunc(fields, func(f sources.Field) bool { return f.Name == p.Name }) {
			out = append(out, p)
		}
	}
	return out
}

// scanDelta is scan for a Delta table: the live files of its latest
// version, in blob name order, up to c.parallelism at a time.
func (c *Connector) scanDelta(ctx context.Context, d *sources.Dataset, m *datasetMatcher, refs []string, n int) ([]scanResult, error) {
	ps, ok := c.store.(parquetStore)
	if !ok {
		return nil, fmt.Errorf("dataset %s: this store cannot read Parquet blobs", d.Name)
	}
	snap, err := c.loadDelta(ctx, d)
	if err != nil {
		return nil, err
	}
	names := snap.blobs()
	blobs := make([]blobResult, len(names))
	err = c.forEachBlob(ctx, len(names), func(ctx context.Context, i int) error {
		var err error
		blobs[i], err = c.scanParquetOnce(ctx, ps, d, names[i], m, refs, neededPartition(snap.partitionFields(snap.files[names[i]]), d, refs))
		return err
	})
	if err != nil {
		return nil, err
	}
	return assemble(d, n, names, blobs), nil
}

// neededPartition keeps the partition fields that discovery's rules read
// (as neededFields does for columns).
func neededPartition(part []sources.Field, d *sources.Dataset, refs []string) []sources.Field {
	var paths []string
	for _, id := range d.Identifiers {
		paths = append(paths, id.Field)
	}
	paths = append(paths, d.FreeText...)
	for _, r := range d.Relations {
		paths = append(paths, r.Field)
	}
	paths = append(paths, refs...)
	var out []sources.Field
	for _, f := range part {
		if slices.ContainsFunc(paths, func(p string) bool {
			return p == f.Name || strings.HasPrefix(p, f.Name+".") || strings.HasPrefix(p, f.Name+"[")
		}) {
			out = append(out, f)
		}
	}
	return out
}

// readDelta is Read for a Delta table: each Location's file must still be
// live in the table's latest version (else sources.ErrChanged); its rows
// are read as a Parquet blob's, with the file's partition values appended.
func (c *Connector) readDelta(ctx context.Context, d *sources.Dataset, dm sources.DatasetMatches, emit func(sources.Record) error) error {
	if len(dm.Locations) == 0 {
		return nil
	}
	snap, err := c.loadDelta(ctx, d)
	if err != nil {
		return err
	}
	for _, loc := range dm.Locations {
		name, etag := deltaTarget(loc)
		a := snap.files[name]
		if a == nil {
			return fmt.Errorf("dataset %s: blob %s: %w (no longer a live file of the table)", d.Name, name, sources.ErrChanged)
		}
		part := snap.partitionFields(a)
		at := loc
		at.Blob, at.ETag = name, etag
		err := c.readParquet(ctx, d, at, func(rec sources.Record) error {
			rec.Fields = withPartition(rec.Fields, part)
			return emit(rec)
		})
		if err != nil {
			return fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
		}
	}
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// rewriteDelta is RewritePlanned for a Delta table (see the top of this
// file).
func (c *Connector) rewriteDelta(ctx context.Context, d *sources.Dataset, loc sources.Location, edit Edit, plan sources.CommitPlan) (RewriteResult, error) {
	target, etag := deltaTarget(loc)
	fail := func(err error) (RewriteResult, error) {
		var de *sources.DataError
		if errors.As(err, &de) {
			return RewriteResult{}, err
		}
		if isChanged(err) && !errors.Is(err, sources.ErrChanged) {
			code := "not found"
			var re *azcore.ResponseError
			if errors.As(err, &re) && re.ErrorCode != "" {
				code = re.ErrorCode
			}
			err = fmt.Errorf("%w (%s)", sources.ErrChanged, code)
		}
		return RewriteResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, target, err)
	}
	snap, err := c.loadDelta(ctx, d)
	if err != nil {
		return fail(err)
	}
	if err := deltaWritable(snap); err != nil {
		return fail(deltaErr(d, "%v", err))
	}
	old := snap.files[target]
	if old == nil {
		return fail(fmt.Errorf("%w (no longer a live file of the table)", sources.ErrChanged))
	}
	cc := c.svc.NewContainerClient(d.Container)
	e := azcore.ETag(etag)
	props, err := cc.NewBlobClient(target).GetProperties(ctx, &blob.GetPropertiesOptions{
		AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &e}}})
	if err != nil {
		return fail(fmt.Errorf("read blob properties: %w", err))
	}
	if len(loc.Ordinals) == 0 {
		return RewriteResult{ETag: loc.ETag}, nil
	}
	if props.ContentLength == nil {
		return fail(errors.New("read blob properties: no size"))
	}
	ra := &blobReaderAt{ctx: ctx, r: azureStore{c.svc}, cont: d.Container, name: target, etag: etag, size: *props.ContentLength}
	f, err := openParquet(ra)
	if err != nil {
		if ferr := ra.failure(); ferr != nil {
			return fail(readErr(ferr))
		}
		return fail(&sources.DataError{Dataset: d.Name, Reason: "blob " + target + ": " + err.Error()})
	}
	total := f.NumRows()

	// The new file: beside the old one (same partition folder), under a
	// name never used before.
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fail(err)
	}
	base := "part-dsr-" + hex.EncodeToString(rnd[:]) + ".parquet"
	newBlob := path.Join(path.Dir(target), base)
	newPath := base
	if i := strings.LastIndex(old.Path, "/"); i >= 0 {
		newPath = old.Path[:i+1] + base
	}
	bb := cc.NewBlockBlobClient(newBlob)
	st, err := newStager(ctx, bb)
	if err != nil {
		return fail(err)
	}
	part := snap.partitionFields(old)
	edited := func(o int64, rec sources.Record) (*sources.Record, error) {
		rec.Fields = withPartition(rec.Fields, part)
		repl, err := edit(o, rec)
		if err != nil || repl == nil {
			return repl, err
		}
		out := &sources.Record{}
		for _, fl := range repl.Fields {
			i := slices.IndexFunc(part, func(p sources.Field) bool { return p.Name == fl.Name })
			if i < 0 {
				out.Fields = append(out.Fields, fl)
				continue
			}
			if !reflect.DeepEqual(fl.Value, part[i].Value) && fmt.Sprint(fl.Value) != fmt.Sprint(part[i].Value) {
				return nil, fmt.Errorf("partition column %q cannot be changed (the row would move to another partition)", fl.Name)
			}
		}
		return out, nil
	}
	cw := &countWriter{w: st}
	deleted, replaced, rerr := rewriteParquet(ctx, ra, cw, loc.Ordinals, edited)
	if rerr != nil && !errors.Is(rerr, errMissing) {
		if ferr := ra.failure(); ferr != nil {
			rerr = readErr(ferr)
		}
	}
	if errors.Is(rerr, errMissing) {
		return fail(fmt.Errorf("%w (records missing)", sources.ErrChanged))
	}
	if rerr != nil {
		return fail(rerr)
	}
	if err := st.flush(); err != nil {
		return fail(err)
	}
	if plan.BeforeCommit != nil {
		if err := plan.BeforeCommit(RewriteResult{Deleted: deleted, Replaced: replaced}); err != nil {
			return fail(fmt.Errorf("before commit: %w", err))
		}
	}
	var add *deltaAdd
	newETag := ""
	if rows := total - int64(deleted); rows > 0 {
		ctype := props.ContentType
		if ctype == nil {
			ctype = to.Ptr("application/octet-stream")
		}
		cr, err := bb.CommitBlockList(ctx, st.ids, &blockblob.CommitBlockListOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: ctype, BlobContentMD5: st.sum.Sum(nil)},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
		})
		if err != nil {
			return fail(fmt.Errorf("write the new data file: %w", err))
		}
		if cr.ETag == nil {
			return fail(errors.New("write the new data file: no ETag in the response"))
		}
		newETag = string(*cr.ETag)
		mod := time.Now()
		if cr.LastModified != nil {
			mod = *cr.LastModified
		}
		stats, _ := json.Marshal(map[string]int64{"numRecords": rows})
		add = &deltaAdd{Path: newPath, PartitionValues: old.PartitionValues, Size: cw.n, ModificationTime: mod.UnixMilli(),
			DataChange: true, Stats: string(stats)}
		if add.PartitionValues == nil {
			add.PartitionValues = map[string]*string{}
		}
	}
	if deltaHook != nil {
		if err := deltaHook("data-written"); err != nil {
			return fail(err)
		}
	}
	if _, err := c.commitDelta(ctx, d, snap, target, old, add, plan.ID, deleted, replaced); err != nil {
		return fail(err)
	}
	if deltaHook != nil {
		if err := deltaHook("log-committed"); err != nil {
			return fail(err)
		}
	}
	res := RewriteResult{Deleted: deleted, Replaced: replaced}
	if add != nil {
		res.ETag = newETag + "@" + newBlob
	}
	return res, nil
}

// commitDelta commits the log entry that removes old (blob target) and
// adds add (nil: nothing) at the version after snap's, or, when another
// writer took that version, at the next free one, re-reading the log and
// checking that old is still live and the table's metadata unchanged. It
// returns the version committed.
func (c *Connector) commitDelta(ctx context.Context, d *sources.Dataset, snap *deltaSnapshot, target string, old, add *deltaAdd, planID string, deleted, replaced int) (int64, error) {
	cc := c.svc.NewContainerClient(d.Container)
	for attempt := 0; ; attempt++ {
		version := snap.version + 1
		body, err := deltaCommitBody(time.Now(), snap.version, planID, old, add, deleted, replaced)
		if err != nil {
			return 0, err
		}
		name := deltaLogDir(d) + fmt.Sprintf("%020d.json", version)
		_, err = cc.NewBlockBlobClient(name).UploadBuffer(ctx, body, &blockblob.UploadBufferOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json")},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
		})
		if err == nil {
			return version, nil
		}
		if !lostRace(err) {
			return 0, fmt.Errorf("commit delta log version %d: %w", version, err)
		}
		if attempt == deltaCommitRetries {
			return 0, fmt.Errorf("%w (lost the race for the next delta log version %d times)", sources.ErrChanged, attempt+1)
		}
		fresh, err := c.loadDelta(ctx, d)
		if err != nil {
			return 0, err
		}
		if fresh.version < version {
			return 0, fmt.Errorf("commit delta log version %d: it exists but the log does not list it yet", version)
		}
		if err := deltaWritable(fresh); err != nil {
			return 0, deltaErr(d, "%v", err)
		}
		if fresh.files[target] == nil {
			return 0, fmt.Errorf("%w (another writer removed the file)", sources.ErrChanged)
		}
		if fresh.meta.ID != snap.meta.ID || fresh.meta.SchemaString != snap.meta.SchemaString ||
			!slices.Equal(fresh.meta.PartitionColumns, snap.meta.PartitionColumns) {
			return 0, fmt.Errorf("%w (another writer changed the table's metadata)", sources.ErrChanged)
		}
		snap = fresh
	}
}

// lostRace reports a create-if-absent that failed because the blob exists
// (409 BlobAlreadyExists on Azure and Azurite; 412 on some accounts).
func lostRace(err error) bool {
	if bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return true
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusConflict || re.StatusCode == http.StatusPreconditionFailed)
}

// deltaCommitBody is the log entry of a rewrite: commitInfo (first), the
// remove of the old file, the add of the new one.
func deltaCommitBody(now time.Time, readVersion int64, planID string, old, add *deltaAdd, deleted, replaced int) ([]byte, error) {
	op := "UPDATE"
	if replaced == 0 {
		op = "DELETE"
	}
	added := 0
	if add != nil {
		added = 1
	}
	info := map[string]any{
		"timestamp":           now.UnixMilli(),
		"operation":           op,
		"operationParameters": map[string]string{"predicate": `["data subject request: rows found by DSR Functions"]`},
		"readVersion":         readVersion,
		"isolationLevel":      "Serializable",
		"isBlindAppend":       false,
		"engineInfo":          "dsr-functions",
		"operationMetrics": map[string]string{"numRemovedFiles": "1", "numAddedFiles": strconv.Itoa(added),
			"numDeletedRows": strconv.Itoa(deleted), "numUpdatedRows": strconv.Itoa(replaced)},
	}
	if planID != "" {
		info[deltaPlanKey] = planID
	}
	lines := []deltaAction{
		{CommitInfo: info},
		{Remove: &deltaRemove{Path: old.Path, DeletionTimestamp: now.UnixMilli(), DataChange: true, ExtendedFileMetadata: true,
			PartitionValues: old.PartitionValues, Size: old.Size, Stats: old.Stats}},
	}
	if lines[1].Remove.PartitionValues == nil {
		lines[1].Remove.PartitionValues = map[string]*string{}
	}
	if add != nil {
		lines = append(lines, deltaAction{Add: add})
	}
	var out []byte
	for _, a := range lines {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		out = append(append(out, b...), '\n')
	}
	return out, nil
}

// committedDelta is Committed for a Delta table: whether one of the newest
// JSON commits carries planID in its commitInfo, and then the "<etag>@<blob>"
// of the file it added ("" if none); otherwise blobName's current ETag.
func (c *Connector) committedDelta(ctx context.Context, d *sources.Dataset, blobName, planID string) (bool, string, error) {
	if planID != "" {
		names, err := c.store.list(ctx, d.Container, deltaLogDir(d))
		if err != nil {
			return false, "", fmt.Errorf("dataset %s: list the delta log: %w", d.Name, err)
		}
		type commit struct {
			v    int64
			name string
		}
		var commits []commit
		for _, full := range names {
			if m := deltaCommitRe.FindStringSubmatch(strings.TrimPrefix(full, deltaLogDir(d))); m != nil {
				v, _ := strconv.ParseInt(m[1], 10, 64)
				commits = append(commits, commit{v, full})
			}
		}
		sort.Slice(commits, func(i, j int) bool { return commits[i].v > commits[j].v })
		for _, cm := range commits[:min(len(commits), deltaCommitsScanned)] {
			found := false
			var added *deltaAdd
			scratch := &deltaSnapshot{files: map[string]*deltaAdd{}}
			err := c.readCommit(ctx, d, cm.name, cm.v, scratch, func(a *deltaAction) {
				if p, ok := a.CommitInfo[deltaPlanKey].(string); ok && p == planID {
					found = true
				}
				if a.Add != nil {
					added = a.Add
				}
			})
			if err != nil {
				return false, "", err
			}
			if !found {
				continue
			}
			if added == nil {
				return true, "", nil
			}
			nb, err := deltaBlob(d, added.Path)
			if err != nil {
				return true, "", nil
			}
			etag, _, err := azureStore{c.svc}.stat(ctx, d.Container, nb)
			if errors.Is(err, errBlobNotFound) {
				return true, "", nil
			}
			if err != nil {
				return false, "", fmt.Errorf("dataset %s: blob %s: %w", d.Name, nb, err)
			}
			return true, etag + "@" + nb, nil
		}
	}
	etag, _, err := azureStore{c.svc}.stat(ctx, d.Container, blobName)
	if errors.Is(err, errBlobNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("dataset %s: blob %s: %w", d.Name, blobName, err)
	}
	return false, etag, nil
}

package blobdataset

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Edit decides what happens to one discovered record: return (nil, nil) to
// delete it, (&rec, nil) to replace it (fields in order; for CSV, values are
// written in header order and the header is unchanged — a field not in the
// header is an error, a column the replacement lacks is left empty), or an
// error to abort without changing anything.
type Edit = sources.Edit

// RewriteResult is what a Rewrite committed.
type RewriteResult = sources.RewriteResult

// rewriteBlockSize is the size of the blocks Rewrite stages; it bounds the
// memory a rewrite needs. A variable so that tests can stage many blocks.
var rewriteBlockSize = 4 << 20

// errMissing reports ordinals past the end of the blob.
var errMissing = errors.New("records missing")

// Rewrite applies edit to the records at loc.Ordinals of one blob of dataset
// d and commits the new content only if the blob still has loc.ETag (else
// sources.ErrChanged, nothing written). Records not at those ordinals are
// copied byte for byte (NDJSON lines with their line endings; CSV rows
// including quoting and CRLF; JSON-array elements' raw bytes, and the
// separators and whitespace between elements). Returns the new ETag and
// how many records were deleted and replaced.
//
// The blob is streamed: it is read conditionally on loc.ETag and the new
// content is staged as uncommitted blocks, then committed with one Put Block
// List conditional on loc.ETag. Staged blocks never change the blob, so a
// failure or crash before the commit leaves the old content and the commit
// replaces it whole. The blob's content headers (Content-Type and the other
// HTTP headers) and metadata are kept; Content-MD5 is set for the new
// content.
func (c *Connector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit Edit) (RewriteResult, error) {
	return c.RewritePlanned(ctx, dataset, loc, edit, sources.CommitPlan{})
}

// commitsKey is the blob metadata entry naming the last rewrites
// (CommitPlan ids, comma-separated, newest last) that committed the blob.
const commitsKey = "dsrcommits"

// maxCommits bounds how many plan ids a blob's metadata keeps: enough for
// the erasures of one blob that commit while a crashed one waits for its
// retry, far below the 8 KiB metadata limit.
const maxCommits = 32

// RewritePlanned is Rewrite with a CommitPlan: plan.BeforeCommit runs once
// the new content is staged (so the caller records what the commit will
// change before it happens), and the commit names plan.ID in the blob's
// metadata (commitsKey), where Committed finds it.
func (c *Connector) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit Edit, plan sources.CommitPlan) (RewriteResult, error) {
	d := c.cfg.Dataset(dataset)
	if d == nil {
		return RewriteResult{}, fmt.Errorf("dataset %s: %w (no longer configured)", dataset, sources.ErrChanged)
	}
	if err := checkRewrite(d, loc, edit); err != nil {
		return RewriteResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, loc.Blob, err)
	}
	if d.Format == sources.FormatDelta {
		return c.rewriteDelta(ctx, d, loc, edit, plan)
	}
	res, err := c.rewrite(ctx, d, loc, edit, plan)
	if res.ETag != loc.ETag {
		// The version the kept records belong to may be gone (committed,
		// or the commit's outcome unknown): a Read goes to the blob.
		c.recent.forget(d.Container, loc.Blob)
	}
	if err == nil && res.ETag != loc.ETag && c.indexed(d) {
		c.refreshIndex(ctx, d, loc.Blob)
	}
	if err != nil {
		if isChanged(err) && !errors.Is(err, sources.ErrChanged) {
			// The storage error's text is long; its code says enough.
			code := "not found"
			var re *azcore.ResponseError
			if errors.As(err, &re) && re.ErrorCode != "" {
				code = re.ErrorCode
			}
			err = fmt.Errorf("%w (%s)", sources.ErrChanged, code)
		}
		return RewriteResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, loc.Blob, err)
	}
	return res, nil
}

// checkRewrite refuses a rewrite that could never be right.
func checkRewrite(d *sources.Dataset, loc sources.Location, edit Edit) error {
	if edit == nil {
		return errors.New("rewrite: no edit")
	}
	if d.SystemLog {
		return errors.New("rewrite: a system log is never erased or rectified")
	}
	if d.Format == sources.FormatSynapse {
		return errSynapseReadOnly(d)
	}
	if loc.ETag == "" {
		// An unconditional rewrite could edit records other than those found.
		return errors.New("rewrite: the location has no ETag")
	}
	if (d.Blob != "" && loc.Blob != d.Blob) || (d.Blob == "" && !strings.HasPrefix(loc.Blob, d.Prefix)) || loc.Blob == "" {
		return fmt.Errorf("%w (the blob is not part of the dataset)", sources.ErrChanged)
	}
	for i, o := range loc.Ordinals {
		if o < 0 || (i > 0 && o <= loc.Ordinals[i-1]) {
			return errors.New("rewrite: ordinals must be non-negative and strictly increasing")
		}
	}
	return nil
}

func (c *Connector) rewrite(ctx context.Context, d *sources.Dataset, loc sources.Location, edit Edit, plan sources.CommitPlan) (RewriteResult, error) {
	bb := c.svc.NewContainerClient(d.Container).NewBlockBlobClient(loc.Blob)
	etag := azcore.ETag(loc.ETag)
	cond := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}}
	if len(loc.Ordinals) == 0 {
		// Nothing to edit: only confirm the version.
		if _, err := bb.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: cond}); err != nil {
			return RewriteResult{}, fmt.Errorf("read blob properties: %w", err)
		}
		return RewriteResult{ETag: loc.ETag}, nil
	}
	st, err := newStager(ctx, bb)
	if err != nil {
		return RewriteResult{}, err
	}
	var (
		kept              blobHeaders
		deleted, replaced int
		rerr              error // the rewrite's, set in both branches
	)
	if d.Format == sources.FormatParquet {
		props, err := bb.GetProperties(ctx, &blob.GetPropertiesOptions{AccessConditions: cond})
		if err != nil {
			return RewriteResult{}, fmt.Errorf("read blob properties: %w", err)
		}
		if props.ContentLength == nil {
			return RewriteResult{}, errors.New("read blob properties: no size")
		}
		kept = blobHeaders{props.ContentType, props.ContentEncoding, props.ContentLanguage, props.ContentDisposition, props.CacheControl, props.Metadata}
		// Every ranged read is conditional on the ETag too.
		ra := &blobReaderAt{ctx: ctx, r: azureStore{c.svc}, cont: d.Container, name: loc.Blob, etag: loc.ETag, size: *props.ContentLength}
		deleted, replaced, rerr = rewriteParquet(ctx, ra, st, loc.Ordinals, edit)
		if rerr != nil && !errors.Is(rerr, errMissing) {
			if ferr := ra.failure(); ferr != nil {
				rerr = ferr
			}
		}
	} else {
		resp, err := bb.DownloadStream(ctx, &blob.DownloadStreamOptions{AccessConditions: cond})
		if err != nil {
			return RewriteResult{}, fmt.Errorf("read blob: %w", err)
		}
		kept = blobHeaders{resp.ContentType, resp.ContentEncoding, resp.ContentLanguage, resp.ContentDisposition, resp.CacheControl, resp.Metadata}
		// Retries read the rest of the same version (they are conditional on
		// its ETag too).
		body := resp.NewRetryReader(ctx, &blob.RetryReaderOptions{MaxRetries: 3})
		defer body.Close()
		deleted, replaced, rerr = rewriteStream(ctx, body, st, d.Format, loc.Ordinals, edit)
	}
	if errors.Is(rerr, errMissing) {
		return RewriteResult{}, fmt.Errorf("%w (records missing)", sources.ErrChanged)
	}
	if rerr != nil {
		return RewriteResult{}, rerr
	}
	if err := st.flush(); err != nil {
		return RewriteResult{}, err
	}
	meta := kept.metadata
	if plan.ID != "" {
		meta = withCommit(kept.metadata, plan.ID)
	}
	if plan.BeforeCommit != nil {
		if err := plan.BeforeCommit(RewriteResult{Deleted: deleted, Replaced: replaced}); err != nil {
			return RewriteResult{}, fmt.Errorf("before commit: %w", err)
		}
	}
	cr, err := bb.CommitBlockList(ctx, st.ids, &blockblob.CommitBlockListOptions{
		HTTPHeaders: &blob.HTTPHeaders{
			BlobContentType:        kept.contentType,
			BlobContentEncoding:    kept.contentEncoding,
			BlobContentLanguage:    kept.contentLanguage,
			BlobContentDisposition: kept.contentDisposition,
			BlobCacheControl:       kept.cacheControl,
			BlobContentMD5:         st.sum.Sum(nil),
		},
		Metadata:         meta,
		AccessConditions: cond,
	})
	if bloberror.HasCode(err, bloberror.InvalidBlockList) {
		// Our staged blocks are gone: another writer committed the blob,
		// which discards uncommitted blocks.
		return RewriteResult{}, fmt.Errorf("%w (staged blocks discarded by another write)", sources.ErrChanged)
	}
	if err != nil {
		return RewriteResult{}, fmt.Errorf("commit: %w", err)
	}
	if cr.ETag == nil {
		return RewriteResult{}, errors.New("commit: no ETag in the response")
	}
	return RewriteResult{ETag: string(*cr.ETag), Deleted: deleted, Replaced: replaced}, nil
}

// blobHeaders are the content headers and metadata of the blob a rewrite
// read, which its commit keeps.
type blobHeaders struct {
	contentType, contentEncoding, contentLanguage, contentDisposition, cacheControl *string
	metadata                                                                        map[string]*string
}

// withCommit is metadata m (copied) with planID added to its commitsKey,
// keeping the newest maxCommits ids.
func withCommit(m map[string]*string, planID string) map[string]*string {
	out := make(map[string]*string, len(m)+1)
	var ids []string
	for k, v := range m {
		if strings.EqualFold(k, commitsKey) {
			if v != nil && *v != "" {
				ids = strings.Split(*v, ",")
			}
			continue
		}
		out[k] = v
	}
	ids = append(ids, planID)
	if len(ids) > maxCommits {
		ids = ids[len(ids)-maxCommits:]
	}
	joined := strings.Join(ids, ",")
	out[commitsKey] = &joined
	return out
}

// Committed reports whether the rewrite planID committed the blob: the
// blob's metadata names it (a later rewrite keeps the name), and the
// blob's current ETag.
func (c *Connector) Committed(ctx context.Context, dataset, blobName string, plan sources.PlanRef) (bool, string, error) {
	planID := plan.ID
	d := c.cfg.Dataset(dataset)
	if d == nil {
		return false, "", fmt.Errorf("dataset %s: %w (no longer configured)", dataset, sources.ErrChanged)
	}
	if d.Format == sources.FormatDelta {
		return c.committedDelta(ctx, d, blobName, planID)
	}
	props, err := c.svc.NewContainerClient(d.Container).NewBlobClient(blobName).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("dataset %s: blob %s: read properties: %w", dataset, blobName, err)
	}
	etag := ""
	if props.ETag != nil {
		etag = string(*props.ETag)
	}
	for k, v := range props.Metadata {
		if strings.EqualFold(k, commitsKey) && v != nil && planID != "" && slices.Contains(strings.Split(*v, ","), planID) {
			return true, etag, nil
		}
	}
	return false, etag, nil
}

// isChanged reports a storage error that means the blob is no longer the
// version discovery saw (or no longer exists).
func isChanged(err error) bool {
	if err == nil {
		return false
	}
	if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return true
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusPreconditionFailed || re.StatusCode == http.StatusNotFound)
}

// rewriteStream copies the blob in rd to w in format, applying edit to the
// records at ordinals (strictly increasing) and copying every other byte.
// It fails with errMissing when the blob ends before the last ordinal.
func rewriteStream(ctx context.Context, rd io.Reader, w io.Writer, format sources.Format, ordinals []int64, edit Edit) (deleted, replaced int, err error) {
	rw := &recordWriter{format: format, w: w}
	next := 0
	err = iterateSpans(ctx, rd, format, func(r *rawRecord) error {
		if next == len(ordinals) || r.ordinal != ordinals[next] {
			return rw.record(r.ordinal, r.span, false)
		}
		next++
		rec, err := r.ordered()
		if err != nil {
			return fmt.Errorf("record %d is not a valid %s record", r.ordinal, format)
		}
		repl, err := edit(r.ordinal, rec)
		if err != nil {
			return fmt.Errorf("edit record %d: %w", r.ordinal, err)
		}
		if repl == nil {
			deleted++
			return rw.record(r.ordinal, nil, true)
		}
		b, err := encodeRecord(format, r, repl)
		if err != nil {
			return fmt.Errorf("record %d: replacement: %w", r.ordinal, err)
		}
		replaced++
		return rw.record(r.ordinal, b, false)
	}, rw.gap)
	if err != nil {
		return 0, 0, err
	}
	if next != len(ordinals) {
		return 0, 0, errMissing
	}
	if err := rw.finish(); err != nil {
		return 0, 0, err
	}
	return deleted, replaced, nil
}

// recordWriter writes a blob back record by record.
type recordWriter struct {
	format sources.Format
	w      io.Writer
	// JSON arrays: the bytes before the next element (separator and
	// whitespace) wait until it is known whether the element stays, and
	// kept counts the elements written.
	pending []byte
	kept    int64
}

// gap writes bytes that belong to no record.
func (rw *recordWriter) gap(b []byte) error {
	if rw.format == sources.FormatJSONArray {
		rw.pending = append(rw.pending, b...)
		return nil
	}
	_, err := rw.w.Write(b)
	return err
}

// record writes the record at ordinal as b, or drops it when deleted.
func (rw *recordWriter) record(ordinal int64, b []byte, deleted bool) error {
	if rw.format == sources.FormatJSONArray {
		// Before element 0 lies the opening bracket: it always stays.
		// Before a later element lies a comma: it stays only when the
		// element stays and follows one that stayed.
		g := rw.pending
		rw.pending = rw.pending[:0]
		if ordinal == 0 || (!deleted && rw.kept > 0) {
			if _, err := rw.w.Write(g); err != nil {
				return err
			}
		}
		if deleted {
			return nil
		}
		rw.kept++
	}
	if deleted {
		return nil
	}
	_, err := rw.w.Write(b)
	return err
}

// finish writes what follows the last record.
func (rw *recordWriter) finish() error {
	if len(rw.pending) > 0 {
		_, err := rw.w.Write(rw.pending)
		return err
	}
	return nil
}

// lineEnding is the line ending that ends b ("" at the end of a blob
// without one).
func lineEnding(b []byte) string {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return "\r\n"
	case bytes.HasSuffix(b, []byte("\n")):
		return "\n"
	}
	return ""
}

// encodeRecord encodes a replacement for record r in format.
func encodeRecord(format sources.Format, r *rawRecord, rec *sources.Record) ([]byte, error) {
	switch format {
	case sources.FormatCSV:
		return encodeCSVRow(r.header, rec, lineEnding(r.span))
	case sources.FormatNDJSON, sources.FormatJSONArray:
		b, err := rec.MarshalJSON()
		if err != nil {
			return nil, err
		}
		if format == sources.FormatNDJSON {
			b = append(b, lineEnding(r.span)...)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unsupported format %q", format)
}

// encodeCSVRow encodes rec as one CSV row in the column order of header,
// ending with ending. Columns rec lacks are empty; a field that is not a
// column is an error (with repeated column names, the n-th field of a name
// fills the n-th column of that name).
func encodeCSVRow(header []string, rec *sources.Record, ending string) ([]byte, error) {
	vals := make([]string, len(header))
	used := make([]bool, len(header))
	for _, f := range rec.Fields {
		col := -1
		for i, h := range header {
			if !used[i] && h == f.Name {
				col = i
				break
			}
		}
		if col < 0 {
			return nil, fmt.Errorf("field %q is not a column of the CSV header (or repeats)", f.Name)
		}
		used[col] = true
		v, err := csvCell(f.Value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", f.Name, err)
		}
		vals[col] = v
	}
	var buf bytes.Buffer
	if len(vals) == 1 && vals[0] == "" {
		// csv.Writer would write an empty line, which readers skip.
		buf.WriteString(`""` + "\n")
	} else {
		cw := csv.NewWriter(&buf)
		// With UseCRLF a lone '\r' in a value would be lost; such a row is
		// written with '\n' inside its values and ends with CRLF below.
		cw.UseCRLF = ending == "\r\n" && !strings.ContainsAny(strings.Join(vals, ""), "\r")
		if err := cw.Write(vals); err != nil {
			return nil, err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return nil, err
		}
	}
	b := buf.Bytes()
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r")) // the writer's own CRLF; values end in a quote
	return append(b, ending...), nil
}

// csvCell renders a JSON-compatible scalar as a CSV cell.
func csvCell(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "true", nil
		}
		return "false", nil
	case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		b, err := json.Marshal(x)
		return string(b), err
	}
	return "", fmt.Errorf("a CSV cell cannot hold a %T", v)
}

// stager writes a new blob content as staged blocks of rewriteBlockSize.
type stager struct {
	ctx context.Context
	bb  *blockblob.Client
	// prefix is random per rewrite, so concurrent rewrites of one blob never
	// stage under the same block id.
	prefix string
	buf    []byte
	ids    []string
	// sum is the MD5 of the whole content, stored as its Content-MD5.
	sum hash.Hash
}

func newStager(ctx context.Context, bb *blockblob.Client) (*stager, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	return &stager{ctx: ctx, bb: bb, prefix: hex.EncodeToString(r[:]), sum: md5.New()}, nil
}

func (s *stager) Write(p []byte) (int, error) {
	s.sum.Write(p)
	n := len(p)
	for len(p) > 0 {
		if s.buf == nil {
			s.buf = make([]byte, 0, rewriteBlockSize)
		}
		k := copy(s.buf[len(s.buf):cap(s.buf)], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		if len(s.buf) == cap(s.buf) {
			if err := s.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// flush stages the buffered bytes as the next block.
func (s *stager) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	// Block ids of one blob must all have the same length: 36 bytes (48 in
	// base64), like the SDK's UploadBuffer.
	id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%011d", s.prefix, len(s.ids)))
	sum := md5.Sum(s.buf)
	_, err := s.bb.StageBlock(s.ctx, id, streaming.NopCloser(bytes.NewReader(s.buf)), &blockblob.StageBlockOptions{
		TransactionalValidation: blob.TransferValidationTypeMD5(sum[:]),
	})
	if err != nil {
		return fmt.Errorf("stage block %d: %w", len(s.ids), err)
	}
	s.ids = append(s.ids, id)
	s.buf = s.buf[:0]
	return nil
}

var _ sources.PlannedRewriter = (*Connector)(nil)

package blobdataset

// Reading a Delta Lake table's log (format "delta"): the live data files
// of the latest version, with the table's protocol and metadata.
//
// The log is _delta_log/ under the table root (the dataset's prefix). Its
// blobs are listed once; the newest complete checkpoint (the one
// _last_checkpoint names when that one is complete and listed, otherwise
// the newest complete single-part or multi-part checkpoint listed) gives
// the state up to its version, and the JSON commits after it, which must
// follow one another without a gap, are replayed in order. Reconciliation
// keeps the newest action per file: an add makes a file live, a remove
// takes it out; the newest protocol and metaData win. A table without a
// checkpoint is replayed from version 0.
//
// What is read is checked against what this connector supports (see
// deltaReadable and deltaWritable); a table that needs more is refused with
// a sources.DataError naming the feature, so the dataset fails at once,
// permanently, and no row is read wrongly.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/dsr-functions/dsr/shared/sources"
)

// deltaAction is one action of a Delta log (a line of a JSON commit, or a
// row of a checkpoint). Unknown actions and fields are ignored, as the
// protocol requires.
type deltaAction struct {
	Add        *deltaAdd      `json:"add,omitempty"`
	Remove     *deltaRemove   `json:"remove,omitempty"`
	MetaData   *deltaMetaData `json:"metaData,omitempty"`
	Protocol   *deltaProtocol `json:"protocol,omitempty"`
	CommitInfo map[string]any `json:"commitInfo,omitempty"`
}

type deltaAdd struct {
	Path             string             `json:"path"`
	PartitionValues  map[string]*string `json:"partitionValues"`
	Size             int64              `json:"size"`
	ModificationTime int64              `json:"modificationTime"`
	DataChange       bool               `json:"dataChange"`
	Stats            string             `json:"stats,omitempty"`
	Tags             map[string]string  `json:"tags,omitempty"`
	DeletionVector   json.RawMessage    `json:"deletionVector,omitempty"`
}

type deltaRemove struct {
	Path                 string             `json:"path"`
	DeletionTimestamp    int64              `json:"deletionTimestamp,omitempty"`
	DataChange           bool               `json:"dataChange"`
	ExtendedFileMetadata bool               `json:"extendedFileMetadata,omitempty"`
	PartitionValues      map[string]*string `json:"partitionValues,omitempty"`
	Size                 int64              `json:"size,omitempty"`
	Stats                string             `json:"stats,omitempty"`
	DeletionVector       json.RawMessage    `json:"deletionVector,omitempty"`
}

type deltaMetaData struct {
	ID               string            `json:"id"`
	Name             string            `json:"name,omitempty"`
	Format           deltaFormat       `json:"format"`
	SchemaString     string            `json:"schemaString"`
	PartitionColumns []string          `json:"partitionColumns"`
	Configuration    map[string]string `json:"configuration"`
	CreatedTime      *int64            `json:"createdTime,omitempty"`
}

type deltaFormat struct {
	Provider string            `json:"provider"`
	Options  map[string]string `json:"options"`
}

type deltaProtocol struct {
	MinReaderVersion int      `json:"minReaderVersion"`
	MinWriterVersion int      `json:"minWriterVersion"`
	ReaderFeatures   []string `json:"readerFeatures,omitempty"`
	WriterFeatures   []string `json:"writerFeatures,omitempty"`
}

// hasDV reports a deletion vector in an action (absent or null: none).
func hasDV(dv json.RawMessage) bool {
	return len(dv) > 0 && string(dv) != "null"
}

// deltaSnapshot is a table's state at one version.
type deltaSnapshot struct {
	version  int64
	protocol *deltaProtocol
	meta     *deltaMetaData
	// files are the live data files by blob name (the table root's
	// prefix and the add's decoded path).
	files map[string]*deltaAdd
	// schema holds the types of the table's top-level columns.
	schema map[string]string
}

// blobs are the live files' blob names, sorted.
func (s *deltaSnapshot) blobs() []string {
	names := make([]string, 0, len(s.files))
	for n := range s.files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Log file names (inside _delta_log/).
var (
	deltaCommitRe     = regexp.MustCompile(`^(\d{20})\.json$`)
	deltaCheckpointRe = regexp.MustCompile(`^(\d{20})\.checkpoint\.parquet$`)
	deltaMultipartRe  = regexp.MustCompile(`^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$`)
	deltaV2Re         = regexp.MustCompile(`^(\d{20})\.checkpoint\.[0-9a-fA-F-]{36}\.(json|parquet)$`)
)

// deltaCheckpoint is a checkpoint found in the log listing.
type deltaCheckpoint struct {
	version int64
	// parts are its files in order (one for a single-part checkpoint).
	parts []string
	// v2 is a UUID-named (V2) checkpoint, which is not supported.
	v2 bool
}

// deltaLogDir is the log folder of dataset d's table.
func deltaLogDir(d *sources.Dataset) string { return d.Prefix + "_delta_log/" }

// deltaErr is a table that cannot be read as it is: the dataset fails,
// permanently, with reason.
func deltaErr(d *sources.Dataset, format string, args ...any) error {
	return &sources.DataError{Dataset: d.Name, Reason: "delta table " + d.Prefix + ": " + fmt.Sprintf(format, args...)}
}

// loadDelta reads the latest snapshot of dataset d's table and checks that
// it can be read (deltaReadable).
func (c *Connector) loadDelta(ctx context.Context, d *sources.Dataset) (*deltaSnapshot, error) {
	logDir := deltaLogDir(d)
	names, err := c.store.list(ctx, d.Container, logDir)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: list the delta log: %w", d.Name, err)
	}
	commits := map[int64]string{}
	cps := map[int64]*deltaCheckpoint{}
	multi := map[string]map[int]string{} // "version/total" -> part -> name
	latest := int64(-1)
	hasLast := false
	for _, full := range names {
		n := strings.TrimPrefix(full, logDir)
		if n == "_last_checkpoint" {
			hasLast = true
			continue
		}
		if m := deltaCommitRe.FindStringSubmatch(n); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			commits[v] = full
			latest = max(latest, v)
		} else if m := deltaCheckpointRe.FindStringSubmatch(n); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			cps[v] = &deltaCheckpoint{version: v, parts: []string{full}}
		} else if m := deltaMultipartRe.FindStringSubmatch(n); m != nil {
			key := m[1] + "/" + m[3]
			if multi[key] == nil {
				multi[key] = map[int]string{}
			}
			p, _ := strconv.Atoi(m[2])
			multi[key][p] = full
		} else if m := deltaV2Re.FindStringSubmatch(n); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			if cps[v] == nil {
				cps[v] = &deltaCheckpoint{version: v, v2: true}
			}
		}
	}
	// Multi-part checkpoints count only when every part is there.
	for key, parts := range multi {
		vs, ts, _ := strings.Cut(key, "/")
		v, _ := strconv.ParseInt(vs, 10, 64)
		total, _ := strconv.Atoi(ts)
		if total < 1 || len(parts) != total || (cps[v] != nil && !cps[v].v2) {
			continue
		}
		cp := &deltaCheckpoint{version: v}
		for p := 1; p <= total; p++ {
			if parts[p] == "" {
				cp = nil
				break
			}
			cp.parts = append(cp.parts, parts[p])
		}
		if cp != nil {
			cps[v] = cp
		}
	}
	var cp *deltaCheckpoint
	if hasLast {
		if v, ok := c.lastCheckpoint(ctx, d); ok && cps[v] != nil {
			cp = cps[v]
		}
	}
	for v, x := range cps {
		if cp == nil || v > cp.version {
			cp = x
		}
	}
	if cp != nil {
		latest = max(latest, cp.version)
	}
	if latest < 0 {
		return nil, deltaErr(d, "no Delta log (no commit under %s)", logDir)
	}
	s := &deltaSnapshot{files: map[string]*deltaAdd{}, version: -1}
	from := int64(0)
	if cp != nil {
		if cp.v2 {
			return nil, deltaErr(d, "the newest checkpoint (version %d) is a V2 checkpoint: reader feature v2Checkpoint is not supported", cp.version)
		}
		for _, part := range cp.parts {
			if err := c.readCheckpoint(ctx, d, part, s); err != nil {
				return nil, err
			}
		}
		s.version = cp.version
		from = cp.version + 1
	}
	for v := from; v <= latest; v++ {
		name, ok := commits[v]
		if !ok {
			return nil, deltaErr(d, "the log has no commit for version %d (cleaned up without a checkpoint before it?)", v)
		}
		if err := c.readCommit(ctx, d, name, v, s, nil); err != nil {
			return nil, err
		}
		s.version = v
	}
	if err := s.finish(d); err != nil {
		return nil, err
	}
	return s, nil
}

// lastCheckpoint reads _delta_log/_last_checkpoint: the version it names
// (ok false when it cannot be read: the listing is used instead).
func (c *Connector) lastCheckpoint(ctx context.Context, d *sources.Dataset) (int64, bool) {
	body, _, err := c.store.open(ctx, d.Container, deltaLogDir(d)+"_last_checkpoint")
	if err != nil {
		return 0, false
	}
	defer body.Close()
	var lc struct {
		Version *int64 `json:"version"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&lc); err != nil || lc.Version == nil {
		return 0, false
	}
	return *lc.Version, true
}

// maxLogLine bounds a line of a JSON commit (a schema or stats can be long).
const maxLogLine = 64 << 20

// readCommit replays JSON commit name (version v) onto s; each action is
// also handed to each, when set.
func (c *Connector) readCommit(ctx context.Context, d *sources.Dataset, name string, v int64, s *deltaSnapshot, each func(*deltaAction)) error {
	body, _, err := c.store.open(ctx, d.Container, name)
	if errors.Is(err, errBlobNotFound) {
		return fmt.Errorf("dataset %s: delta commit %d: %w (gone since the listing)", d.Name, v, sources.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("dataset %s: read delta commit %d: %w", d.Name, v, err)
	}
	defer body.Close()
	br := bufio.NewReaderSize(transportReader{body}, 64<<10)
	for line := 1; ; line++ {
		b, err := readLogLine(br)
		if err != nil && err != io.EOF {
			var te *transportError
			if errors.As(err, &te) {
				return fmt.Errorf("dataset %s: read delta commit %d: %w", d.Name, v, err)
			}
			return deltaErr(d, "commit %d line %d: %v", v, line, err)
		}
		if len(b) > 0 {
			var a deltaAction
			if jerr := json.Unmarshal(b, &a); jerr != nil {
				return deltaErr(d, "commit %d line %d is not a valid action", v, line)
			}
			if aerr := s.apply(d, &a); aerr != nil {
				return aerr
			}
			if each != nil {
				each(&a)
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLogLine reads one line (without its line ending; blank lines give
// nil), up to maxLogLine bytes.
func readLogLine(br *bufio.Reader) ([]byte, error) {
	var out []byte
	for {
		chunk, err := br.ReadSlice('\n')
		out = append(out, chunk...)
		if len(out) > maxLogLine {
			return nil, errors.New("a line longer than the limit")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		b := []byte(strings.TrimSpace(string(out)))
		if len(b) == 0 {
			b = nil
		}
		return b, err
	}
}

// readCheckpoint replays one checkpoint Parquet file onto s: each row is
// one action, read like a record (see assembler) and decoded as JSON.
func (c *Connector) readCheckpoint(ctx context.Context, d *sources.Dataset, name string, s *deltaSnapshot) error {
	ps, ok := c.store.(parquetStore)
	if !ok {
		return fmt.Errorf("dataset %s: this store cannot read Parquet blobs", d.Name)
	}
	etag, size, err := ps.stat(ctx, d.Container, name)
	if errors.Is(err, errBlobNotFound) {
		return fmt.Errorf("dataset %s: delta checkpoint %s: %w (gone since the listing)", d.Name, name, sources.ErrChanged)
	}
	if err != nil {
		return fmt.Errorf("dataset %s: read delta checkpoint %s: %w", d.Name, name, err)
	}
	ra := &blobReaderAt{ctx: ctx, r: ps, cont: d.Container, name: name, etag: etag, size: size}
	fail := func(what string, err error) error {
		if ferr := ra.failure(); ferr != nil {
			return fmt.Errorf("dataset %s: read delta checkpoint %s: %w", d.Name, name, ferr)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return deltaErr(d, "checkpoint %s: %s cannot be decoded", strings.TrimPrefix(name, d.Prefix), what)
	}
	f, err := openParquet(ra)
	if err != nil {
		return fail("the footer", err)
	}
	sch, err := newPQSchema(f.Root())
	if err != nil {
		return fail("the schema", err)
	}
	var fields []*pqField
	for _, fl := range sch.fields {
		switch fl.name {
		case "add", "remove", "metaData", "protocol":
			fields = append(fields, fl)
		}
	}
	var (
		asm  assembler
		cols [][]parquet.Value
		buf  = make([]parquet.Row, 64)
	)
	for g, rg := range f.RowGroups() {
		err := func() error {
			rows := rg.Rows()
			defer rows.Close()
			for done := int64(0); done < rg.NumRows(); {
				if err := ctx.Err(); err != nil {
					return err
				}
				n, err := rows.ReadRows(buf)
				if n == 0 {
					if err == nil || err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					return fail(fmt.Sprintf("row group %d", g), err)
				}
				for _, row := range buf[:n] {
					done++
					cols = byColumn(row, sch.columns, cols)
					rec, rerr := asm.recordOf(fields, cols)
					if rerr != nil {
						return fail(fmt.Sprintf("row group %d", g), rerr)
					}
					obj := make(map[string]any, len(rec.Fields))
					for _, fl := range rec.Fields {
						if fl.Value != nil {
							obj[fl.Name] = fl.Value
						}
					}
					if len(obj) == 0 {
						continue
					}
					b, jerr := json.Marshal(obj)
					var a deltaAction
					if jerr == nil {
						jerr = json.Unmarshal(b, &a)
					}
					if jerr != nil {
						return fail(fmt.Sprintf("row group %d", g), jerr)
					}
					if aerr := s.apply(d, &a); aerr != nil {
						return aerr
					}
				}
				if err != nil && err != io.EOF {
					return fail(fmt.Sprintf("row group %d", g), err)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// deltaBlob is the blob name of a data file path of the log (relative to
// the table root, URI-encoded).
func deltaBlob(d *sources.Dataset, p string) (string, error) {
	if strings.Contains(p, "://") || strings.HasPrefix(p, "/") {
		return "", errors.New("absolute data file paths (shallow clones) are not supported")
	}
	dec, err := url.PathUnescape(p)
	if err != nil || dec == "" || strings.HasPrefix(dec, "_") || slices.Contains(strings.Split(dec, "/"), "..") {
		return "", errors.New("a data file path that is not a file of the table")
	}
	return d.Prefix + dec, nil
}

// apply reconciles one action onto s.
func (s *deltaSnapshot) apply(d *sources.Dataset, a *deltaAction) error {
	switch {
	case a.Add != nil:
		if hasDV(a.Add.DeletionVector) {
			return deltaErr(d, "a data file has a deletion vector: reader feature deletionVectors is not supported")
		}
		b, err := deltaBlob(d, a.Add.Path)
		if err != nil {
			return deltaErr(d, "%v", err)
		}
		s.files[b] = a.Add
	case a.Remove != nil:
		if hasDV(a.Remove.DeletionVector) {
			return deltaErr(d, "a removed file has a deletion vector: reader feature deletionVectors is not supported")
		}
		if b, err := deltaBlob(d, a.Remove.Path); err == nil {
			delete(s.files, b)
		}
	}
	if a.Protocol != nil {
		s.protocol = a.Protocol
	}
	if a.MetaData != nil {
		s.meta = a.MetaData
	}
	return nil
}

// finish checks the reconciled snapshot: it has a protocol and metadata,
// this connector can read it, and the partition columns' types are known.
func (s *deltaSnapshot) finish(d *sources.Dataset) error {
	if s.protocol == nil || s.meta == nil {
		return deltaErr(d, "the log has no protocol or no metaData action")
	}
	if err := deltaReadable(s); err != nil {
		return deltaErr(d, "%v", err)
	}
	var sch struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(s.meta.SchemaString), &sch); err != nil {
		return deltaErr(d, "the schemaString is not a Delta schema")
	}
	s.schema = map[string]string{}
	for _, f := range sch.Fields {
		var t string
		if json.Unmarshal(f.Type, &t) != nil {
			t = "struct"
		}
		s.schema[f.Name] = t
	}
	for _, p := range s.meta.PartitionColumns {
		if _, ok := s.schema[p]; !ok {
			return deltaErr(d, "partition column %q is not in the schema", p)
		}
	}
	return nil
}

// Supported Delta table features. Reading: protocol reader versions 1 and
// 2 (column mapping only when delta.columnMapping.mode is none), and
// reader version 3 with these reader features only.
var deltaReaderFeatures = []string{"columnMapping", "timestampNtz", "typeWidening", "typeWidening-preview", "vacuumProtocolCheck"}

// Writing (erasure, rectification, restriction): writer versions up to 7
// with these writer features only, each as long as it asks nothing of
// this writer (see deltaWritable).
var deltaWriterFeatures = []string{"appendOnly", "invariants", "checkConstraints", "changeDataFeed", "generatedColumns",
	"columnMapping", "identityColumns", "timestampNtz", "vacuumProtocolCheck", "domainMetadata"}

// deltaReadable reports why s cannot be read, nil if it can.
func deltaReadable(s *deltaSnapshot) error {
	p := s.protocol
	switch {
	case p.MinReaderVersion < 1 || p.MinReaderVersion > 3:
		return fmt.Errorf("protocol minReaderVersion %d is not supported (1 to 3 are)", p.MinReaderVersion)
	case p.MinReaderVersion == 3:
		for _, f := range p.ReaderFeatures {
			if !slices.Contains(deltaReaderFeatures, f) {
				return fmt.Errorf("reader feature %s is not supported (supported: %s)", f, strings.Join(deltaReaderFeatures, ", "))
			}
		}
	}
	if m := s.meta.Configuration["delta.columnMapping.mode"]; m != "" && m != "none" {
		return fmt.Errorf("column mapping (delta.columnMapping.mode %s) is not supported", m)
	}
	if prov := s.meta.Format.Provider; prov != "" && prov != "parquet" {
		return fmt.Errorf("data file format %q is not supported", prov)
	}
	return nil
}

// deltaWritable reports why this connector must not commit to s (nil if
// it may): it writes what the protocol's writer version 2 asks (no
// append-only table, no invariants), and refuses tables whose features
// would ask more of a writer that deletes or updates rows.
func deltaWritable(s *deltaSnapshot) error {
	p := s.protocol
	if p.MinWriterVersion < 1 || p.MinWriterVersion > 7 {
		return fmt.Errorf("protocol minWriterVersion %d is not supported", p.MinWriterVersion)
	}
	if p.MinWriterVersion == 7 {
		for _, f := range p.WriterFeatures {
			if !slices.Contains(deltaWriterFeatures, f) {
				return fmt.Errorf("writer feature %s is not supported for erasure or rectification (supported: %s)", f, strings.Join(deltaWriterFeatures, ", "))
			}
		}
	}
	conf := s.meta.Configuration
	switch {
	case strings.EqualFold(conf["delta.appendOnly"], "true"):
		return errors.New("the table is append-only (delta.appendOnly): rows cannot be deleted or updated")
	case strings.EqualFold(conf["delta.enableChangeDataFeed"], "true"):
		return errors.New("change data feed (delta.enableChangeDataFeed) is on: writing its change files is not supported")
	case strings.Contains(s.meta.SchemaString, "delta.invariants"):
		return errors.New("column invariants (delta.invariants) are not supported for erasure or rectification")
	case strings.Contains(s.meta.SchemaString, "delta.generationExpression"):
		return errors.New("generated columns are not supported for erasure or rectification")
	}
	for k := range conf {
		if strings.HasPrefix(k, "delta.constraints.") {
			return errors.New("CHECK constraints (delta.constraints.*) are not supported for erasure or rectification")
		}
	}
	return nil
}

// partitionFields are the partition values of live file a as record
// fields, in the order of the table's partition columns, typed by the
// schema (numbers as JSON numbers, booleans as booleans, others as the
// log's strings, null as null).
func (s *deltaSnapshot) partitionFields(a *deltaAdd) []sources.Field {
	out := make([]sources.Field, 0, len(s.meta.PartitionColumns))
	for _, col := range s.meta.PartitionColumns {
		out = append(out, sources.Field{Name: col, Value: partitionValue(a.PartitionValues[col], s.schema[col])})
	}
	return out
}

func partitionValue(v *string, typ string) any {
	if v == nil {
		return nil
	}
	switch {
	case typ == "byte" || typ == "short" || typ == "integer" || typ == "long":
		if _, err := strconv.ParseInt(*v, 10, 64); err == nil {
			return json.Number(*v)
		}
	case typ == "float" || typ == "double" || strings.HasPrefix(typ, "decimal"):
		if _, err := strconv.ParseFloat(*v, 64); err == nil && json.Valid([]byte(*v)) {
			return json.Number(*v)
		}
	case typ == "boolean":
		if b, err := strconv.ParseBool(*v); err == nil {
			return b
		}
	}
	return *v
}

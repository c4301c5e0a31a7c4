package blobdataset

// Parquet datasets (format "parquet"). A Parquet blob is not a stream of
// records: its footer, at the end, says where each row group's column
// chunks lie. So Parquet blobs are read through an io.ReaderAt whose every
// read is a ranged download pinned to the ETag the blob had when it was
// opened (blobReaderAt): discovery fetches the footer and then only the
// column chunks of the top-level fields that identifiers, free text and
// relations name; Read and Rewrite fetch every column of the row groups
// they need.
//
// Rows are turned into the records the other formats have (parquetRecord):
// groups become JSON objects, lists and repeated fields JSON arrays, and
// leaf values JSON scalars with their logical types kept (see leafJSON).
// Discovery then encodes each row's needed fields as one JSON object and
// hands it to the very prefilter and rules NDJSON lines go through, so a
// row matches exactly when the same record written as an NDJSON line would.
// A matched row is located by its ordinal: its index in the file, counting
// the rows of every row group before it.
//
// Row groups are never skipped by column statistics or bloom filters.
// Matching normalises what it compares (emails and phones are parsed out of
// any spelling, ids and relation keys are trimmed, free text is searched
// for mentions in any shape), so a value can match although its bytes lie
// outside a row group's min/max or are absent from its bloom filter (which
// hashes the exact bytes); no statistic bounds "holds the subject's email
// after normalisation". The footer and the needed columns are still all
// that discovery downloads.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/dsr-functions/dsr/shared/sources"
)

// parquetBufSize is the read buffer of each column chunk read (and the
// size of the optimistic read of the footer): each ranged download fetches
// up to this many bytes.
const parquetBufSize = 256 << 10

// parquetStore is what discovery needs of a store to read Parquet blobs:
// a blob's current ETag and size, and ranged reads pinned to that ETag.
type parquetStore interface {
	// stat returns a blob's ETag and size; a missing blob or container
	// fails with an error wrapping errBlobNotFound.
	stat(ctx context.Context, container, name string) (string, int64, error)
	blobReader
}

// blobReaderAt is an io.ReaderAt over one version of a blob: each ReadAt
// is one ranged download conditional on etag. The first failure is kept
// (see failure), so that callers can tell the blob's data (a Parquet
// decoding error) from its transport or a change of version, whatever
// parquet-go made of the error it saw.
type blobReaderAt struct {
	ctx              context.Context
	r                blobReader
	cont, name, etag string
	size             int64

	// tail holds the blob's last bytes (from tailOff on), read once for
	// the footer.
	tail    []byte
	tailOff int64

	mu  sync.Mutex
	err error
	// reads and bytes count the downloads and the bytes they fetched.
	reads, bytes atomic.Int64
}

func (b *blobReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("read at a negative offset")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.size-off)
	if b.tail != nil && off >= b.tailOff {
		copy(p[:n], b.tail[off-b.tailOff:])
		if n < int64(len(p)) {
			return int(n), io.EOF
		}
		return int(n), nil
	}
	body, size, err := b.r.read(b.ctx, b.cont, b.name, b.etag, off, n)
	if err == nil {
		if size != b.size {
			err = fmt.Errorf("%w (the blob's size changed)", sources.ErrChanged)
		} else if _, err = io.ReadFull(body, p[:n]); err != nil {
			err = &transportError{err}
		}
		body.Close()
	}
	if err != nil {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
		return 0, err
	}
	b.reads.Add(1)
	b.bytes.Add(n)
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// failure is the first read that failed, nil if none did.
func (b *blobReaderAt) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// parquetTail is how many bytes at the end of a Parquet blob are read at
// once for its footer: most footers fit, so opening a file costs one
// download, and little of the last column chunk comes along.
const parquetTail = 64 << 10

// openParquet opens the Parquet file behind ra: one download for the
// footer (one more for a footer larger than parquetTail). Page indexes and
// bloom filters are not read.
func openParquet(ra *blobReaderAt) (*parquet.File, error) {
	if ra.tail == nil && ra.size > 0 {
		n := min(ra.size, parquetTail)
		tail := make([]byte, n)
		if _, err := ra.ReadAt(tail, ra.size-n); err != nil && err != io.EOF {
			return nil, err
		}
		ra.tail, ra.tailOff = tail, ra.size-n
	}
	f, err := parquet.OpenFile(ra, ra.size,
		parquet.SkipPageIndex(true),
		parquet.SkipBloomFilters(true),
		parquet.OptimisticRead(false),
		parquet.ReadBufferSize(parquetBufSize),
	)
	if err != nil {
		if ferr := ra.failure(); ferr != nil {
			return nil, ferr
		}
		return nil, errNotParquet
	}
	return f, nil
}

// errNotParquet is a blob that is not a readable Parquet file (the
// decoder's own message is not kept: it may quote the data).
var errNotParquet = errors.New("not a readable Parquet file")

// pqField is one node of a Parquet schema, with what reading and writing
// its values needs.
type pqField struct {
	col                *parquet.Column
	name               string
	optional, repeated bool
	// def and rep are the node's maximum definition and repetition
	// levels (counting the node itself).
	def, rep int
	// first and n: the node's leaf columns are [first, first+n).
	first, n int
	children []*pqField
	// list and mapping: a group annotated LIST or MAP, read as a JSON
	// array or object.
	list, mapping bool
}

// pqSchema is a Parquet file's schema: its top-level fields in order.
type pqSchema struct {
	fields  []*pqField
	columns int
}

func newPQSchema(root *parquet.Column) (*pqSchema, error) {
	s := &pqSchema{}
	next := 0
	var build func(c *parquet.Column) (*pqField, error)
	build = func(c *parquet.Column) (*pqField, error) {
		f := &pqField{col: c, name: c.Name(), optional: c.Optional(), repeated: c.Repeated(),
			def: c.MaxDefinitionLevel(), rep: c.MaxRepetitionLevel(), first: next}
		if c.Leaf() {
			if c.Index() != next {
				return nil, errors.New("the schema's leaf columns are out of order")
			}
			next++
			f.n = 1
			return f, nil
		}
		if lt := c.Type().LogicalType(); lt != nil {
			switch lt.Value.(type) {
			case *format.ListType:
				f.list = true
			case *format.MapType:
				f.mapping = true
			}
		}
		for _, cc := range c.Columns() {
			ch, err := build(cc)
			if err != nil {
				return nil, err
			}
			f.children = append(f.children, ch)
		}
		f.n = next - f.first
		if f.n == 0 {
			return nil, errors.New("the schema has a group without columns")
		}
		// A LIST or MAP group holds one repeated group (or field); anything
		// else is read as a plain group.
		if (f.list || f.mapping) && (len(f.children) != 1 || !f.children[0].repeated) {
			f.list, f.mapping = false, false
		}
		if f.mapping && (len(f.children[0].children) != 2 || f.children[0].children[0].name != "key") {
			f.mapping = false
		}
		return f, nil
	}
	for _, c := range root.Columns() {
		f, err := build(c)
		if err != nil {
			return nil, err
		}
		s.fields = append(s.fields, f)
	}
	s.columns = next
	return s, nil
}

// errShape is a row whose values do not fit the schema's levels.
var errShape = errors.New("a row's values do not fit the schema")

// assembler turns the values of one row, by leaf column, into JSON values.
type assembler struct {
	cols [][]parquet.Value
	pos  []int
}

func (a *assembler) reset(cols [][]parquet.Value) {
	a.cols = cols
	if cap(a.pos) < len(cols) {
		a.pos = make([]int, len(cols))
	}
	a.pos = a.pos[:len(cols)]
	clear(a.pos)
}

func (a *assembler) peek(c int) (parquet.Value, bool) {
	if a.pos[c] >= len(a.cols[c]) {
		return parquet.Value{}, false
	}
	return a.cols[c][a.pos[c]], true
}

// skip consumes the one value each leaf of f has where f is null, empty
// or absent.
func (a *assembler) skip(f *pqField) error {
	for c := f.first; c < f.first+f.n; c++ {
		if _, ok := a.peek(c); !ok {
			return errShape
		}
		a.pos[c]++
	}
	return nil
}

// field reads field f's value: a JSON array for a repeated field, null
// for an absent optional one.
func (a *assembler) field(f *pqField) (any, error) {
	v, ok := a.peek(f.first)
	if !ok {
		return nil, errShape
	}
	if f.repeated {
		if v.DefinitionLevel() < f.def {
			return []any{}, a.skip(f)
		}
		var list []any
		for {
			x, err := a.instance(f)
			if err != nil {
				return nil, err
			}
			list = append(list, x)
			if nx, ok := a.peek(f.first); !ok || nx.RepetitionLevel() != f.rep {
				return list, nil
			}
		}
	}
	if f.optional && v.DefinitionLevel() < f.def {
		return nil, a.skip(f)
	}
	return a.instance(f)
}

// instance reads one present instance of f.
func (a *assembler) instance(f *pqField) (any, error) {
	if f.col.Leaf() {
		v, _ := a.peek(f.first)
		a.pos[f.first]++
		return leafJSON(v, f.col.Type())
	}
	if f.list || f.mapping {
		x, err := a.field(f.children[0])
		if err != nil {
			return nil, err
		}
		items := x.([]any)
		rep := f.children[0]
		if f.mapping {
			return mapJSON(items), nil
		}
		if !rep.col.Leaf() && len(rep.children) == 1 {
			// The standard three levels: list.element.
			for i, it := range items {
				items[i] = it.(map[string]any)[rep.children[0].name]
			}
		}
		return items, nil
	}
	obj := make(map[string]any, len(f.children))
	for _, ch := range f.children {
		x, err := a.field(ch)
		if err != nil {
			return nil, err
		}
		obj[ch.name] = x
	}
	return obj, nil
}

// mapJSON turns the key_value entries of a MAP into a JSON object when
// every key is a string, else leaves them an array of {key, value}.
func mapJSON(entries []any) any {
	obj := make(map[string]any, len(entries))
	for _, e := range entries {
		kv := e.(map[string]any)
		k, ok := kv["key"].(string)
		if !ok {
			return entries
		}
		obj[k] = kv["value"]
	}
	return obj
}

// recordOf assembles the row whose values cols holds (by leaf column;
// only the columns of fields need values) into a record of fields.
func (a *assembler) recordOf(fields []*pqField, cols [][]parquet.Value) (sources.Record, error) {
	a.reset(cols)
	rec := sources.Record{Fields: make([]sources.Field, 0, len(fields))}
	for _, f := range fields {
		x, err := a.field(f)
		if err != nil {
			return sources.Record{}, err
		}
		rec.Fields = append(rec.Fields, sources.Field{Name: f.name, Value: x})
	}
	for _, f := range fields {
		if a.pos[f.first] != len(cols[f.first]) {
			return sources.Record{}, errShape
		}
	}
	return rec, nil
}

// byColumn splits a row (values ordered by column) into its columns' values.
func byColumn(row parquet.Row, columns int, dst [][]parquet.Value) [][]parquet.Value {
	if cap(dst) < columns {
		dst = make([][]parquet.Value, columns)
	}
	dst = dst[:columns]
	clear(dst)
	row.Range(func(c int, vals []parquet.Value) bool {
		if c < columns {
			dst[c] = vals
		}
		return true
	})
	return dst
}

// neededFields are the top-level fields that discovery reads: those a
// path of the dataset's identifiers, free text or relations, or a field
// other datasets reference, starts with (or is, for a field whose name
// holds dots).
func neededFields(s *pqSchema, d *sources.Dataset, refs []string) []*pqField {
	var paths []string
	for _, id := range d.Identifiers {
		paths = append(paths, id.Field)
	}
	paths = append(paths, d.FreeText...)
	for _, r := range d.Relations {
		paths = append(paths, r.Field)
	}
	paths = append(paths, refs...)
	var out []*pqField
	for _, f := range s.fields {
		for _, p := range paths {
			if p == f.name || strings.HasPrefix(p, f.name+".") || strings.HasPrefix(p, f.name+"[") {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// columnRows reads the values of one leaf column chunk row by row.
type columnRows struct {
	r    parquet.ColumnChunkValueReader
	buf  []parquet.Value
	i, n int
	eof  bool
}

// fill reads more values when all read ones are used; false at the end.
func (c *columnRows) fill() (bool, error) {
	for c.i == c.n {
		if c.eof {
			return false, nil
		}
		n, err := c.r.ReadValues(c.buf)
		c.i, c.n = 0, n
		if err == io.EOF {
			c.eof = true
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

// row appends the values of the column's next row to dst, copied out of
// the page memory the reader reuses: byte arrays into *arena (reset by
// the caller once the row is done with, so a scan allocates nothing per
// value), other values as they are. A row starts with a value of
// repetition level 0.
func (c *columnRows) row(dst []parquet.Value, arena *[]byte) ([]parquet.Value, error) {
	for first := true; ; first = false {
		ok, err := c.fill()
		if err != nil {
			return nil, err
		}
		if !ok {
			if first {
				return nil, errShape
			}
			return dst, nil
		}
		if !first && c.buf[c.i].RepetitionLevel() == 0 {
			return dst, nil
		}
		v := c.buf[c.i]
		if v.Kind() == parquet.ByteArray && !v.IsNull() {
			// A value pointing into an arena that grows later keeps the old
			// array alive: it stays valid until the arena is reset.
			b := v.ByteArray()
			start := len(*arena)
			*arena = append(*arena, b...)
			v = parquet.ByteArrayValue((*arena)[start:len(*arena):len(*arena)]).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
		} else {
			v = v.Clone()
		}
		dst = append(dst, v)
		c.i++
	}
}

// scanParquet is scanBlob for a Parquet blob: it reads the needed columns
// of each row group and matches each row, encoded as a JSON object of the
// needed fields, like an NDJSON line. A blob that changes while it is read
// is read again from its new version (twice at most).
func (c *Connector) scanParquet(ctx context.Context, d *sources.Dataset, name string, m *datasetMatcher, refs []string) (blobResult, error) {
	ps, ok := c.store.(parquetStore)
	if !ok {
		return blobResult{}, fmt.Errorf("dataset %s: this store cannot read Parquet blobs", d.Name)
	}
	for attempt := 0; ; attempt++ {
		res, err := c.scanParquetOnce(ctx, ps, d, name, m, refs, nil)
		if errors.Is(err, sources.ErrChanged) && attempt < 2 && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

// extra are fields every row of the blob has besides its columns (a Delta
// table's partition values), matched as if they were columns.
func (c *Connector) scanParquetOnce(ctx context.Context, ps parquetStore, d *sources.Dataset, name string, m *datasetMatcher, refs []string, extra []sources.Field) (blobResult, error) {
	etag, size, err := ps.stat(ctx, d.Container, name)
	if errors.Is(err, errBlobNotFound) {
		return blobResult{}, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("blob %s/%s not found", d.Container, name)}
	}
	if err != nil {
		return blobResult{}, fmt.Errorf("dataset %s: read blob %s: %w", d.Name, name, err)
	}
	ra := &blobReaderAt{ctx: ctx, r: ps, cont: d.Container, name: name, etag: etag, size: size}
	res := blobResult{etag: etag}
	err = scanParquetFile(ctx, ra, m, refs, d, &res, extra)
	if err == nil {
		return res, nil
	}
	if ferr := ra.failure(); ferr != nil {
		err = ferr
	}
	var te *transportError
	if errors.Is(err, sources.ErrChanged) || errors.As(err, &te) || ctx.Err() != nil {
		return blobResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
	}
	var de *dataErr
	if errors.As(err, &de) || errors.Is(err, errNotParquet) || errors.Is(err, errShape) {
		return blobResult{}, &sources.DataError{Dataset: d.Name, Reason: "blob " + name + ": " + err.Error()}
	}
	return blobResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
}

// dataErr is a position in a Parquet blob whose data cannot be decoded
// (the decoder's message is dropped: it may quote the data).
type dataErr struct{ what string }

func (e *dataErr) Error() string { return e.what + " cannot be decoded" }

func scanParquetFile(ctx context.Context, ra *blobReaderAt, m *datasetMatcher, refs []string, d *sources.Dataset, res *blobResult, extra []sources.Field) error {
	f, err := openParquet(ra)
	if err != nil {
		return err
	}
	s, err := newPQSchema(f.Root())
	if err != nil {
		return &dataErr{"the schema (" + err.Error() + ")"}
	}
	fields := neededFields(s, d, refs)
	if len(fields) == 0 && len(extra) == 0 {
		// No field any rule reads: no row can match.
		return nil
	}
	var (
		asm  assembler
		sc   scratch
		buf  bytes.Buffer
		cols = make([][]parquet.Value, s.columns)
	)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	rec := &rawRecord{}
	var base int64
	// Rows are passed over unassembled when no value of theirs holds a
	// subject's identifier (see rowCells); that needs a prefilter that
	// can turn rows down, and partition values that do not make every
	// row a candidate.
	var cells *rowCells
	if len(m.always) == 0 && !extraCandidate(m, extra, &sc) {
		cells = newRowCells(s, fields)
	}
	var arena []byte
	for g, rg := range f.RowGroups() {
		chunks := rg.ColumnChunks()
		var readers []*columnRows
		var leaves []int
		for _, fl := range fields {
			for col := fl.first; col < fl.first+fl.n; col++ {
				readers = append(readers, &columnRows{r: parquet.NewColumnChunkValueReader(chunks[col]), buf: make([]parquet.Value, 256)})
				leaves = append(leaves, col)
			}
		}
		err := func() error {
			defer func() {
				for _, r := range readers {
					r.r.Close()
				}
			}()
			for i := range rg.NumRows() {
				if i%4096 == 0 && ctx.Err() != nil {
					return ctx.Err()
				}
				arena = arena[:0]
				for k, r := range readers {
					v, err := r.row(cols[leaves[k]][:0], &arena)
					if err != nil {
						if errors.Is(err, errShape) {
							return err
						}
						return &dataErr{fmt.Sprintf("row group %d", g)}
					}
					cols[leaves[k]] = v
				}
				if cells != nil && !cells.candidate(m, cols, &sc) {
					continue
				}
				row, err := asm.recordOf(fields, cols)
				if err != nil {
					return &dataErr{fmt.Sprintf("row %d", base+i)}
				}
				obj := make(map[string]any, len(row.Fields)+len(extra))
				for _, fl := range extra {
					obj[fl.Name] = fl.Value
				}
				for _, fl := range row.Fields {
					obj[fl.Name] = fl.Value
				}
				buf.Reset()
				if err := enc.Encode(obj); err != nil {
					return &dataErr{fmt.Sprintf("row %d", base+i)}
				}
				rec.ordinal = base + i
				rec.raw = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
				if err := m.matchRecord(rec, &sc, refs, d.Format, res); err != nil {
					return err
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
		base += rg.NumRows()
	}
	return nil
}

// rowCells looks at a Parquet row the way the prefilter looks at a CSV
// row: each leaf value on its own, a string as stored, any other value as
// the text of its JSON form. A row none of whose values is a candidate
// for any subject cannot match: every identifier an exact rule finds
// sits inside one value, so the value's text (or its decoded form, which
// datasetMatcher.owners also tries) holds the pattern. Skipping such rows
// before they are assembled, encoded and matched is what makes a
// one-subject scan cost little more than decoding the needed columns.
type rowCells struct {
	leaves []int
	types  []parquet.Type
	// textual[i]: leaf i's bytes are its text (STRING, ENUM, JSON).
	textual []bool
	row     []string
	rec     rawRecord
}

func newRowCells(s *pqSchema, fields []*pqField) *rowCells {
	rc := &rowCells{}
	var walk func(f *pqField)
	walk = func(f *pqField) {
		if f.col.Leaf() {
			t := f.col.Type()
			textual := false
			if l := t.LogicalType(); l != nil {
				switch l.Value.(type) {
				case *format.StringType, *format.EnumType, *format.JsonType:
					textual = true
				}
			}
			rc.leaves = append(rc.leaves, f.first)
			rc.types = append(rc.types, t)
			rc.textual = append(rc.textual, textual)
			return
		}
		for _, ch := range f.children {
			walk(ch)
		}
	}
	for _, f := range fields {
		walk(f)
	}
	return rc
}

// candidate reports whether the row whose values cols holds may belong
// to one of m's subjects. A value whose JSON form cannot be made makes
// the row a candidate: assembling it then reports the error.
func (rc *rowCells) candidate(m *datasetMatcher, cols [][]parquet.Value, sc *scratch) bool {
	rc.row = rc.row[:0]
	for i, col := range rc.leaves {
		for _, v := range cols[col] {
			if v.IsNull() {
				continue
			}
			if rc.textual[i] {
				b := v.ByteArray()
				rc.row = append(rc.row, unsafe.String(unsafe.SliceData(b), len(b))) // only read
				continue
			}
			x, err := leafJSON(v, rc.types[i])
			if err != nil {
				return true
			}
			if t, ok := cellText(x); ok {
				rc.row = append(rc.row, t)
			}
		}
	}
	rc.rec.row = rc.row
	return len(m.owners(&rc.rec, sc)) > 0
}

// cellText is the text the prefilter sees of a leaf's JSON value.
func cellText(x any) (string, bool) {
	if b, ok := x.(bool); ok {
		return strconv.FormatBool(b), true
	}
	return leafText(x)
}

// extraCandidate reports whether a blob's partition values make its
// every row a candidate for some subject.
func extraCandidate(m *datasetMatcher, extra []sources.Field, sc *scratch) bool {
	if len(extra) == 0 {
		return false
	}
	var row []string
	for _, f := range extra {
		if t, ok := cellText(f.Value); ok {
			row = append(row, t)
		} else if f.Value != nil {
			b, err := json.Marshal(f.Value)
			if err != nil {
				return true
			}
			row = append(row, string(b))
		}
	}
	return len(m.owners(&rawRecord{row: row}, sc)) > 0
}

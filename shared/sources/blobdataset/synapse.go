package blobdataset

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Azure Synapse Link for Dataverse (CSV) datasets, format "synapse".
//
// A Synapse Link container holds model.json (CDM metadata, v1.0) at its
// root and one folder per table of headerless CSV files (partitions such as
// contact/2024.csv; any *.csv blob in the table's folder is read, snapshots
// included: every stored copy is data held). With incremental update
// folders, each timestamped folder holds its own model.json and one folder
// per table with the changes of that interval; every such folder is read
// (any folder next to the root model.json that holds a folder named like
// the table, whatever its name: the folder naming is not confirmed).
// The dataset's Prefix is the folder holding the root model.json ("" for
// the container root) and Entity names the table. The files are found by
// listing, not by model.json's partitions[].location (full URIs of another
// account name or endpoint, and not every stored file is listed there);
// its fileFormatSettings are honoured for the delimiter and refused when
// they say the files have headers or another quoting or encoding.
//
// The columns of a data file are the attributes of its table in the
// model.json of its own folder (the root's, or its timestamp folder's), in
// order. Rows may have fewer fields than that (a column added later: rows
// written before it lack it) or trailing empty fields; a non-empty field
// beyond the listed columns is kept, named _column<n>. The system folders
// (sources.SynapseSystemFolders) are never read.
//
// Append-only tables (and every table with incremental folders) keep each
// version of a row, and a deletion as one more row with IsDelete set.
// Discovery reports every stored row that matches, versions and deletion
// markers included: each is personal data held. Matching sees every cell
// as the string the file holds, as for CSV; export types a cell by its
// attribute's dataType (see synapseValue).
//
// Synapse Link's files are Microsoft's to write ("Data files should not be
// modified by a customer"), so erasure, rectification and restriction refuse
// them (see errSynapseReadOnly): the change belongs in Dataverse, which
// Synapse Link then exports (in-place tables drop or replace the row;
// append-only tables and incremental folders add a new version but keep
// the old ones, which only unlinking the table or deleting the files by
// hand removes).

// synapseReadOnly is the reason a change to a synapse dataset is refused.
const synapseReadOnly = "Synapse Link files are read-only here (Microsoft: data files must not be modified by a customer): " +
	"change the record in Dataverse and let Synapse Link export the change"

// errSynapseReadOnly is Rewrite's answer for a synapse dataset: a
// DataError, so the pipeline gives the dataset's part up at once (no
// retry cures it) with this reason.
func errSynapseReadOnly(d *sources.Dataset) error {
	return &sources.DataError{Dataset: d.Name, Reason: synapseReadOnly}
}

// maxModelJSON bounds the size of a model.json (it lists every table of
// the environment with its attributes and partitions).
const maxModelJSON = 64 << 20

// synapseColumn is one attribute of a table in model.json.
type synapseColumn struct {
	Name     string `json:"name"`
	DataType string `json:"dataType"`
}

// cdmModel is the part of a CDM model.json a synapse dataset needs.
type cdmModel struct {
	Entities []struct {
		Name       string          `json:"name"`
		Attributes []synapseColumn `json:"attributes"`
		Partitions []struct {
			FileFormatSettings *struct {
				ColumnHeaders bool   `json:"columnHeaders"`
				Delimiter     string `json:"delimiter"`
				QuoteStyle    string `json:"quoteStyle"`
				Encoding      string `json:"encoding"`
			} `json:"fileFormatSettings"`
		} `json:"partitions"`
	} `json:"entities"`
}

// synapseSchema is how the data files under one model.json are read.
type synapseSchema struct {
	cols  []synapseColumn
	names []string
	comma rune
}

// parseModelJSON finds entity in a model.json and returns its columns. A
// model.json without the entity gives nil (a timestamp folder whose
// interval did not change the table lists it without partitions, or not
// at all).
func parseModelJSON(b []byte, entity string) (*synapseSchema, error) {
	var m cdmModel
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, errors.New("not a CDM model.json: " + contentFree(err.Error()))
	}
	for _, e := range m.Entities {
		if !strings.EqualFold(e.Name, entity) {
			continue
		}
		if len(e.Attributes) == 0 {
			return nil, fmt.Errorf("entity %s lists no attributes", entity)
		}
		s := &synapseSchema{cols: e.Attributes, comma: ','}
		for _, a := range e.Attributes {
			s.names = append(s.names, a.Name)
		}
		for _, p := range e.Partitions {
			f := p.FileFormatSettings
			if f == nil {
				continue
			}
			if f.ColumnHeaders {
				return nil, fmt.Errorf("entity %s: partitions with column headers are not supported (Synapse Link writes none)", entity)
			}
			if f.Delimiter != "" {
				r, n := utf8.DecodeRuneInString(f.Delimiter)
				if n != len(f.Delimiter) || r == '"' || r == '\r' || r == '\n' || r == utf8.RuneError {
					return nil, fmt.Errorf("entity %s: delimiter %q is not supported", entity, f.Delimiter)
				}
				s.comma = r
			}
			if f.QuoteStyle != "" && f.QuoteStyle != "QuoteStyle.Csv" {
				return nil, fmt.Errorf("entity %s: quote style %q is not supported", entity, f.QuoteStyle)
			}
			if f.Encoding != "" && !strings.EqualFold(f.Encoding, "UTF-8") && !strings.EqualFold(f.Encoding, "UTF8") {
				return nil, fmt.Errorf("entity %s: encoding %q is not supported", entity, f.Encoding)
			}
		}
		return s, nil
	}
	return nil, nil
}

// synapseLayout is what one listing of a synapse dataset's folder found:
// the table's data blobs in name order, and for each the model.json that
// describes it.
type synapseLayout struct {
	blobs  []string
	models map[string]string // data blob -> its model.json
}

// synapseModelOf returns the model.json that describes data blob name of
// dataset d, or ok false when name is not one of the table's data files:
// <prefix><entity>/…/<file>.csv (root model.json) or
// <prefix><folder>/<entity>/…/<file>.csv (<folder>/model.json), never
// under a system folder. Files in subfolders of the table's folder are
// read too (no layout puts them there that is confirmed, but a file of
// the table not read would be data held and not reported).
func synapseModelOf(d *sources.Dataset, name string) (model string, ok bool) {
	rel, found := strings.CutPrefix(name, d.Prefix)
	if !found || !strings.HasSuffix(strings.ToLower(rel), ".csv") {
		return "", false
	}
	parts := strings.Split(rel, "/")
	switch {
	case len(parts) >= 2 && strings.EqualFold(parts[0], d.Entity):
		return d.Prefix + "model.json", true
	case len(parts) >= 3 && parts[0] != "" && !sources.IsSynapseSystemFolder(parts[0]) && strings.EqualFold(parts[1], d.Entity):
		return d.Prefix + parts[0] + "/model.json", true
	}
	return "", false
}

// synapseBlobs lists the table's data blobs under d.Prefix.
func (c *Connector) synapseBlobs(ctx context.Context, d *sources.Dataset) (*synapseLayout, error) {
	names, err := c.store.list(ctx, d.Container, d.Prefix)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", d.Name, err)
	}
	sort.Strings(names)
	l := &synapseLayout{models: map[string]string{}}
	haveModel := map[string]bool{}
	for _, n := range names {
		if rel := strings.TrimPrefix(n, d.Prefix); rel == "model.json" || (strings.Count(rel, "/") == 1 && strings.HasSuffix(rel, "/model.json")) {
			haveModel[n] = true
		}
	}
	if !haveModel[d.Prefix+"model.json"] {
		return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("no model.json in %s/%s: not the folder of a Synapse Link export", d.Container, d.Prefix)}
	}
	for _, n := range names {
		m, ok := synapseModelOf(d, n)
		if !ok {
			continue
		}
		if !haveModel[m] {
			return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("data file %s has no %s next to it", n, m)}
		}
		l.blobs = append(l.blobs, n)
		l.models[n] = m
	}
	return l, nil
}

// synapseSchema loads the schema of entity from model.json blob name,
// caching by name in cache.
func (c *Connector) synapseSchema(ctx context.Context, d *sources.Dataset, name string, cache map[string]*synapseSchema) (*synapseSchema, error) {
	if s, ok := cache[name]; ok {
		return s, nil
	}
	body, _, err := c.store.open(ctx, d.Container, name)
	if errors.Is(err, errBlobNotFound) {
		return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("%s/%s not found", d.Container, name)}
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read %s: %w", d.Name, name, err)
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(transportReader{body}, maxModelJSON+1))
	if err != nil {
		return nil, fmt.Errorf("dataset %s: read %s: %w", d.Name, name, err)
	}
	if len(b) > maxModelJSON {
		return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("%s is larger than %d bytes", name, maxModelJSON)}
	}
	s, err := parseModelJSON(b, d.Entity)
	if err != nil {
		return nil, &sources.DataError{Dataset: d.Name, Reason: name + ": " + err.Error()}
	}
	if s == nil {
		return nil, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("%s does not describe table %s, but data files of it are next to it", name, d.Entity)}
	}
	cache[name] = s
	return s, nil
}

// scanSynapse is scan for a synapse dataset: the same matching over the
// table's data files, each read with the columns of its model.json.
func (c *Connector) scanSynapse(ctx context.Context, d *sources.Dataset, due []*subjectState) ([]scanResult, error) {
	m := newDatasetMatcher(c.cfg, d, due)
	refs := c.cfg.ReferencedFields(d.Name)
	l, err := c.synapseBlobs(ctx, d)
	if err != nil {
		return nil, err
	}
	cache := map[string]*synapseSchema{}
	schemas := make([]*synapseSchema, len(l.blobs))
	for i, n := range l.blobs {
		if schemas[i], err = c.synapseSchema(ctx, d, l.models[n], cache); err != nil {
			return nil, err
		}
	}
	blobs := make([]blobResult, len(l.blobs))
	err = c.forEachBlob(ctx, len(l.blobs), func(ctx context.Context, i int) error {
		var err error
		blobs[i], err = c.scanSynapseBlob(ctx, d, l.blobs[i], schemas[i], m, refs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return assemble(d, len(due), l.blobs, blobs), nil
}

// scanSynapseBlob is scanBlob for one data file of a synapse table.
func (c *Connector) scanSynapseBlob(ctx context.Context, d *sources.Dataset, name string, s *synapseSchema, m *datasetMatcher, refs []string) (blobResult, error) {
	body, etag, err := c.store.open(ctx, d.Container, name)
	if errors.Is(err, errBlobNotFound) {
		return blobResult{}, &sources.DataError{Dataset: d.Name, Reason: fmt.Sprintf("blob %s/%s not found", d.Container, name)}
	}
	if err != nil {
		return blobResult{}, fmt.Errorf("dataset %s: read blob %s: %w", d.Name, name, err)
	}
	defer body.Close()
	res := blobResult{etag: etag}
	var sc scratch
	err = iterateHeaderless(ctx, transportReader{body}, s, func(r *rawRecord) error {
		return m.matchRecord(r, &sc, refs, d.Format, &res)
	})
	if err != nil {
		var te *transportError
		if errors.As(err, &te) || ctx.Err() != nil {
			return blobResult{}, fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
		}
		return blobResult{}, &sources.DataError{Dataset: d.Name, Reason: "blob " + name + ": " + contentFree(err.Error())}
	}
	return res, nil
}

// iterateHeaderless calls fn for each row of a headerless CSV blob whose
// columns are s's: rawRecord.header is s.names, rows may have fewer or more
// fields (see the package comment on synapse datasets). Offsets and lengths
// are as for CSV (from the end of the previous row, or the blob's start).
func iterateHeaderless(ctx context.Context, rd io.Reader, s *synapseSchema, fn func(*rawRecord) error) error {
	br, release := pooledReader(rd)
	defer release()
	cr := csv.NewReader(br)
	cr.Comma = s.comma
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	rec := &rawRecord{header: s.names}
	var n, prevEnd int64
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("csv record at line %d: %v", pe.StartLine, pe.Err)
			}
			return fmt.Errorf("read csv: %w", err)
		}
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if n == 0 && len(row) > 0 {
			row[0] = strings.TrimPrefix(row[0], "\ufeff")
		}
		rowEnd := cr.InputOffset()
		rec.ordinal, rec.row = n, row
		rec.offset, rec.length = prevEnd, rowEnd-prevEnd
		prevEnd = rowEnd
		n++
		if err := fn(rec); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

// synapseRecord is a row as export gives it: one field per column, in
// model.json order, typed by synapseValue; columns the row lacks are left
// out, and non-empty fields beyond the columns are named _column<n>
// (1-based).
func synapseRecord(s *synapseSchema, row []string) sources.Record {
	rec := sources.Record{Fields: make([]sources.Field, 0, len(s.cols))}
	for i, cell := range row {
		if i < len(s.cols) {
			rec.Fields = append(rec.Fields, sources.Field{Name: s.cols[i].Name, Value: synapseValue(cell, s.cols[i].DataType)})
		} else if cell != "" {
			rec.Fields = append(rec.Fields, sources.Field{Name: "_column" + strconv.Itoa(i+1), Value: cell})
		}
	}
	return rec
}

// synapseValue types one cell by its CDM dataType. Synapse Link writes
// null as an empty field: an empty cell of a non-string type is null (of a
// string, "" since the two cannot be told apart). int64, double and
// decimal cells that are JSON numbers become numbers (exact, as written);
// boolean cells True/False (any case) or 1/0 become booleans. Everything
// else stays the exact string, dates included: Synapse Link writes
// SinkCreatedOn and SinkModifiedOn as "6/28/2021 4:34:35 PM", other dates
// in ISO 8601 forms.
func synapseValue(cell, dataType string) any {
	switch strings.ToLower(dataType) {
	case "", "string", "guid", "json":
		return cell
	}
	if cell == "" {
		return nil
	}
	switch strings.ToLower(dataType) {
	case "int64", "double", "decimal":
		if (cell[0] == '-' || (cell[0] >= '0' && cell[0] <= '9')) && json.Valid([]byte(cell)) {
			return json.Number(cell)
		}
	case "boolean":
		switch strings.ToLower(cell) {
		case "true", "1":
			return true
		case "false", "0":
			return false
		}
	}
	return cell
}

// readSynapse is Read for one location of a synapse dataset: it emits the
// records at the ordinals, typed by the columns of the file's model.json
// as it is now (columns are only ever added, at the end), reading the data
// file conditionally on the ETag discovery saw. With byte positions it
// fetches only the records' bytes, as Read does for CSV (records close
// together share a request); without, it streams the file up to the last
// ordinal.
func (c *Connector) readSynapse(ctx context.Context, d *sources.Dataset, loc sources.Location, cache map[string]*synapseSchema, buf *[]byte, emit func(sources.Record) error) error {
	model, ok := synapseModelOf(d, loc.Blob)
	if !ok {
		return fmt.Errorf("%w (the blob is not a data file of table %s)", sources.ErrChanged, d.Entity)
	}
	s, err := c.synapseSchema(ctx, d, model, cache)
	if err != nil {
		return err
	}
	if positioned(loc, d.Format) {
		return c.readSynapseRanges(ctx, d, loc, s, buf, emit)
	}
	body, _, err := c.reader.read(ctx, d.Container, loc.Blob, loc.ETag, 0, 0)
	if err != nil {
		return readErr(err)
	}
	defer body.Close()
	next := 0
	err = iterateHeaderless(ctx, body, s, func(r *rawRecord) error {
		if next == len(loc.Ordinals) {
			return errStop
		}
		if r.ordinal != loc.Ordinals[next] {
			return nil
		}
		if len(loc.Offsets) == len(loc.Ordinals) && (r.offset != loc.Offsets[next] || r.length != loc.Lengths[next]) {
			return fmt.Errorf("%w (record %d is not at the position discovery recorded)", sources.ErrChanged, r.ordinal)
		}
		next++
		return emit(synapseRecord(s, r.row))
	})
	if err != nil {
		return err
	}
	if next != len(loc.Ordinals) {
		return fmt.Errorf("%w (records missing)", sources.ErrChanged)
	}
	return nil
}

// readSynapseRanges reads the records of loc with ranged downloads: each
// record with the byte before it, records less than readGap apart in one
// request of at most readChunk bytes (unless one record is longer).
func (c *Connector) readSynapseRanges(ctx context.Context, d *sources.Dataset, loc sources.Location, s *synapseSchema, buf *[]byte, emit func(sources.Record) error) error {
	offs, lens := loc.Offsets, loc.Lengths
	for i := 0; i < len(offs); {
		start, end := max(0, offs[i]-1), offs[i]+lens[i]
		k := i + 1
		for ; k < len(offs); k++ {
			if offs[k]-1-end >= readGap || max(end, offs[k]+lens[k])-start > readChunk {
				break
			}
			end = max(end, offs[k]+lens[k])
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		b, size, err := c.fetch(ctx, d, loc, start, end, buf)
		if err != nil {
			return err
		}
		for j := i; j < k; j++ {
			off, l := offs[j], lens[j]
			prev := -1
			if off > 0 {
				prev = int(b[off-1-start])
			}
			row, err := parseSynapseRow(s, b[off-start:off+l-start], prev, off+l == size)
			if err != nil {
				// The reason stays out: it may quote the record.
				return fmt.Errorf("%w (record %d is not at the position discovery recorded)", sources.ErrChanged, loc.Ordinals[j])
			}
			if off == 0 && len(row) > 0 {
				row[0] = strings.TrimPrefix(row[0], "\ufeff")
			}
			if err := emit(synapseRecord(s, row)); err != nil {
				return err
			}
		}
		i = k
	}
	return nil
}

// parseSynapseRow parses the bytes of one row at the position discovery
// recorded, checking that they are one whole row: after a line ending (or
// at the blob's start, prev -1), ending a line (or the blob), one row.
func parseSynapseRow(s *synapseSchema, b []byte, prev int, atEnd bool) ([]string, error) {
	if len(b) == 0 || (prev >= 0 && prev != '\n') || (b[len(b)-1] != '\n' && !atEnd) {
		return nil, errors.New("not one whole row")
	}
	cr := csv.NewReader(strings.NewReader(string(b)))
	cr.Comma = s.comma
	cr.FieldsPerRecord = -1
	row, err := cr.Read()
	if err != nil {
		return nil, err
	}
	if _, err := cr.Read(); err != io.EOF {
		return nil, errors.New("more than one row")
	}
	return row, nil
}

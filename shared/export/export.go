package export

import (
	"archive/zip"
	"bufio"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/letter"
	"github.com/dsr-functions/dsr/shared/sources"
	"golang.org/x/sync/errgroup"
)

// Format is the value of manifest.json's "format" field.
const Format = "dsr-export/v1"

// Entry names in the archive.
const (
	ManifestName = "manifest.json"
	SummaryName  = "summary.txt"
	// LetterName is the answer to read first (shared/letter).
	LetterName = "letter.html"
)

// Request is what the package says about the request (never the subject's
// identifiers).
type Request struct {
	// ID is the request's reference, shown to the subject.
	ID string
	// Type is the request type, for example "access".
	Type string
	// CreatedAt is when the request was recorded.
	CreatedAt time.Time
	// ReceivedAt is when the request was received (the deadline runs from it).
	ReceivedAt time.Time
	// DueAt is when the answer is due.
	DueAt time.Time
}

// Dataset is one source of records for the package.
type Dataset struct {
	// Name identifies the dataset and names its data files; it must match
	// [a-z0-9][a-z0-9-]{0,62} and be unique among the datasets of one Write.
	Name string
	// Description is a human-readable line for the summary and manifest.
	Description string
	// Facts are the Art. 15 facts reported for this dataset.
	Facts sources.Facts
	// Read streams the subject's records of this dataset; it is called
	// exactly once. It must call emit from one goroutine at a time and not
	// after returning; if emit returns an error, Read should stop and return
	// it (Write fails either way).
	Read func(ctx context.Context, emit func(sources.Record) error) error
	// Unavailable, when set, says why the dataset's system could not be
	// searched; Read is then not called and the package says so.
	Unavailable string
	// Kept, when set, says why the dataset still holds records of the
	// subject after an erasure she asked for.
	Kept *dsr.KeptAfterErasure
	// Schema adds schemas/<name>.schema.json, a JSON Schema of the
	// dataset's JSON file (portability: another controller imports it).
	Schema bool
}

// keptSentence says in plain words why the records were kept.
func keptSentence(k *dsr.KeptAfterErasure) string {
	when := humanTime(k.ErasedAt)
	switch k.Action {
	case "retained":
		s := fmt.Sprintf("kept after your erasure request %s (%s): retained unchanged because %s", k.RequestID, when, k.Ground)
		if k.LegalBasis != "" {
			s += " (legal basis: " + k.LegalBasis + ")"
		}
		if k.RetainUntil != "" {
			s += ", until " + k.RetainUntil
		}
		return s
	case "masked":
		return fmt.Sprintf("kept after your erasure request %s (%s) with %s masked; the rest of each record is kept for the purposes and period stated here",
			k.RequestID, when, listOr(k.Fields, "the identifying fields"))
	}
	return fmt.Sprintf("kept after your erasure request %s (%s)", k.RequestID, when)
}

// Result describes the written package.
type Result struct {
	// Bytes is the number of bytes written to the io.Writer.
	Bytes int64
	// SHA256 is the lower-case hex SHA-256 of the ZIP bytes written.
	SHA256 string
	// Records is the number of records over all datasets.
	Records int64
	// Datasets gives the record count of every dataset, in input order.
	Datasets []DatasetCount
}

// DatasetCount is the number of records a dataset contributed.
type DatasetCount struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
}

// readDatasets is how many datasets Write reads at once.
const readDatasets = 4

// compressionLevel trades archive size for speed: exports can be hundreds of
// megabytes and deflate dominates Write's CPU time, while the archive's size
// matters little. flate.BestSpeed is about twice as fast as archive/zip's
// default level for about a third more bytes on text-heavy records.
const compressionLevel = flate.BestSpeed

// deflaters keeps compressors for reuse. flate.NewWriter allocates and
// clears about 650 KiB of tables, and a package has an entry for every
// dataset besides the letter, the manifest and the schemas: for the small
// package most requests get, that was most of Write's CPU time.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, compressionLevel) // the level is valid
	return w
}}

// pooledDeflate is archive/zip's compressor for Deflate entries, from
// deflaters.
func pooledDeflate(w io.Writer) (io.WriteCloser, error) {
	fw := deflaters.Get().(*flate.Writer)
	fw.Reset(w)
	return &pooledDeflater{fw}, nil
}

// pooledDeflater gives its compressor back when the entry is closed (an
// entry abandoned after an error leaves it to the garbage collector).
type pooledDeflater struct{ *flate.Writer }

func (p *pooledDeflater) Close() error {
	if p.Writer == nil {
		return nil
	}
	err := p.Writer.Close()
	p.Writer.Reset(io.Discard) // let go of the archive
	deflaters.Put(p.Writer)
	p.Writer = nil
	return err
}

var datasetName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Write streams a ZIP package to w and returns its size and SHA-256 (computed
// over exactly the bytes written to w). generatedAt is used for the manifest
// and as every entry's modification time so the same inputs give
// byte-identical output; it is converted to UTC and must not be zero.
//
// Each dataset's Read is called once, before anything is written to w,
// up to readDatasets of them at a time (the first failure cancels the
// others' ctx); each dataset's records are spooled to a temporary file,
// removed before Write returns. Write stops with ctx's error if ctx is
// cancelled (checked between records). On error w may have received a
// partial archive that must be discarded, and the Result is zero.
func Write(ctx context.Context, w io.Writer, req Request, datasets []Dataset, generatedAt time.Time) (res Result, err error) {
	res, err = write(ctx, w, req, datasets, generatedAt)
	if err != nil {
		return Result{}, fmt.Errorf("export: %w", err)
	}
	return res, nil
}

func write(ctx context.Context, w io.Writer, req Request, datasets []Dataset, generatedAt time.Time) (res Result, err error) {
	if err := validate(datasets, generatedAt); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	generatedAt = generatedAt.UTC()

	// Each dataset's records go to a spool file of its own, readDatasets
	// datasets at a time: read one after another, a request waited a
	// storage round trip (or a system's answer) per dataset.
	spools := make([]*spool, len(datasets))
	defer func() {
		for _, sp := range spools {
			if sp == nil {
				continue
			}
			if rmErr := sp.remove(); rmErr != nil && err == nil {
				res, err = Result{}, rmErr
			}
		}
	}()
	parts := make([]spooled, len(datasets))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(readDatasets)
	for i, d := range datasets {
		if d.Unavailable != "" {
			continue
		}
		sp, err := newSpool()
		if err != nil {
			_ = g.Wait()
			return Result{}, err
		}
		spools[i] = sp
		g.Go(func() error {
			p, err := sp.add(gctx, d)
			if err == nil {
				err = sp.flush()
			}
			if err != nil {
				return fmt.Errorf("dataset %q: %w", d.Name, err)
			}
			parts[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}

	counts := make([]DatasetCount, len(datasets))
	var total int64
	for i, d := range datasets {
		counts[i] = DatasetCount{Name: d.Name, Records: parts[i].records}
		total += parts[i].records
	}

	hw := &hashingWriter{w: w, h: sha256.New()}
	zw := zip.NewWriter(hw)
	zw.RegisterCompressor(zip.Deflate, pooledDeflate)

	manifest, err := buildManifest(req, datasets, parts, total, generatedAt)
	if err != nil {
		return Result{}, err
	}
	if err := writeEntry(zw, ManifestName, generatedAt, func(ew io.Writer) error {
		_, err := ew.Write(manifest)
		return err
	}); err != nil {
		return Result{}, err
	}
	if err := writeEntry(zw, SummaryName, generatedAt, func(ew io.Writer) error {
		_, err := io.WriteString(ew, buildSummary(req, datasets, parts, total, generatedAt))
		return err
	}); err != nil {
		return Result{}, err
	}

	if err := writeEntry(zw, LetterName, generatedAt, func(ew io.Writer) error {
		return letter.Render(ew, buildLetter(req, datasets, parts, generatedAt))
	}); err != nil {
		return Result{}, err
	}

	for i, d := range datasets {
		p := parts[i]
		if p.records == 0 {
			continue
		}
		if err := writeEntry(zw, jsonName(d.Name), generatedAt, func(ew io.Writer) error {
			return spools[i].writeJSON(ctx, ew, p)
		}); err != nil {
			return Result{}, fmt.Errorf("dataset %q: %w", d.Name, err)
		}
		if err := writeEntry(zw, csvName(d.Name), generatedAt, func(ew io.Writer) error {
			return spools[i].writeCSV(ctx, ew, p)
		}); err != nil {
			return Result{}, fmt.Errorf("dataset %q: %w", d.Name, err)
		}
		if p.types != nil {
			schema, err := p.types.schema(d, p.columns, p.records)
			if err != nil {
				return Result{}, fmt.Errorf("dataset %q: %w", d.Name, err)
			}
			if err := writeEntry(zw, schemaName(d.Name), generatedAt, func(ew io.Writer) error {
				_, err := ew.Write(schema)
				return err
			}); err != nil {
				return Result{}, fmt.Errorf("dataset %q: %w", d.Name, err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		return Result{}, fmt.Errorf("finish zip: %w", err)
	}
	return Result{
		Bytes:    hw.n,
		SHA256:   hex.EncodeToString(hw.h.Sum(nil)),
		Records:  total,
		Datasets: counts,
	}, nil
}

func validate(datasets []Dataset, generatedAt time.Time) error {
	if generatedAt.IsZero() {
		return errors.New("generatedAt is required")
	}
	seen := make(map[string]bool, len(datasets))
	for i, d := range datasets {
		if !datasetName.MatchString(d.Name) {
			return fmt.Errorf("datasets[%d]: name %q must match %s", i, d.Name, datasetName)
		}
		if seen[d.Name] {
			return fmt.Errorf("datasets[%d]: duplicate dataset %q", i, d.Name)
		}
		seen[d.Name] = true
		if d.Read == nil && d.Unavailable == "" {
			return fmt.Errorf("datasets[%d] (%q): Read is nil", i, d.Name)
		}
	}
	return nil
}

func jsonName(dataset string) string { return "data/" + dataset + ".json" }
func csvName(dataset string) string  { return "data/" + dataset + ".csv" }

// writeEntry adds a deflated entry named name, modified at mod, whose
// content fill writes.
func writeEntry(zw *zip.Writer, name string, mod time.Time, fill func(io.Writer) error) error {
	fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mod}
	fh.SetMode(0o644)
	ew, err := zw.CreateHeader(fh)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if err := fill(ew); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeJSON writes the records of p as a JSON array, one record per line.
// The spool lines are already compact JSON objects in source field order,
// so they are copied as they are.
func (s *spool) writeJSON(ctx context.Context, w io.Writer, p spooled) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	if _, err := bw.WriteString("[\n"); err != nil {
		return err
	}
	first := true
	err := s.lines(ctx, p, func(line []byte) error {
		if !first {
			bw.WriteString(",\n")
		}
		first = false
		bw.WriteString("  ")
		_, err := bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := bw.WriteString("\n]\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// writeCSV writes the records of p as CSV with the column union as header.
func (s *spool) writeCSV(ctx context.Context, w io.Writer, p spooled) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(p.columns))
	index := make(map[string]int, len(p.columns))
	for i, c := range p.columns {
		header[i] = guardFormula(c)
		index[c] = i
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	var (
		row    = make([]string, len(p.columns))
		set    = make([]bool, len(p.columns))
		fields []sources.Field
		cells  cellEncoder
		n      int64
	)
	err := s.lines(ctx, p, func(line []byte) error {
		n++
		var err error
		if fields, err = decodeRecord(line, fields[:0]); err != nil {
			return fmt.Errorf("spool record %d: %w", n, err)
		}
		clear(row)
		clear(set)
		for _, f := range fields {
			i, ok := index[f.Name]
			if !ok {
				return fmt.Errorf("spool record %d: field %q is not a known column", n, f.Name)
			}
			if set[i] {
				continue // repeated name: the first value wins in CSV
			}
			set[i] = true
			if row[i], err = cells.cell(f.Value); err != nil {
				return fmt.Errorf("record %d: field %q: %w", n, f.Name, err)
			}
		}
		clear(fields) // drop references to this record's values
		return cw.Write(row)
	})
	if err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// hashingWriter forwards to w and hashes and counts exactly the bytes w
// accepted.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	if n < 0 || n > len(p) {
		return 0, fmt.Errorf("write output: writer reported %d bytes written of %d", n, len(p))
	}
	if n > 0 {
		hw.h.Write(p[:n])
		hw.n += int64(n)
	}
	if err != nil {
		return n, fmt.Errorf("write output: %w", err)
	}
	if n < len(p) {
		return n, fmt.Errorf("write output: %w", io.ErrShortWrite)
	}
	return n, nil
}

// buildLetter is the package's letter: what each dataset held, its facts,
// and why records were kept after an erasure.
func buildLetter(req Request, datasets []Dataset, parts []spooled, generatedAt time.Time) letter.Letter {
	l := letter.Letter{RequestID: req.ID, Type: dsr.Type(req.Type), ReceivedAt: req.ReceivedAt, AnsweredAt: generatedAt}
	for i, d := range datasets {
		l.Sources = append(l.Sources, letter.Source{Name: d.Name, Description: d.Description, Records: parts[i].records,
			Facts: d.Facts, Unavailable: d.Unavailable, Kept: d.Kept})
	}
	return l
}

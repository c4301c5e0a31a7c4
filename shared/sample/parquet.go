package sample

// The "parquet" sample format: the same datasets, records and demo subject
// as the native sample, each dataset one Parquet file under ParquetPrefix
// in Container (sample/sources.parquet.json describes them).
//
// Each file is made by generating the native file (NDJSON, CSV or JSON
// array) into a pipe and converting it record by record: memory holds one
// row group of at most ParquetGroupRows rows per file being written, never
// the file. Columns keep their logical types: strings are STRING byte
// arrays, integers INT64, and dates and times TIMESTAMP(MILLIS, UTC).
// Which field has which type is declared per dataset below (parquetSchemas)
// and checked against every record converted: a record with a field the
// declaration lacks, a missing required field, or a value of another type
// fails the write, so the declaration cannot silently fall behind the
// generator. Fields the native format may write as null are optional
// columns.
//
// Contacts have one column the native sample does not write: dsr_restricted
// (optional BOOLEAN, always null here), the dataset's restrictionField. A
// Parquet rewrite keeps the file's schema and cannot add a column, so the
// column must exist for restriction to set it.

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
)

// ParquetPrefix is the folder of the Parquet sample's files in Container.
const ParquetPrefix = "parquet/"

// ParquetGroupRows is the largest row group the Parquet sample writes, in
// rows.
var ParquetGroupRows int64 = 64 << 10

func init() { RegisterFormat("parquet", writeParquet) }

// ParquetBlob is the blob name of native file f's Parquet counterpart:
// "crm/contacts.ndjson" becomes "parquet/crm/contacts.parquet".
func ParquetBlob(name string) string {
	return ParquetPrefix + strings.TrimSuffix(name, path.Ext(name)) + ".parquet"
}

// pqKind is a column's type.
type pqKind int

const (
	pqString pqKind = iota // STRING
	pqInt                  // INT64
	pqTime                 // TIMESTAMP(MILLIS, isAdjustedToUTC)
	pqBool                 // BOOLEAN
)

// pqCol is one column of a dataset's Parquet schema.
type pqCol struct {
	name     string
	kind     pqKind
	optional bool
	// extra: a column the native format does not write (always null).
	extra bool
}

// parquetSchemas declares each dataset's columns, in the order the
// generator writes the fields.
var parquetSchemas = map[string][]pqCol{
	ContactsBlob: {
		{name: "contactid"}, {name: "fullname"}, {name: "firstname"}, {name: "lastname"},
		{name: "emailaddress1", optional: true}, {name: "telephone1", optional: true},
		{name: "address1_city"}, {name: "createdon", kind: pqTime}, {name: "preferredcontactmethodcode", kind: pqInt},
		{name: "dsr_restricted", kind: pqBool, optional: true, extra: true},
	},
	CasesBlob: {
		{name: "incidentid"}, {name: "ticketnumber"}, {name: "title"}, {name: "description"},
		{name: "customerid"}, {name: "ownerid"}, {name: "createdon", kind: pqTime}, {name: "statuscode", kind: pqInt},
	},
	AgentsBlob: {
		{name: "systemuserid"}, {name: "fullname"}, {name: "internalemailaddress"}, {name: "title"}, {name: "businessunit"},
	},
	SurveysBlob: {
		{name: "responseid"}, {name: "incidentid"}, {name: "respondentemail", optional: true},
		{name: "score", kind: pqInt}, {name: "comment"}, {name: "submittedon", kind: pqTime},
	},
	ActivityBlob: {
		{name: "eventid"}, {name: "timestamp", kind: pqTime}, {name: "actor"}, {name: "operation"},
		{name: "entity"}, {name: "entityid"}, {name: "details"},
	},
}

// parquetSchema builds the Parquet schema of cols, keeping their order (a
// parquet.Group would sort them by name): from a struct type whose fields
// carry the columns' tags.
func parquetSchema(cols []pqCol) *parquet.Schema {
	fields := make([]reflect.StructField, len(cols))
	for i, c := range cols {
		var typ reflect.Type
		tag := c.name
		switch c.kind {
		case pqString:
			typ = reflect.TypeFor[string]()
		case pqInt:
			typ = reflect.TypeFor[int64]()
		case pqTime:
			typ = reflect.TypeFor[int64]()
			tag += ",timestamp(millisecond:utc)"
		case pqBool:
			typ = reflect.TypeFor[bool]()
		}
		if c.optional {
			typ = reflect.PointerTo(typ)
			tag += ",optional"
		}
		fields[i] = reflect.StructField{Name: "F" + strconv.Itoa(i), Type: typ, Tag: reflect.StructTag(`parquet:"` + tag + `"`)}
	}
	return parquet.SchemaOf(reflect.New(reflect.StructOf(fields)).Interface())
}

// writeParquet writes every file of Files as Parquet.
func writeParquet(ctx context.Context, sink Sink, size Size, seed uint64) error {
	for _, f := range Files() {
		if err := sink.Write(ctx, f.Container, ParquetBlob(f.Name), func(w io.Writer) error {
			return GenerateParquet(ctx, w, f, size, seed)
		}); err != nil {
			return err
		}
	}
	return nil
}

// GenerateParquet writes native file f of the sample as a Parquet file to
// w, streaming: the native file is generated into a pipe and converted
// record by record into row groups of at most ParquetGroupRows rows.
func GenerateParquet(ctx context.Context, w io.Writer, f File, size Size, seed uint64) error {
	cols, ok := parquetSchemas[f.Name]
	if !ok {
		return fmt.Errorf("sample: no Parquet schema for %s/%s", f.Container, f.Name)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(Generate(pw, f, size, seed)) }()
	defer pr.Close() // stops the generator if conversion fails
	schema := parquetSchema(cols)
	out := parquet.NewWriter(w, schema,
		parquet.MaxRowsPerRowGroup(ParquetGroupRows),
		parquet.Compression(&parquet.Snappy),
		parquet.CreatedBy("dsr sample", "", ""),
		parquet.KeyValueMetadata("dsr.sample", fmt.Sprintf("%s %s size=%s seed=%d", f.Container, f.Name, size, seed)))
	conv := &pqConverter{cols: cols, file: f.Name}
	batch := make([]parquet.Row, 0, 256)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := out.WriteRows(batch)
		batch = batch[:0]
		return err
	}
	add := func(rec map[string]any) error {
		row, err := conv.row(rec)
		if err != nil {
			return err
		}
		batch = append(batch, row)
		if len(batch) == cap(batch) {
			return flush()
		}
		return nil
	}
	var err error
	switch path.Ext(f.Name) {
	case ".ndjson":
		err = eachNDJSON(pr, add)
	case ".csv":
		err = eachCSV(pr, add)
	case ".json":
		err = eachJSONArray(pr, add)
	default:
		err = fmt.Errorf("sample: no reader for %s", f.Name)
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("sample: %s as Parquet: %w", f.Name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("sample: %s as Parquet: %w", f.Name, err)
	}
	return nil
}

// eachNDJSON calls fn with every line of r as a JSON object (numbers as
// json.Number).
func eachNDJSON(r io.Reader, fn func(map[string]any) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		d := json.NewDecoder(strings.NewReader(sc.Text()))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return sc.Err()
}

// eachCSV calls fn with every row of r after the header, as an object of
// strings by column name.
func eachCSV(r io.Reader, fn func(map[string]any) error) error {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return err
	}
	header = append([]string(nil), header...)
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		m := make(map[string]any, len(header))
		for i, name := range header {
			m[name] = row[i]
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// eachJSONArray calls fn with every element of the JSON array r, decoding
// one element at a time.
func eachJSONArray(r io.Reader, fn func(map[string]any) error) error {
	d := json.NewDecoder(r)
	d.UseNumber()
	if tok, err := d.Token(); err != nil || tok != json.Delim('[') {
		return errors.New("not a JSON array")
	}
	for d.More() {
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	_, err := d.Token()
	return err
}

// pqConverter turns native records into rows of cols.
type pqConverter struct {
	cols []pqCol
	file string
	n    int64
}

// row converts rec, checking that its fields are exactly the declared
// (non-extra) columns with values of their types.
func (c *pqConverter) row(rec map[string]any) (parquet.Row, error) {
	c.n++
	row := make(parquet.Row, len(c.cols))
	seen := 0
	for i, col := range c.cols {
		x, ok := rec[col.name]
		if col.extra {
			if ok {
				return nil, fmt.Errorf("record %d: field %q is declared as not written by the generator", c.n, col.name)
			}
			row[i] = parquet.NullValue().Level(0, 0, i)
			continue
		}
		if !ok {
			return nil, fmt.Errorf("record %d: no field %q", c.n, col.name)
		}
		seen++
		def := 0
		if col.optional {
			def = 1
		}
		if x == nil {
			if !col.optional {
				return nil, fmt.Errorf("record %d: field %q is null but its column is required", c.n, col.name)
			}
			row[i] = parquet.NullValue().Level(0, 0, i)
			continue
		}
		v, err := pqValue(col.kind, x)
		if err != nil {
			return nil, fmt.Errorf("record %d: field %q: %w", c.n, col.name, err)
		}
		row[i] = v.Level(0, def, i)
	}
	if seen != len(rec) {
		for k := range rec {
			if !pqDeclared(c.cols, k) {
				return nil, fmt.Errorf("record %d: field %q has no column (declare it in parquetSchemas)", c.n, k)
			}
		}
	}
	return row, nil
}

func pqDeclared(cols []pqCol, name string) bool {
	for _, c := range cols {
		if c.name == name && !c.extra {
			return true
		}
	}
	return false
}

// pqValue is the Parquet value of native value x (a string, a json.Number,
// or a CSV cell) for a column of kind k.
func pqValue(k pqKind, x any) (parquet.Value, error) {
	var s string
	switch y := x.(type) {
	case string:
		s = y
	case json.Number:
		if k != pqInt {
			return parquet.Value{}, errors.New("a number where the column is not INT64")
		}
		s = y.String()
	case bool:
		if k != pqBool {
			return parquet.Value{}, errors.New("a boolean where the column is not BOOLEAN")
		}
		return parquet.BooleanValue(y), nil
	default:
		return parquet.Value{}, fmt.Errorf("a %T value", x)
	}
	switch k {
	case pqString:
		if _, isNum := x.(json.Number); isNum {
			return parquet.Value{}, errors.New("a number where the column is STRING")
		}
		return parquet.ByteArrayValue([]byte(s)), nil
	case pqInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return parquet.Value{}, errors.New("not an integer")
		}
		return parquet.Int64Value(n), nil
	case pqTime:
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return parquet.Value{}, errors.New("not an RFC 3339 time")
		}
		if t.Nanosecond()%int(time.Millisecond) != 0 {
			return parquet.Value{}, errors.New("a time finer than milliseconds")
		}
		return parquet.Int64Value(t.UnixMilli()), nil
	case pqBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return parquet.Value{}, errors.New("not a boolean")
		}
		return parquet.BooleanValue(b), nil
	}
	return parquet.Value{}, errors.New("unknown column kind")
}

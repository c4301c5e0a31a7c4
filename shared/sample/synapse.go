package sample

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The "synapse" sample format: the sample as Azure Synapse Link for
// Dataverse exports it to a data lake (CSV), under SynapsePrefix in
// Container, as sample/sources.synapse.json describes it:
//
//	synapse/model.json                 CDM v1.0 metadata of every table
//	synapse/<table>/<year>.csv         headerless rows, partitioned by year
//	synapse/2026-01-15T10.15.00Z/      an incremental update folder: its own
//	  model.json, contact/2026.csv     model.json and new versions of a few
//	                                   contacts (and one deletion marker)
//	synapse/2026-01-15T10.30.00Z/      an interval that changed nothing: a
//	  model.json                       model.json whose tables have no partitions
//
// Every native record becomes one row of its table, with the same field
// names and values, after the columns Synapse Link adds (Id,
// SinkCreatedOn, SinkModifiedOn) and before versionnumber and IsDelete.
// The contact table has one more column at the end, msdyn_gdproptout,
// "added later": the rows of the yearly files lack it (they are shorter
// than model.json says), the incremental folder's rows carry it.
//
// The incremental folder's rows are new versions of contacts other than
// the demo subject, her namesake and the decoys (no row of it holds her
// email, phone, contact id or anything like them), so the demo subject's
// counts (Demo) are those of the native sample; the table does hold more
// records than contacts.ndjson (the older versions stay: append-only).
//
// Generation streams: each table is generated once to learn its columns'
// types and years, then once per year, writing one partition file at a time.
func init() { RegisterFormat("synapse", writeSynapse) }

// SynapsePrefix is the folder of the synapse sample in Container.
const SynapsePrefix = "synapse/"

// SynapseFolders are the sample's incremental update folders: the first
// holds changes to contacts, the second (an interval with no change) only
// its model.json.
var SynapseFolders = []string{"2026-01-15T10.15.00Z", "2026-01-15T10.30.00Z"}

// SynapseChanged is how many contacts the incremental folder changes (one
// more is deleted: a row with IsDelete set).
const SynapseChanged = 3

// synapseTable maps one native dataset file to a Synapse Link table.
type synapseTable struct {
	file   string
	entity string
	key    string // the field that becomes Id
	date   string // the field that picks the yearly partition ("" : 1900)
}

var synapseTables = []synapseTable{
	{ContactsBlob, "contact", "contactid", "createdon"},
	{CasesBlob, "incident", "incidentid", "createdon"},
	{AgentsBlob, "systemuser", "systemuserid", ""},
	{SurveysBlob, "msfp_surveyresponse", "responseid", "submittedon"},
	{ActivityBlob, "dsr_activitylog", "eventid", "timestamp"},
}

// synapseAdded is the column the contact table gained "later".
const synapseAdded = "msdyn_gdproptout"

// synField is one field of a native record, its value as JSON.
type synField struct {
	name string
	raw  json.RawMessage
}

// synColumn is one attribute of a table.
type synColumn struct {
	Name     string `json:"name"`
	DataType string `json:"dataType"`
}

// synTableInfo is what the first pass over a table learns.
type synTableInfo struct {
	cols  []synColumn // the native fields, in first-seen order
	years []int
	// changed are the records the incremental folder changes (contact).
	changed [][]synField
}

func writeSynapse(ctx context.Context, sink Sink, size Size, seed uint64) error {
	infos := make([]*synTableInfo, len(synapseTables))
	for i, t := range synapseTables {
		info, err := synSurvey(ctx, t, size, seed)
		if err != nil {
			return err
		}
		infos[i] = info
		for _, y := range info.years {
			name := fmt.Sprintf("%s%s/%d.csv", SynapsePrefix, t.entity, y)
			err := sink.Write(ctx, Container, name, func(w io.Writer) error {
				bw := bufio.NewWriterSize(w, 64<<10)
				err := synNativeRecords(ctx, t.file, size, seed, func(rec []synField) error {
					if synYear(rec, t.date) != y {
						return nil
					}
					return writeSynapseRow(bw, t, info.cols, rec, 1, false, false)
				})
				if err != nil {
					return err
				}
				return bw.Flush()
			})
			if err != nil {
				return err
			}
		}
	}
	// The incremental folder: new versions of a few contacts, and one
	// deleted.
	contact, info := synapseTables[0], infos[0]
	name := SynapsePrefix + SynapseFolders[0] + "/" + contact.entity + "/2026.csv"
	err := sink.Write(ctx, Container, name, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 4<<10)
		for i, rec := range info.changed {
			if i == SynapseChanged {
				if err := writeSynapseRow(bw, contact, info.cols, rec, 2, true, true); err != nil {
					return err
				}
				continue
			}
			rec = slices.Clone(rec)
			for k := range rec {
				if rec[k].name == "address1_city" {
					rec[k].raw = json.RawMessage(`"Bellevue"`)
				}
			}
			if err := writeSynapseRow(bw, contact, info.cols, rec, 2, false, true); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	for k, folder := range SynapseFolders {
		incremental := map[string][]string{}
		if k == 0 {
			incremental[contact.entity] = []string{"2026"}
		}
		if err := synWriteModel(ctx, sink, SynapsePrefix+folder+"/", infos, incremental); err != nil {
			return err
		}
	}
	root := map[string][]string{}
	for i, t := range synapseTables {
		for _, y := range infos[i].years {
			root[t.entity] = append(root[t.entity], strconv.Itoa(y))
		}
	}
	return synWriteModel(ctx, sink, SynapsePrefix, infos, root)
}

// synWriteModel writes the model.json of folder (SynapsePrefix or an
// incremental folder in it) listing every table with the given partitions.
func synWriteModel(ctx context.Context, sink Sink, folder string, infos []*synTableInfo, partitions map[string][]string) error {
	type partition struct {
		Name     string `json:"name"`
		Location string `json:"location"`
	}
	type annotation struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	type entity struct {
		Type        string       `json:"$type"`
		Name        string       `json:"name"`
		Description string       `json:"description"`
		Annotations []annotation `json:"annotations"`
		Attributes  []synColumn  `json:"attributes"`
		Partitions  []partition  `json:"partitions"`
	}
	m := struct {
		Name         string   `json:"name"`
		Description  string   `json:"description"`
		Version      string   `json:"version"`
		ModifiedTime string   `json:"modifiedTime"`
		Entities     []entity `json:"entities"`
	}{Name: "cdm", Description: "cdm", Version: "1.0", ModifiedTime: "2026-01-15T10:30:00Z"}
	for i, t := range synapseTables {
		e := entity{Type: "LocalEntity", Name: t.entity, Description: t.entity,
			Annotations: []annotation{{"Athena:PartitionGranularity", "Year"}, {"Athena:InitialSyncState", "Completed"}},
			Attributes:  synapseColumns(t, infos[i].cols), Partitions: []partition{}}
		for _, p := range partitions[t.entity] {
			// Synapse Link writes the file's full URI; readers of this
			// sample take the files from the folders instead.
			e.Partitions = append(e.Partitions, partition{p, "https://contosolake.dfs.core.windows.net/" + Container + "/" + folder + t.entity + "/" + p + ".csv"})
		}
		m.Entities = append(m.Entities, e)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return sink.Write(ctx, Container, folder+"model.json", func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// synapseColumns are a table's attributes in file order.
func synapseColumns(t synapseTable, native []synColumn) []synColumn {
	cols := []synColumn{{"Id", "guid"}, {"SinkCreatedOn", "dateTime"}, {"SinkModifiedOn", "dateTime"}}
	cols = append(cols, native...)
	cols = append(cols, synColumn{"versionnumber", "int64"}, synColumn{"IsDelete", "boolean"})
	if t.entity == "contact" {
		cols = append(cols, synColumn{synapseAdded, "boolean"})
	}
	return cols
}

// synSurvey is the first pass over a table: its columns and their types,
// its partition years, and (contact) the records the incremental folder
// changes.
func synSurvey(ctx context.Context, t synapseTable, size Size, seed uint64) (*synTableInfo, error) {
	info := &synTableInfo{}
	index := map[string]int{}
	years := map[int]bool{}
	err := synNativeRecords(ctx, t.file, size, seed, func(rec []synField) error {
		for _, f := range rec {
			k, ok := index[f.name]
			if !ok {
				k = len(info.cols)
				index[f.name] = k
				info.cols = append(info.cols, synColumn{Name: f.name})
			}
			info.cols[k].DataType = synMergeType(info.cols[k].DataType, synTypeOf(f.raw))
		}
		years[synYear(rec, t.date)] = true
		if t.entity == "contact" && len(info.changed) <= SynapseChanged && synUnrelated(rec) {
			info.changed = append(info.changed, slices.Clone(rec))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range info.cols {
		if info.cols[k].DataType == "" {
			info.cols[k].DataType = "string"
		}
	}
	for y := range years {
		info.years = append(info.years, y)
	}
	slices.Sort(info.years)
	if t.entity == "contact" && len(info.changed) != SynapseChanged+1 {
		return nil, errors.New("sample: synapse: too few contacts for the incremental folder")
	}
	return info, nil
}

// synDemoLike matches anything of the demo subject, her namesake or the
// decoys.
var synDemoLike = regexp.MustCompile(`(?i)avery|morgan|555\D?01(9[89])|` + DemoContactID)

// synUnrelated reports whether a contact is safe to version in the
// incremental folder: nothing in it is like the demo subject's.
func synUnrelated(rec []synField) bool {
	for _, f := range rec {
		if synDemoLike.Match(f.raw) {
			return false
		}
	}
	return true
}

var (
	synGUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	synInt  = regexp.MustCompile(`^-?[0-9]+$`)
)

// synTypeOf is the CDM dataType a JSON value suggests ("" for null).
func synTypeOf(raw json.RawMessage) string {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case string(raw) == "true" || string(raw) == "false":
		return "boolean"
	case raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "string"
		}
		if synGUID.MatchString(s) {
			return "guid"
		}
		if _, err := time.Parse(time.RFC3339, s); err == nil {
			return "dateTime"
		}
		return "string"
	case raw[0] == '{' || raw[0] == '[':
		return "json"
	case synInt.Match(raw):
		return "int64"
	}
	return "decimal"
}

// synMergeType is the type of a column whose values so far had type a and
// now one of type b.
func synMergeType(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "":
		return a
	case (a == "int64" && b == "decimal") || (a == "decimal" && b == "int64"):
		return "decimal"
	}
	return "string"
}

// synYear is the partition of a record: the year of its date field, or
// 1900 (where Synapse Link puts rows without a creation date).
func synYear(rec []synField, date string) int {
	for _, f := range rec {
		if f.name != date {
			continue
		}
		var s string
		if json.Unmarshal(f.raw, &s) == nil && len(s) >= 4 {
			if y, err := strconv.Atoi(s[:4]); err == nil {
				return y
			}
		}
	}
	return 1900
}

// synSinkTime formats a time as Synapse Link writes SinkCreatedOn and
// SinkModifiedOn.
func synSinkTime(t time.Time) string { return t.UTC().Format("1/2/2006 3:04:05 PM") }

// writeSynapseRow writes one headerless row: Id, the sink times, the
// native fields in cols order, versionnumber and IsDelete, and for the
// contact table the added column (when added is set; rows written before
// it existed end earlier). A deleted row holds only Id, the sink times,
// versionnumber and IsDelete. Strings and dates are quoted, other values
// not; null is an empty field.
func writeSynapseRow(w *bufio.Writer, t synapseTable, cols []synColumn, rec []synField, version int, deleted, added bool) error {
	values := make(map[string]json.RawMessage, len(rec))
	for _, f := range rec {
		values[f.name] = f.raw
	}
	created := time.Date(2021, 6, 28, 16, 34, 35, 0, time.UTC)
	var s string
	if json.Unmarshal(values[t.date], &s) == nil {
		if d, err := time.Parse(time.RFC3339, s); err == nil {
			created = d.Add(47 * time.Minute)
		}
	}
	modified := created
	if version > 1 {
		modified = time.Date(2026, 1, 15, 10, 21, 7, 0, time.UTC)
	}
	var id string
	_ = json.Unmarshal(values[t.key], &id)
	cells := []string{id, synQuote(synSinkTime(created)), synQuote(synSinkTime(modified))}
	for _, c := range cols {
		v := values[c.Name]
		if deleted {
			v = nil
		}
		cells = append(cells, synCell(v, c.DataType))
	}
	isDelete := "False"
	if deleted {
		isDelete = "True"
	}
	cells = append(cells, strconv.Itoa(version), isDelete)
	if added && t.entity == "contact" {
		cells = append(cells, "False")
	}
	for i, c := range cells {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(c)
	}
	_, err := w.WriteString("\n")
	return err
}

// synQuote quotes a CSV field as Synapse Link does its strings.
func synQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// synCell is one field's CSV text.
func synCell(raw json.RawMessage, dataType string) string {
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return ""
	case string(raw) == "true":
		return "True"
	case string(raw) == "false":
		return "False"
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		if dataType == "guid" {
			return s
		}
		return synQuote(s)
	case raw[0] == '{' || raw[0] == '[':
		return synQuote(string(raw))
	}
	return string(raw)
}

// synNativeRecords generates a native dataset file and calls fn for each of
// its records, fields in order, streaming.
func synNativeRecords(ctx context.Context, name string, size Size, seed uint64, fn func([]synField) error) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(Generate(pw, File{Container, name}, size, seed)) }()
	defer pr.Close()
	br := bufio.NewReaderSize(pr, 64<<10)
	var n int
	each := func(rec []synField) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		return fn(rec)
	}
	switch {
	case strings.HasSuffix(name, ".ndjson"):
		for {
			line, err := br.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				rec, perr := synObject(line)
				if perr != nil {
					return perr
				}
				if err := each(rec); err != nil {
					return err
				}
			}
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	case strings.HasSuffix(name, ".csv"):
		cr := csv.NewReader(br)
		header, err := cr.Read()
		if err != nil {
			return err
		}
		header = slices.Clone(header)
		for {
			row, err := cr.Read()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			rec := make([]synField, len(header))
			for i, h := range header {
				b, _ := json.Marshal(row[i])
				rec[i] = synField{h, b}
			}
			if err := each(rec); err != nil {
				return err
			}
		}
	case strings.HasSuffix(name, ".json"):
		dec := json.NewDecoder(br)
		if _, err := dec.Token(); err != nil {
			return err
		}
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return err
			}
			rec, err := synObject(raw)
			if err != nil {
				return err
			}
			if err := each(rec); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("sample: synapse: no reader for %s", name)
}

// synObject splits a JSON object into its fields, in order.
func synObject(b []byte) ([]synField, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("sample: synapse: a record is not a JSON object")
	}
	var rec []synField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		rec = append(rec, synField{tok.(string), raw})
	}
	return rec, nil
}

package blobdataset

import (
	"encoding/csv"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/dsr-functions/dsr/shared/sources"
	"github.com/dsr-functions/dsr/shared/sources/sourcestest"
)

// blobHarness loads the conformance scenario as three blobs of the three
// formats: people as NDJSON, notes as CSV, replies as a JSON array.
type blobHarness struct{}

func (blobHarness) Delegates() bool { return false }

var conformanceFormats = map[string]sources.Format{"people": sources.FormatNDJSON, "notes": sources.FormatCSV, "replies": sources.FormatJSONArray}

func conformanceBlob(dataset string) string {
	return "conformance/" + dataset + "." + string(conformanceFormats[dataset])
}

func (blobHarness) Open(t *testing.T) sourcestest.Fixture {
	f := newFixture(t)
	data := map[string][]sourcestest.Record{}
	for ds, recs := range sourcestest.Scenario {
		data[ds] = slices.Clone(recs)
	}
	write := func(ds string) {
		f.put(conformanceBlob(ds), encodeRecords(t, conformanceFormats[ds], data[ds]))
	}
	var datasets []sources.Dataset
	for _, d := range sourcestest.Datasets() {
		d.Blob, d.Format = conformanceBlob(d.Name), conformanceFormats[d.Name]
		datasets = append(datasets, d)
		write(d.Name)
	}
	return sourcestest.Fixture{
		Connector: f.connector(datasets...),
		Remove: func(t *testing.T, ds, key string) {
			data[ds] = slices.DeleteFunc(data[ds], func(r sourcestest.Record) bool { return r[sourcestest.Keys[ds]] == key })
			write(ds)
		},
	}
}

// encodeRecords writes records in a format, fields in a fixed order.
func encodeRecords(t *testing.T, format sources.Format, recs []sourcestest.Record) string {
	var cols []string
	for _, r := range recs {
		for k := range r {
			if !slices.Contains(cols, k) {
				cols = append(cols, k)
			}
		}
	}
	slices.Sort(cols)
	var b strings.Builder
	switch format {
	case sources.FormatCSV:
		w := csv.NewWriter(&b)
		_ = w.Write(cols)
		for _, r := range recs {
			row := make([]string, len(cols))
			for i, c := range cols {
				row[i] = r[c]
			}
			_ = w.Write(row)
		}
		w.Flush()
	default:
		var lines []string
		for _, r := range recs {
			j, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, string(j))
		}
		if format == sources.FormatJSONArray {
			return "[" + strings.Join(lines, ",\n") + "]"
		}
		return strings.Join(lines, "\n") + "\n"
	}
	return b.String()
}

func TestConformance(t *testing.T) { sourcestest.Run(t, blobHarness{}) }

package sample

// The "delta" sample format: every dataset as a Delta Lake table under
// Container, prefix delta/<dataset>/, as sample/sources.delta.json
// describes. Each table is version 0 only: Parquet data files and
// _delta_log/00000000000000000000.json with commitInfo, protocol
// (minReaderVersion 1, minWriterVersion 2), metaData (the Delta JSON
// schema) and one add per data file. The records are the native sample's,
// so the demo facts hold; the activity log is partitioned by entity (one
// folder entity=<value>/ per value, the value in add.partitionValues, not
// in the files), so a record's entity comes from the log. The contacts
// table has a dsr_restricted column (null) for the restriction flag.
//
// Output is deterministic: file names, table ids and times derive from the
// dataset, never the clock.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"time"
)

func init() { RegisterFormat("delta", writeDelta) }

// DeltaPrefix is the table root of a sample dataset in the delta format.
func DeltaPrefix(dataset string) string { return "delta/" + dataset + "/" }

type deltaContactRow struct {
	ContactID                  *string `json:"contactid" parquet:"contactid,optional"`
	FullName                   *string `json:"fullname" parquet:"fullname,optional"`
	FirstName                  *string `json:"firstname" parquet:"firstname,optional"`
	LastName                   *string `json:"lastname" parquet:"lastname,optional"`
	Email                      *string `json:"emailaddress1" parquet:"emailaddress1,optional"`
	Phone                      *string `json:"telephone1" parquet:"telephone1,optional"`
	City                       *string `json:"address1_city" parquet:"address1_city,optional"`
	CreatedOn                  *string `json:"createdon" parquet:"createdon,optional"`
	PreferredContactMethodCode *int64  `json:"preferredcontactmethodcode" parquet:"preferredcontactmethodcode,optional"`
	Restricted                 *bool   `json:"dsr_restricted" parquet:"dsr_restricted,optional"`
}

type deltaCaseRow struct {
	IncidentID   *string `json:"incidentid" parquet:"incidentid,optional"`
	TicketNumber *string `json:"ticketnumber" parquet:"ticketnumber,optional"`
	Title        *string `json:"title" parquet:"title,optional"`
	Description  *string `json:"description" parquet:"description,optional"`
	CustomerID   *string `json:"customerid" parquet:"customerid,optional"`
	OwnerID      *string `json:"ownerid" parquet:"ownerid,optional"`
	CreatedOn    *string `json:"createdon" parquet:"createdon,optional"`
	StatusCode   *string `json:"statuscode" parquet:"statuscode,optional"`
}

type deltaAgentRow struct {
	SystemUserID *string `json:"systemuserid" parquet:"systemuserid,optional"`
	FullName     *string `json:"fullname" parquet:"fullname,optional"`
	Email        *string `json:"internalemailaddress" parquet:"internalemailaddress,optional"`
	Title        *string `json:"title" parquet:"title,optional"`
	BusinessUnit *string `json:"businessunit" parquet:"businessunit,optional"`
}

type deltaSurveyRow struct {
	ResponseID      *string `json:"responseid" parquet:"responseid,optional"`
	IncidentID      *string `json:"incidentid" parquet:"incidentid,optional"`
	RespondentEmail *string `json:"respondentemail" parquet:"respondentemail,optional"`
	Score           *int64  `json:"score" parquet:"score,optional"`
	Comment         *string `json:"comment" parquet:"comment,optional"`
	SubmittedOn     *string `json:"submittedon" parquet:"submittedon,optional"`
}

type deltaActivityRow struct {
	EventID   *string `json:"eventid" parquet:"eventid,optional"`
	Timestamp *string `json:"timestamp" parquet:"timestamp,optional"`
	Actor     *string `json:"actor" parquet:"actor,optional"`
	Operation *string `json:"operation" parquet:"operation,optional"`
	// Entity is the partition column: in the log, not in the files.
	Entity   string  `json:"entity" parquet:"-"`
	EntityID *string `json:"entityid" parquet:"entityid,optional"`
	Details  *string `json:"details" parquet:"details,optional"`
}

// deltaEpoch is the sample tables' creation and modification time.
var deltaEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

func writeDelta(ctx context.Context, sink Sink, size Size, seed uint64) error {
	for _, f := range Files() {
		var err error
		switch f.Name {
		case ContactsBlob:
			err = writeDeltaTable[deltaContactRow](ctx, sink, f, "contacts", size, seed, "", nil)
		case CasesBlob:
			err = writeDeltaTable[deltaCaseRow](ctx, sink, f, "cases", size, seed, "", nil)
		case AgentsBlob:
			err = writeDeltaTable[deltaAgentRow](ctx, sink, f, "agents", size, seed, "", nil)
		case SurveysBlob:
			err = writeDeltaTable[deltaSurveyRow](ctx, sink, f, "surveys", size, seed, "", nil)
		case ActivityBlob:
			err = writeDeltaTable(ctx, sink, f, "activity-log", size, seed, "entity", func(r *deltaActivityRow) string { return r.Entity })
		default:
			err = fmt.Errorf("sample: delta: no table for %s", f.Name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// deltaAddAction is the add action of one sample data file.
type deltaAddAction struct {
	Path             string             `json:"path"`
	PartitionValues  map[string]*string `json:"partitionValues"`
	Size             int64              `json:"size"`
	ModificationTime int64              `json:"modificationTime"`
	DataChange       bool               `json:"dataChange"`
	Stats            string             `json:"stats"`
}

// writeDeltaTable writes native file f as the Delta table of dataset:
// one data file, or with a partition column (partOf gives a row's value)
// one per value, each written by a pass of its own over the native file
// (after a first pass that lists the values), so memory stays bounded.
func writeDeltaTable[T any](ctx context.Context, sink Sink, f File, dataset string, size Size, seed uint64, partCol string, partOf func(*T) string) error {
	cols, err := deltaColumns[T]()
	if err != nil {
		return err
	}
	prefix := DeltaPrefix(dataset)
	fileName := func(part string) string {
		h := sha256.Sum256([]byte(dataset + "\x00" + part))
		id := hex.EncodeToString(h[:16])
		return fmt.Sprintf("part-00000-%s-%s-%s-%s-%s-c000.snappy.parquet", id[:8], id[8:12], id[12:16], id[16:20], id[20:32])
	}
	var adds []deltaAddAction
	// writeFile writes blob prefix+rel, whose path in the log is logPath
	// (rel URI-encoded).
	writeFile := func(rel, logPath string, values map[string]*string, keep func(*T) bool) error {
		var rows, n int64
		err := sink.Write(ctx, Container, prefix+rel, func(w io.Writer) error {
			pw := newPQWriter[T](w)
			err := eachNative(ctx, f, size, seed, func(r *T) error {
				if keep != nil && !keep(r) {
					return nil
				}
				return pw.write(*r)
			})
			if err != nil {
				return err
			}
			if err := pw.close(); err != nil {
				return err
			}
			rows, n = pw.rows, pw.cw.n
			return nil
		})
		if err != nil {
			return err
		}
		stats, _ := json.Marshal(map[string]int64{"numRecords": rows})
		adds = append(adds, deltaAddAction{Path: logPath, PartitionValues: values, Size: n, ModificationTime: deltaEpoch, DataChange: true, Stats: string(stats)})
		return nil
	}
	var partCols []string
	if partCol == "" {
		if err := writeFile(fileName(""), fileName(""), map[string]*string{}, nil); err != nil {
			return err
		}
	} else {
		partCols = []string{partCol}
		seen := map[string]bool{}
		err := eachNative(ctx, f, size, seed, func(r *T) error {
			seen[partOf(r)] = true
			if len(seen) > 1000 {
				return fmt.Errorf("sample: delta: %s has over 1000 values of %s", dataset, partCol)
			}
			return nil
		})
		if err != nil {
			return err
		}
		values := make([]string, 0, len(seen))
		for v := range seen {
			values = append(values, v)
		}
		sort.Strings(values)
		for _, v := range values {
			// Folder names are URI-encoded in the log's paths, as Delta
			// writers do.
			dir := partCol + "=" + v
			if err := writeFile(dir+"/"+fileName(v), url.PathEscape(dir)+"/"+fileName(v), map[string]*string{partCol: &v}, func(r *T) bool { return partOf(r) == v }); err != nil {
				return err
			}
		}
	}
	return sink.Write(ctx, Container, prefix+"_delta_log/00000000000000000000.json", func(w io.Writer) error {
		h := sha256.Sum256([]byte("delta-table\x00" + dataset))
		id := hex.EncodeToString(h[:16])
		actions := []any{
			map[string]any{"commitInfo": map[string]any{"timestamp": deltaEpoch, "operation": "WRITE",
				"operationParameters": map[string]string{"mode": "ErrorIfExists"}, "isBlindAppend": true, "engineInfo": "dsr sample"}},
			map[string]any{"protocol": map[string]int{"minReaderVersion": 1, "minWriterVersion": 2}},
			map[string]any{"metaData": map[string]any{
				"id":               id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:32],
				"name":             dataset,
				"format":           map[string]any{"provider": "parquet", "options": map[string]string{}},
				"schemaString":     deltaSchemaString(cols),
				"partitionColumns": append([]string{}, partCols...),
				"configuration":    map[string]string{},
				"createdTime":      deltaEpoch,
			}},
		}
		for _, a := range adds {
			actions = append(actions, map[string]any{"add": a})
		}
		enc := json.NewEncoder(w)
		for _, a := range actions {
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	})
}

// Package export writes the package a data subject receives for an access
// request (GDPR Art. 15, with Art. 20 portability): one ZIP archive holding
// everything held about the person, streamed to an io.Writer (in production a
// Blob Storage upload) and described by its size and SHA-256.
//
// # Package layout
//
// The ZIP holds, in this order:
//
//	manifest.json        machine-readable description of the package
//	summary.txt          the same in plain English, with the subject's rights
//	data/<name>.json     per dataset with records: a JSON array of the records
//	data/<name>.csv      per dataset with records: the same records as CSV
//	schemas/<name>.schema.json
//	                     per dataset with records and Schema set (portability):
//	                     a JSON Schema (draft 2020-12) of data/<name>.json, with
//	                     the fields and JSON types seen and, as required, the
//	                     fields every record had
//
// manifest.json is
//
//	{
//	  "format": "dsr-export/v1",
//	  "generatedAt": "<RFC 3339, UTC>",
//	  "request": {"id", "type", "createdAt", "receivedAt", "dueAt"},
//	  "totalRecords": <n>,
//	  "datasets": [{"name", "description", "records",
//	                "files": ["data/<name>.json", "data/<name>.csv"],
//	                "facts": {<sources.Facts>}}],
//	  "rights": ["<text>", ...]
//	}
//
// Every dataset that was searched is listed, including those with no records
// (records 0, files []), so the person sees where we looked; data files are
// written only for datasets with records. Request times that are not set are
// null.
//
// data/<name>.json is a JSON array with one record (a JSON object, fields in
// source order) per line. Floating-point numbers are written without an
// exponent ('f' format).
//
// data/<name>.csv (encoding/csv, UTF-8 without byte order mark) has a header
// row that is the union of the dataset's field names in order of first
// appearance, then one row per record. Cells: nil or a missing field is
// empty; strings as they are; bools "true"/"false"; numbers as written in the
// JSON (integral values without exponent); objects and arrays JSON-encoded. If
// a record repeats a field name, the CSV cell holds the first value (the JSON
// file holds all). To guard against formula injection when the file is opened
// in a spreadsheet, any text cell, header included, that starts with '=',
// '+', '-', '@', a tab or a carriage return is prefixed with an apostrophe
// ('). Numeric cells are never prefixed: a JSON number cannot be a formula.
//
// # Streaming
//
// The manifest needs the record counts and the CSV header needs the column
// union before any data is written, so Write spools: it calls each dataset's
// Read once and appends the records as NDJSON to one temporary file (mode
// 0600, removed before Write returns, also on error), keeping only counts and
// column names in memory. It then writes the manifest and summary, and for
// each dataset re-reads its part of the spool line by line to write the JSON
// and CSV entries. Memory does not grow with the number or size of records
// beyond the largest single record. Nothing is written to the io.Writer until
// every dataset has been read.
//
// Output is deterministic: the same inputs and generatedAt give byte-identical
// archives (every entry's modification time is generatedAt).
//
// Error messages name datasets, fields and record numbers but never contain
// record values.
package export

// Package duckdbtest runs SQL on DuckDB for tests and benchmarks: through
// Node.js and the npm package @duckdb/node-api (a devDependency in
// package.json, which `npm ci` installs). DuckDB is an independent Parquet
// reader: tests use it to check that the Parquet files the product writes
// read back as expected, benchmarks to compare against it.
//
// The package is looked for in the repository's node_modules, then in
// every directory of NODE_PATH. When it is missing the test is skipped,
// unless the environment variable CI is set: then it fails, as CI installs
// it.
package duckdbtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeModules returns the node_modules directory that holds
// @duckdb/node-api, or "".
func nodeModules() string {
	dirs := []string{}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dirs = append(dirs, filepath.Join(d, "node_modules"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	dirs = append(dirs, filepath.SplitList(os.Getenv("NODE_PATH"))...)
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "@duckdb", "node-api", "package.json")); err == nil {
			if abs, err := filepath.Abs(d); err == nil {
				return abs
			}
		}
	}
	return ""
}

// Require skips tb when DuckDB cannot be run (fails it under CI), and
// returns the node_modules directory that has it.
func Require(tb testing.TB) string {
	tb.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		missing(tb, "node is not on PATH")
	}
	nm := nodeModules()
	if nm == "" {
		missing(tb, "@duckdb/node-api is not installed (npm ci installs it; or set NODE_PATH to a node_modules that has it)")
	}
	return nm
}

func missing(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("DuckDB: %s", why)
	}
	tb.Skipf("DuckDB: %s", why)
}

// Result is what one query returned: its columns' names and DuckDB types,
// and its rows as JSON objects (DuckDB's JSON forms: numbers as numbers,
// or strings when they do not fit a double; timestamps, decimals and
// UUIDs as strings).
type Result struct {
	Columns []Column         `json:"columns"`
	Rows    []map[string]any `json:"rows"`
	// Runs are the durations of each run of the query (Bench), measured
	// inside Node around the query alone.
	Runs []time.Duration `json:"-"`
	// Count is the number of rows the query returned.
	Count int64 `json:"count"`
	// MaxRSS is the peak resident set of the Node process that ran the
	// queries (Node itself included), bytes.
	MaxRSS int64 `json:"maxRSS"`
}

// Column is a result column.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

const script = `'use strict';
const { DuckDBInstance } = require('@duckdb/node-api');
(async () => {
  const job = JSON.parse(process.argv[2]);
  const db = await DuckDBInstance.create(':memory:', job.threads ? { threads: String(job.threads) } : {});
  const conn = await db.connect();
  const out = [];
  for (const q of job.queries) {
    let reader, ms = [];
    for (let i = 0; i < Math.max(1, q.runs); i++) {
      const t0 = process.hrtime.bigint();
      reader = await conn.runAndReadAll(q.sql);
      ms.push(Number(process.hrtime.bigint() - t0));
    }
    const names = reader.columnNames(), types = reader.columnTypes();
    out.push({ columns: names.map((n, i) => ({ name: n, type: types[i].toString() })),
      rows: q.rows ? reader.getRowObjectsJson() : [], nanos: ms, count: reader.currentRowCount });
  }
  // VmHWM, not getrusage: a process started by Go's os/exec (cloned with
  // CLONE_VM) may have its parent's peak counted in ru_maxrss.
  let maxRSS = 0;
  try {
    const m = /VmHWM:\s*(\d+)\s*kB/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'));
    if (m) maxRSS = Number(m[1]) * 1024;
  } catch (e) {}
  for (const o of out) o.maxRSS = maxRSS;
  process.stdout.write(JSON.stringify(out));
})().catch(e => { console.error(e && e.stack || String(e)); process.exit(1); });
`

// Query is one SQL statement to run.
type Query struct {
	SQL string `json:"sql"`
	// Runs is how many times to run it (Bench); 0 is once.
	Runs int `json:"runs"`
	// Rows: return the rows (else only the columns and the run times).
	Rows bool `json:"rows"`
}

// Options of a Run.
type Options struct {
	// Threads DuckDB may use (0: its default, all cores).
	Threads int `json:"threads,omitempty"`
}

// Run runs queries in one DuckDB (in-memory database) in one Node process.
func Run(tb testing.TB, opts Options, queries ...Query) []Result {
	tb.Helper()
	nm := Require(tb)
	dir := tb.TempDir()
	js := filepath.Join(dir, "duckdb-query.cjs")
	if err := os.WriteFile(js, []byte(script), 0o600); err != nil {
		tb.Fatal(err)
	}
	job, _ := json.Marshal(struct {
		Options
		Queries []Query `json:"queries"`
	}{opts, queries})
	cmd := exec.Command("node", js, string(job))
	cmd.Env = append(os.Environ(), "NODE_PATH="+nm)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("DuckDB: %v\n%s", err, stderr.Bytes())
	}
	var raw []struct {
		Result
		Nanos []int64 `json:"nanos"`
	}
	d := json.NewDecoder(&stdout)
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		tb.Fatalf("DuckDB output: %v", err)
	}
	out := make([]Result, len(raw))
	for i, r := range raw {
		out[i] = r.Result
		for _, n := range r.Nanos {
			out[i].Runs = append(out[i].Runs, time.Duration(n))
		}
	}
	return out
}

// ReadParquet returns every row of the Parquet file at path, in file
// order, with the columns' DuckDB types.
func ReadParquet(tb testing.TB, path string) Result {
	tb.Helper()
	return Run(tb, Options{}, Query{SQL: "SELECT * FROM read_parquet(" + Quote(path) + ")", Rows: true})[0]
}

// Quote is s as an SQL string literal.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Type returns the DuckDB type of column name, or an error.
func (r Result) Type(name string) (string, error) {
	for _, c := range r.Columns {
		if c.Name == name {
			return c.Type, nil
		}
	}
	return "", errors.New("no column " + name)
}

// String is a row value as text: strings as they are, anything else as
// fmt prints it ("" for null).
func String(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	}
	return fmt.Sprint(v)
}

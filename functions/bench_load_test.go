package functions_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/dsr"
	"github.com/dsr-functions/dsr/shared/sample"
)

// BenchmarkConcurrentAccess submits many access requests at once (200 by
// default, DSR_LOAD_REQUESTS), each for a different person of the sample
// (medium by default: 100,000 contacts, about 180 MB; DSR_LOAD_SIZE), through
// the app as `dsr local` runs it, and waits until all are completed. Every
// export is downloaded by its link and checked: its bytes match the
// document's SHA-256 and it holds the person's contact record. It reports
// requests per second over the whole burst, the p50/p95/p99 of each
// request's time from submission to completion, and where the time went by
// the requests' histories (medians): waiting for discovery to start,
// discovery, export. The sample upload (not timed) takes about a minute.
// The app runs with the product's defaults, the repeat check (Art. 12(5))
// included: each person asks once, so nothing is flagged, but every
// submission is listed in its subject's registry as in production.
// DSR_LOAD_REPEAT=0 turns the check off, as runs before 2026-12-05 had it.
//
//	go test ./functions/ -run '^$' -bench BenchmarkConcurrentAccess -benchtime 1x -timeout 30m
func BenchmarkConcurrentAccess(b *testing.B) {
	n := 200
	if v := os.Getenv("DSR_LOAD_REQUESTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("DSR_LOAD_REQUESTS=%q", v)
		}
	}
	sizeName := "medium"
	if v := os.Getenv("DSR_LOAD_SIZE"); v != "" {
		sizeName = v
	}
	size, err := sample.ParseSize(sizeName)
	if err != nil {
		b.Fatal(err)
	}
	e := newE2EBench(b, size, e2eOptions{repeatFlagging: os.Getenv("DSR_LOAD_REPEAT") != "0"})
	people := e.people(b, n)
	b.Logf("%d contacts: %d records, %d bytes; %d requests", size.Contacts, e.records, e.bytes, n)

	for i := 0; i < b.N; i++ {
		start := time.Now()
		ids := make([]string, n)
		var wg sync.WaitGroup
		for k := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[k] = e.submit(`{"type":"access","subject":{"email":"` + people[k] + `"}}`).ID
			}()
		}
		wg.Wait()
		submitted := time.Since(start)

		// Wait by listing ended requests, not by reading each document,
		// and only every second: the poll must not be the load it
		// measures (each listing costs Azurite more than a document
		// write). The burst's end is the last completion the requests'
		// histories record, so the poll's period does not blur it.
		mine := map[string]bool{}
		for _, id := range ids {
			mine[id] = true
		}
		for {
			if time.Since(start) > 20*time.Minute {
				b.Fatalf("requests still open after 20 minutes")
			}
			time.Sleep(time.Second)
			if e.ended(b, mine) == n {
				break
			}
		}
		docs := make([]dsr.Request, n)
		exps := make([]exportDoc, n)
		var last time.Time
		for k, id := range ids {
			docs[k], exps[k] = e.get(id)
			if h := docs[k].History; len(h) > 0 && h[len(h)-1].At.After(last) {
				last = h[len(h)-1].At
			}
		}
		elapsed := last.Sub(start)

		b.StopTimer()
		if f := os.Getenv("DSR_LOAD_LOGS"); f != "" {
			// The app's log of the burst, for finding where time went.
			if err := os.WriteFile(f, []byte(e.logs.String()), 0o600); err != nil {
				b.Fatal(err)
			}
		}
		var total, wait, disc, export []time.Duration
		for k, doc := range docs {
			if doc.State != dsr.StateCompleted {
				b.Fatalf("request %s ended %s: %+v", doc.ID, doc.State, doc.Error)
			}
			e.checkExport(b, exps[k], people[k])
			total = append(total, doc.History[len(doc.History)-1].At.Sub(doc.CreatedAt))
			wait = append(wait, stageTime(doc, dsr.StageIntake, dsr.StageDiscovery))
			disc = append(disc, stageTime(doc, dsr.StageDiscovery, dsr.StageExport))
			export = append(export, stageTime(doc, dsr.StageExport, dsr.StageDone))
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "requests/s")
		b.ReportMetric(elapsed.Seconds(), "burst-s")
		b.ReportMetric(submitted.Seconds(), "submit-s")
		b.ReportMetric(percentile(total, 50).Seconds(), "p50-s")
		b.ReportMetric(percentile(total, 95).Seconds(), "p95-s")
		b.ReportMetric(percentile(total, 99).Seconds(), "p99-s")
		b.ReportMetric(percentile(wait, 50).Seconds(), "wait-p50-s")
		b.ReportMetric(percentile(disc, 50).Seconds(), "discovery-p50-s")
		b.ReportMetric(percentile(export, 50).Seconds(), "export-p50-s")
		b.StartTimer()
	}
}

// ended counts the requests of ids that have ended, by listing them.
func (e *e2eBench) ended(b *testing.B, ids map[string]bool) int {
	n := 0
	for _, state := range []dsr.State{dsr.StateCompleted, dsr.StateFailed} {
		token := ""
		for {
			path := "/api/requests?type=access&limit=200&state=" + string(state)
			if token != "" {
				path += "&pageToken=" + url.QueryEscape(token)
			}
			resp, body := e.do("GET", path, "")
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("list: %d %s", resp.StatusCode, body)
			}
			var page struct {
				Items []struct {
					ID string `json:"id"`
				} `json:"items"`
				NextPageToken string `json:"nextPageToken"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				b.Fatal(err)
			}
			for _, it := range page.Items {
				if ids[it.ID] {
					n++
				}
			}
			if token = page.NextPageToken; token == "" {
				break
			}
		}
	}
	return n
}

// percentile is the nearest-rank percentile p of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

// people returns the first n distinct email addresses of the sample's
// contacts, read back from the contacts blob.
func (e *e2eBench) people(b *testing.B, n int) []string {
	resp, err := e.app.Account.Service.NewContainerClient(e.datasets).NewBlobClient("crm/contacts.ndjson").DownloadStream(context.Background(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	seen := map[string]bool{}
	var out []string
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() && len(out) < n {
		var c struct {
			Email *string `json:"emailaddress1"`
		}
		if json.Unmarshal(s.Bytes(), &c) != nil || c.Email == nil {
			continue
		}
		email := strings.ToLower(strings.TrimSpace(*c.Email))
		if email == "" || seen[email] || email == sample.DemoEmail || !strings.Contains(email, "@") {
			continue
		}
		seen[email] = true
		out = append(out, email)
	}
	if len(out) < n {
		b.Fatalf("the sample has %d distinct contact emails, want %d", len(out), n)
	}
	return out
}

// checkExport downloads a package by its link and checks its bytes and
// that it holds the person's contact record.
func (e *e2eBench) checkExport(b *testing.B, exp exportDoc, email string) {
	status, pkg, _ := download(b, exp.URL)
	if status != http.StatusOK {
		b.Fatalf("download export: %d", status)
	}
	sum := sha256.Sum256(pkg)
	if int64(len(pkg)) != exp.Bytes || hex.EncodeToString(sum[:]) != exp.SHA256 {
		b.Fatalf("package is %d bytes; document says %d bytes sha %s", len(pkg), exp.Bytes, exp.SHA256)
	}
	contacts := strings.ToLower(string(readZip(b, pkg)["data/contacts.json"]))
	if !strings.Contains(contacts, email) {
		b.Fatalf("the package of a request lacks the person's contact record")
	}
}

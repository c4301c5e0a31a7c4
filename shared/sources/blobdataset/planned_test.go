package blobdataset

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/sources"
)

// A planned rewrite tells what it will commit before it commits, names its
// plan in the blob's metadata (keeping the blob's own metadata), and a
// later writer keeps the name; a plan refused before the commit commits
// nothing.
func TestRewritePlannedNamesItsCommit(t *testing.T) {
	f := newFixture(t)
	d := sources.Dataset{Name: "people", Blob: "planned.ndjson", Format: sources.FormatNDJSON,
		Identifiers: []sources.Identifier{{Field: "email", Kind: sources.KindEmail}}}
	content := `{"email":"bob@x.example"}` + "\n" + `{"email":"ann@x.example"}` + "\n" + `{"email":"ann@x.example","n":1}` + "\n"
	if _, err := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(d.Blob).UploadBuffer(f.ctx, []byte(content),
		&blockblob.UploadBufferOptions{Metadata: map[string]*string{"owner": to.Ptr("crm")}}); err != nil {
		t.Fatal(err)
	}
	c := f.connector(d)
	dm := matchesOf(t, f.discover(c, rwSubject), "people")
	loc := dm.Locations[0]
	edit := func(o int64, rec sources.Record) (*sources.Record, error) {
		if o == 1 {
			return nil, nil
		}
		r := redact(rec)
		return &r, nil
	}

	// Refused before the commit: nothing changes.
	_, err := c.RewritePlanned(f.ctx, "people", loc, edit, sources.CommitPlan{ID: "p0", BeforeCommit: func(sources.RewriteResult) error {
		return errors.New("request cancelled")
	}})
	if err == nil || !strings.Contains(err.Error(), "request cancelled") {
		t.Fatalf("refused plan: %v", err)
	}
	if ok, etag, err := c.Committed(f.ctx, "people", d.Blob, sources.PlanRef{ID: "p0"}); err != nil || ok || etag != loc.ETag {
		t.Fatalf("after a refused plan: committed %v etag %s (want %s) err %v", ok, etag, loc.ETag, err)
	}

	var planned sources.RewriteResult
	res, err := c.RewritePlanned(f.ctx, "people", loc, edit, sources.CommitPlan{ID: "p1", BeforeCommit: func(p sources.RewriteResult) error {
		planned = p
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if planned.Deleted != 1 || planned.Replaced != 1 || planned.ETag != "" {
		t.Errorf("planned %+v, want 1 deleted, 1 replaced, no ETag yet", planned)
	}
	ok, etag, err := c.Committed(f.ctx, "people", d.Blob, sources.PlanRef{ID: "p1"})
	if err != nil || !ok || etag != res.ETag {
		t.Fatalf("Committed(p1) = %v %s %v, want true %s", ok, etag, err, res.ETag)
	}
	if ok, _, _ := c.Committed(f.ctx, "people", d.Blob, sources.PlanRef{ID: "p2"}); ok {
		t.Error("a plan that never ran is reported committed")
	}
	// Another planned rewrite keeps the earlier plan's name, and the blob's
	// own metadata stays.
	dm = matchesOf(t, f.discover(c, sources.Subject{Emails: []string{"bob@x.example"}}), "people")
	if _, err := c.RewritePlanned(f.ctx, "people", dm.Locations[0], func(_ int64, rec sources.Record) (*sources.Record, error) { return &rec, nil },
		sources.CommitPlan{ID: "p2"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"p1", "p2"} {
		if ok, _, _ := c.Committed(f.ctx, "people", d.Blob, sources.PlanRef{ID: id}); !ok {
			t.Errorf("%s no longer named after a later commit", id)
		}
	}
	props, err := f.acct.Service.NewContainerClient(f.c).NewBlobClient(d.Blob).GetProperties(f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	owner := ""
	for k, v := range props.Metadata {
		if strings.EqualFold(k, "owner") && v != nil {
			owner = *v
		}
	}
	if owner != "crm" {
		t.Errorf("the blob's own metadata was lost: %v", props.Metadata)
	}
	if ok, etag, err := c.Committed(f.ctx, "people", "gone.ndjson", sources.PlanRef{ID: "p1"}); ok || etag != "" || err != nil {
		t.Errorf("a missing blob: %v %q %v", ok, etag, err)
	}
}

// The metadata keeps the newest maxCommits plan ids.
func TestWithCommitBoundsItsIDs(t *testing.T) {
	m := map[string]*string{"Owner": to.Ptr("crm")}
	for i := range maxCommits + 5 {
		m = withCommit(m, fmt.Sprintf("%016x", i))
	}
	ids := strings.Split(*m[commitsKey], ",")
	if len(ids) != maxCommits || ids[len(ids)-1] != fmt.Sprintf("%016x", maxCommits+4) || *m["Owner"] != "crm" {
		t.Errorf("ids %d, last %s, metadata %v", len(ids), ids[len(ids)-1], m)
	}
	if n := len(*m[commitsKey]) + len(commitsKey); n > 8<<10 {
		t.Errorf("metadata of %d bytes exceeds the 8 KiB limit", n)
	}
}

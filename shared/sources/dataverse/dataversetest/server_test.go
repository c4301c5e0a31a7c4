package dataversetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/dsr-functions/dsr/shared/sources/dataverse/dataversetest"
)

// recorder collects the failures a Server reports instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.errs
	r.errs = nil
	return e
}

const key = "c0000001-7c1e-4f5a-9b3d-000000001eef"

func TestServerIsStrict(t *testing.T) {
	rec := &recorder{TB: t}
	srv := dataversetest.New(rec, 2)
	srv.AddEntitySet("contacts", "contact", "contactid", "fullname", "emailaddress1", "_parentcustomerid_value")
	srv.Put("contacts", map[string]any{"contactid": key, "fullname": "Ann Example", "emailaddress1": "Ann@Example.com"})
	cred := srv.Credential()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{srv.URL() + "/.default"}})
	if err != nil || tok.Token != srv.Token() || cred.Calls() != 1 {
		t.Fatalf("token %q, %v", tok.Token, err)
	}
	get := func(rawQuery string, mutate func(http.Header)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/api/data/v9.2/contacts?"+rawQuery, nil)
		for k, v := range map[string]string{"Authorization": "Bearer " + tok.Token, "Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "Prefer": "odata.maxpagesize=2"} {
			req.Header.Set(k, v)
		}
		if mutate != nil {
			mutate(req.Header)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := "$select=fullname&$filter=emailaddress1%20eq%20%27ann%40example.com%27"
	if st, body := get(good, nil); st != 200 || !strings.Contains(body, `"fullname":"Ann Example"`) || len(rec.take()) != 0 {
		t.Fatalf("good query: %d %s", st, body)
	}
	if r := srv.Requests(); len(r) != 1 || r[0].Filter != "emailaddress1 eq 'ann@example.com'" || len(r[0].Returned) != 1 {
		t.Errorf("log %+v", r)
	}
	cases := map[string]struct {
		raw    string
		mutate func(http.Header)
		status int
	}{
		"no token":        {good, func(h http.Header) { h.Del("Authorization") }, 401},
		"no OData header": {good, func(h http.Header) { h.Del("OData-Version") }, 400},
		"page size":       {good, func(h http.Header) { h.Set("Prefer", "odata.maxpagesize=5") }, 400},
		"raw quote":       {"$filter=emailaddress1%20eq%20'x'", nil, 400},
		"no filter":       {"$select=fullname", nil, 400},
		"unknown column":  {"$filter=emailaddress2%20eq%20%27x%27", nil, 400},
		"guid as string":  {"$filter=contactid%20eq%20%27" + key + "%27", nil, 400},
		"other operator":  {"$filter=emailaddress1%20ne%20%27x%27", nil, 400},
		"top":             {good + "&$top=1", nil, 400},
		"forged page":     {good + "&$skiptoken=x", nil, 400},
	}
	for name, tc := range cases {
		if st, _ := get(tc.raw, tc.mutate); st != tc.status {
			t.Errorf("%s: %d, want %d", name, st, tc.status)
		}
		if len(rec.take()) == 0 {
			t.Errorf("%s: the test would not have failed", name)
		}
	}
	// An expected bad token is a plain 401.
	srv.SetToken("rotated", true)
	if st, _ := get(good, nil); st != 401 || len(rec.take()) != 0 {
		t.Errorf("expected bad token: %d", st)
	}
	if tok, _ := cred.GetToken(context.Background(), policy.TokenRequestOptions{}); tok.Token != "rotated" {
		t.Errorf("the credential does not follow the server's token: %q", tok.Token)
	}
}

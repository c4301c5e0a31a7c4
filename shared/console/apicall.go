package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/dsr-functions/dsr/shared/auth"
	"github.com/dsr-functions/dsr/shared/problem"
)

// The console reads and acts only through the app's own HTTP functions,
// called in process with the signed-in person as the caller: what a person
// may see or do is decided by the same access policies as for any API
// caller, so hiding a button is a courtesy, never the protection.

// answer is one in-process API answer.
type answer struct {
	status  int
	header  http.Header
	body    []byte
	problem *problem.Details
}

// ok reports a 2xx answer.
func (a answer) ok() bool { return a.status >= 200 && a.status < 300 }

// recorder is a minimal http.ResponseWriter that keeps the answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

// maxAnswer bounds what the console reads of one answer.
const maxAnswer = 16 << 20

// call runs method path (with query) on the API as p, with an optional JSON
// body.
func (c *Console) call(ctx context.Context, p *auth.Principal, method, path string, query url.Values, body any) (answer, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := &url.URL{Path: path}
	if query != nil {
		u.RawQuery = query.Encode()
	}
	req, err := http.NewRequestWithContext(auth.WithPrincipal(ctx, p), method, u.String(), rd)
	if err != nil {
		return answer{}, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := &recorder{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.body.Len() > maxAnswer {
		return answer{}, fmt.Errorf("%s %s: answer too large", method, path)
	}
	a := answer{status: rec.status, header: rec.header, body: rec.body.Bytes()}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if !a.ok() {
		var pd problem.Details
		if json.Unmarshal(a.body, &pd) == nil && pd.Code != "" {
			a.problem = &pd
		} else {
			a.problem = problem.New(a.status, "error", "", http.StatusText(a.status))
		}
	}
	return a, nil
}

// decode reads a successful answer's JSON into v.
func (a answer) decode(v any) error {
	if err := json.Unmarshal(a.body, v); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

package funchost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/dsr-functions/dsr/shared/funchost"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testDefs is a small app: two forwarded HTTP functions and one queue function.
var testDefs = fstest.MapFS{
	"items-get/function.json":    {Data: []byte(httpFn("get", "items/{id:guid}"))},
	"items-create/function.json": {Data: []byte(httpFn("post", "items"))},
	"work/function.json": {Data: []byte(`{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg",
		"queueName":"q-work","connection":"ServiceBusConnection"}]}`)},
}

func loadDefs(t *testing.T, fsys fstest.MapFS) []funchost.Function {
	t.Helper()
	fns, err := funchost.LoadFunctions(fsys)
	if err != nil {
		t.Fatalf("LoadFunctions: %v", err)
	}
	return fns
}

// echoHTTP answers with what it was asked, as JSON.
var echoHTTP = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Echo", "1")
	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusCreated)
	}
	_ = json.NewEncoder(w).Encode(map[string]string{
		"id": r.PathValue("id"), "path": r.URL.Path, "query": r.URL.RawQuery, "body": string(body), "auth": r.Header.Get("X-Functions-Key"),
	})
})

// recorder is a QueueFunc that keeps what it got and fails on demand.
type recorder struct {
	mu   sync.Mutex
	msgs []*funchost.QueueMessage
	fail error
}

func (r *recorder) handle(_ context.Context, m *funchost.QueueMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return r.fail
}

func newTestHandler(t *testing.T, rec *recorder) http.Handler {
	t.Helper()
	h, err := funchost.NewHandler(loadDefs(t, testDefs), funchost.Registry{
		HTTP:  map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP},
		Queue: map[string]funchost.QueueFunc{"work": rec.handle},
	}, discardLog())
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h
}

func serve(h http.Handler, method, target, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestHandlerReadiness(t *testing.T) {
	w := serve(newTestHandler(t, &recorder{}), http.MethodGet, "/", "")
	if w.Code < 200 || w.Code > 299 {
		t.Fatalf("GET / = %d %s, want 2xx", w.Code, w.Body)
	}
}

func TestHandlerHTTPRoutes(t *testing.T) {
	h := newTestHandler(t, &recorder{})
	const id = "0d9e5c3a-6a4c-4f0e-9a55-2b1f3c4d5e6f"
	tests := []struct {
		name, method, target, body string
		wantStatus                 int
		wantEcho                   map[string]string // nil: expect a 404 problem
	}{
		{"get with path value", "GET", "/api/items/" + id + "?expand=1", "", 200,
			map[string]string{"id": id, "path": "/api/items/" + id, "query": "expand=1", "body": "", "auth": ""}},
		{"constraint is not enforced by the mux", "GET", "/api/items/not-a-guid", "", 200,
			map[string]string{"id": "not-a-guid", "path": "/api/items/not-a-guid", "query": "", "body": "", "auth": ""}},
		{"post with body", "POST", "/api/items", `{"name":"x"}`, 201,
			map[string]string{"id": "", "path": "/api/items", "query": "", "body": `{"name":"x"}`, "auth": ""}},
		{"unknown path", "GET", "/api/nope", "", 404, nil},
		{"undeclared method", "DELETE", "/api/items/" + id, "", 404, nil},
		{"extra segment", "GET", "/api/items/a/b", "", 404, nil},
		{"route without prefix", "GET", "/items/" + id, "", 404, nil},
		{"invocation path with GET", "GET", "/work", "", 404, nil},
		{"invocation of an unknown function", "POST", "/nope", `{"Data":{},"Metadata":{}}`, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, tt.method, tt.target, tt.body)
			if w.Code != tt.wantStatus {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.target, w.Code, w.Body, tt.wantStatus)
			}
			if tt.wantEcho == nil {
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("Content-Type = %q, want application/problem+json", ct)
				}
				var p struct {
					Status int    `json:"status"`
					Code   string `json:"code"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != 404 || p.Code != "not-found" {
					t.Errorf("problem body = %s (%v)", w.Body, err)
				}
				return
			}
			if w.Header().Get("X-Echo") != "1" {
				t.Fatal("response did not come from the function's handler")
			}
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.wantEcho {
				if got[k] != v {
					t.Errorf("handler saw %s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// checkInvokeResponse asserts the reply the host needs: the status, exactly
// Content-Type application/json, a non-empty body that is an InvokeResponse
// with Outputs {} and Logs [] (never null).
func checkInvokeResponse(t *testing.T, w *httptest.ResponseRecorder, wantStatus int) funchost.InvokeResponse {
	t.Helper()
	if w.Code != wantStatus {
		t.Fatalf("status = %d %s, want %d", w.Code, w.Body, wantStatus)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want exactly application/json", ct)
	}
	body := w.Body.Bytes()
	if len(bytes.TrimSpace(body)) == 0 {
		t.Fatal("empty body: the host would wait until functionTimeout")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", body, err)
	}
	if got := string(raw["Outputs"]); got != "{}" {
		t.Errorf("Outputs = %s, want {}", got)
	}
	if got := string(raw["ReturnValue"]); got != "null" {
		t.Errorf("ReturnValue = %s, want null", got)
	}
	if got := string(raw["Logs"]); got == "" || got == "null" {
		t.Errorf("Logs = %q, want an array", got)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var ir funchost.InvokeResponse
	if err := dec.Decode(&ir); err != nil {
		t.Fatalf("body %s is not an InvokeResponse: %v", body, err)
	}
	if ir.Outputs == nil || ir.Logs == nil {
		t.Errorf("InvokeResponse = %+v: Outputs and Logs must not be null", ir)
	}
	return ir
}

func TestHandlerInvocationSuccess(t *testing.T) {
	payloads := map[string]string{
		"host shape": hostPayload,
		"docs shape": `{"Data":{"msg":{"id":"42"}},"Metadata":{"DeliveryCount":1,"MessageId":"a1b2"}}`,
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			h := newTestHandler(t, rec)
			w := serve(h, "POST", "/work", payload,
				"Content-Type", "application/json; charset=utf-8", "X-Azure-Functions-InvocationId", "inv-1")
			ir := checkInvokeResponse(t, w, http.StatusOK)
			if len(ir.Logs) != 0 {
				t.Errorf("Logs = %q, want []", ir.Logs)
			}
			if len(rec.msgs) != 1 {
				t.Fatalf("QueueFunc called %d times, want 1", len(rec.msgs))
			}
			m := rec.msgs[0]
			if string(m.Body) != `{"id":"42"}` || m.MessageID != "a1b2" || m.DeliveryCount != 1 {
				t.Errorf("message = %+v (body %s)", m, m.Body)
			}
			// The function name comes from the route, not from sys.MethodName
			// (the reference payload says "discover").
			if m.Function != "work" || m.InvocationID != "inv-1" {
				t.Errorf("Function %q, InvocationID %q; want work, inv-1", m.Function, m.InvocationID)
			}
		})
	}
}

func TestHandlerInvocationFailure(t *testing.T) {
	rec := &recorder{fail: errors.New("store unavailable")}
	w := serve(newTestHandler(t, rec), "POST", "/work", hostPayload)
	ir := checkInvokeResponse(t, w, http.StatusInternalServerError)
	if len(ir.Logs) != 1 || !strings.Contains(ir.Logs[0], "work") || !strings.Contains(ir.Logs[0], "store unavailable") {
		t.Errorf("Logs = %q, want one line naming the function and the error", ir.Logs)
	}
	if len(rec.msgs) != 1 {
		t.Errorf("QueueFunc called %d times", len(rec.msgs))
	}
}

func TestHandlerMalformedPayload(t *testing.T) {
	tests := map[string]string{
		"not JSON":         `not json`,
		"empty":            ``,
		"truncated":        `{"Data":`,
		"array":            `[1,2]`,
		"no trigger value": `{"Data":{},"Metadata":{"DeliveryCount":"1"}}`,
		"other binding":    `{"Data":{"message":"\"x\""},"Metadata":{}}`,
		"Data not object":  `{"Data":"x","Metadata":{}}`,
		"too large":        `{"Data":{"msg":"` + strings.Repeat("x", 1<<20) + `"}}`,
	}
	for name, payload := range tests {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			w := serve(newTestHandler(t, rec), "POST", "/work", payload)
			checkInvokeResponse(t, w, http.StatusBadRequest)
			if len(rec.msgs) != 0 {
				t.Errorf("QueueFunc called with a malformed payload")
			}
		})
	}
}

func TestNewHandlerRejectsMismatches(t *testing.T) {
	noop := func(context.Context, *funchost.QueueMessage) error { return nil }
	tests := []struct {
		name    string
		defs    fstest.MapFS
		reg     funchost.Registry
		wantErr string
	}{
		{
			name:    "HTTP function without implementation",
			defs:    testDefs,
			reg:     funchost.Registry{HTTP: map[string]http.Handler{"items-get": echoHTTP}, Queue: map[string]funchost.QueueFunc{"work": noop}},
			wantErr: "items-create",
		},
		{
			name:    "queue function without implementation",
			defs:    testDefs,
			reg:     funchost.Registry{HTTP: map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP}},
			wantErr: "work",
		},
		{
			name: "implementation without function.json",
			defs: testDefs,
			reg: funchost.Registry{
				HTTP:  map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP, "items-delete": echoHTTP},
				Queue: map[string]funchost.QueueFunc{"work": noop, "orphan": noop},
			},
			wantErr: "items-delete, orphan",
		},
		{
			name: "HTTP implementation for a queue function",
			defs: testDefs,
			reg: funchost.Registry{
				HTTP:  map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP, "work": echoHTTP},
				Queue: map[string]funchost.QueueFunc{"work": noop},
			},
			wantErr: "work",
		},
		{
			name:    "nil implementation",
			defs:    testDefs,
			reg:     funchost.Registry{HTTP: map[string]http.Handler{"items-get": echoHTTP, "items-create": nil}, Queue: map[string]funchost.QueueFunc{"work": noop}},
			wantErr: "items-create",
		},
		{
			name: "Serves a method function.json does not declare",
			defs: testDefs,
			reg: funchost.Registry{HTTP: map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP}, Queue: map[string]funchost.QueueFunc{"work": noop},
				Serves: map[string][]string{"items-get": {"GET", "DELETE"}}},
			wantErr: "DELETE",
		},
		{
			name: "Serves names no HTTP function",
			defs: testDefs,
			reg: funchost.Registry{HTTP: map[string]http.Handler{"items-get": echoHTTP, "items-create": echoHTTP}, Queue: map[string]funchost.QueueFunc{"work": noop},
				Serves: map[string][]string{"work": {"POST"}}},
			wantErr: "work",
		},
		{
			name:    "timer function (no way to implement it)",
			defs:    fstest.MapFS{"sweep/function.json": {Data: []byte(`{"bindings":[{"type":"timerTrigger","direction":"in","name":"t","schedule":"0 * * * * *"}]}`)}},
			reg:     funchost.Registry{},
			wantErr: "sweep",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := funchost.NewHandler(loadDefs(t, tt.defs), tt.reg, discardLog())
			if err == nil {
				t.Fatal("NewHandler accepted it")
			}
			if h != nil {
				t.Error("NewHandler returned a handler with its error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// A method a function declares but does not serve is answered 405 with the
// methods the route's functions serve; the ones it serves reach it.
func TestNewHandlerAnswersUnservedMethods405(t *testing.T) {
	fn := funchost.Function{Name: "things", Bindings: []funchost.Binding{
		{Type: funchost.HTTPTrigger, Direction: "in", Name: "req", Methods: []string{"get", "head", "post", "delete"}, Route: "things"},
		{Type: "http", Direction: "out", Name: "res"},
	}}
	h, err := funchost.NewHandler([]funchost.Function{fn}, funchost.Registry{HTTP: map[string]http.Handler{"things": echoHTTP},
		Serves: map[string][]string{"things": {"GET"}}}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"POST", "DELETE"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m, "/api/things", nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" ||
			w.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(w.Body.String(), `"method-not-allowed"`) {
			t.Errorf("%s: %d Allow %q %s", m, w.Code, w.Header().Get("Allow"), w.Body)
		}
	}
	for _, m := range []string{"GET", "HEAD"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m, "/api/things", nil))
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d, want the function's answer", m, w.Code)
		}
	}
}

func TestNewHandlerReportsConflictingRoutesInsteadOfPanicking(t *testing.T) {
	// Functions not loaded through LoadFunctions can still conflict.
	mk := func(name, route string) funchost.Function {
		return funchost.Function{Name: name, Bindings: []funchost.Binding{
			{Type: funchost.HTTPTrigger, Direction: "in", Name: "req", Methods: []string{"get"}, Route: route},
			{Type: "http", Direction: "out", Name: "res"},
		}}
	}
	fns := []funchost.Function{mk("a", "x/{id}"), mk("b", "x/{other}")}
	h, err := funchost.NewHandler(fns, funchost.Registry{HTTP: map[string]http.Handler{"a": echoHTTP, "b": echoHTTP}}, discardLog())
	if err == nil || h != nil {
		t.Fatalf("NewHandler = %v, %v; want an error", h, err)
	}
}

package funchost_test

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/dsr-functions/dsr/functions"
	"github.com/dsr-functions/dsr/shared/funchost"
)

const (
	httpJSON = `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":["post"],"route":"requests"},
		{"type":"http","direction":"out","name":"res"}]}`
	sbJSON = `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"dsr-discover","connection":"ServiceBusConnection"}]}`
)

func TestParseFunctionAccepts(t *testing.T) {
	tests := []struct {
		name, fn, json string
		wantTrigger    funchost.Binding
	}{
		{
			name: "http", fn: "requests-create", json: httpJSON,
			wantTrigger: funchost.Binding{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}, Route: "requests"},
		},
		{
			name: "serviceBus", fn: "discover", json: sbJSON,
			wantTrigger: funchost.Binding{Type: "serviceBusTrigger", Direction: "in", Name: "msg", QueueName: "dsr-discover", Connection: "ServiceBusConnection"},
		},
		{
			name: "serviceBus on a dead-letter queue", fn: "discover-deadletter",
			json:        `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"dsr-discover/$deadletterqueue","connection":"ServiceBusConnection"}]}`,
			wantTrigger: funchost.Binding{Type: "serviceBusTrigger", Direction: "in", Name: "msg", QueueName: "dsr-discover/$deadletterqueue", Connection: "ServiceBusConnection"},
		},
		{
			// A queue-triggered function may have output bindings: it gets an
			// invocation payload anyway.
			name: "serviceBus with an output binding", fn: "intake",
			json: `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"dsr-intake","connection":"C"},
				{"type":"serviceBus","direction":"out","name":"next","queueName":"dsr-discover","connection":"C"}]}`,
			wantTrigger: funchost.Binding{Type: "serviceBusTrigger", Direction: "in", Name: "msg", QueueName: "dsr-intake", Connection: "C"},
		},
		{
			name: "timer", fn: "sweep",
			json:        `{"bindings":[{"type":"timerTrigger","direction":"in","name":"tick","schedule":"0 */5 * * * *"}]}`,
			wantTrigger: funchost.Binding{Type: "timerTrigger", Direction: "in", Name: "tick", Schedule: "0 */5 * * * *"},
		},
		{
			name: "http with route constraint and two methods", fn: "requests-get",
			json: `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"anonymous","methods":["get","head"],"route":"requests/{id:guid}"},
				{"type":"http","direction":"out","name":"$return"}]}`,
			wantTrigger: funchost.Binding{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "anonymous", Methods: []string{"get", "head"}, Route: "requests/{id:guid}"},
		},
		{
			name: "unknown function.json fields are ignored", fn: "health",
			json: `{"disabled":false,"scriptFile":"x","bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"health"},
				{"type":"http","direction":"out","name":"res"}]}`,
			wantTrigger: funchost.Binding{Type: "httpTrigger", Direction: "in", Name: "req", Methods: []string{"get"}, Route: "health"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := funchost.ParseFunction(tt.fn, []byte(tt.json))
			if err != nil {
				t.Fatalf("ParseFunction: %v", err)
			}
			if f.Name != tt.fn {
				t.Errorf("Name = %q, want %q", f.Name, tt.fn)
			}
			if got := f.Trigger(); !reflect.DeepEqual(got, tt.wantTrigger) {
				t.Errorf("Trigger() = %+v, want %+v", got, tt.wantTrigger)
			}
		})
	}
}

func TestParseFunctionRejects(t *testing.T) {
	tests := []struct {
		name, fn, json string
		wantErr        string // a fragment of the error
	}{
		{
			name: "two triggers", fn: "f",
			json: `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"a","queueName":"q","connection":"c"},
				{"type":"timerTrigger","direction":"in","name":"b","schedule":"* * * * * *"}]}`,
			wantErr: "exactly one trigger",
		},
		{
			name: "no trigger", fn: "f",
			json:    `{"bindings":[{"type":"serviceBus","direction":"out","name":"out","queueName":"q","connection":"c"}]}`,
			wantErr: "exactly one trigger",
		},
		{name: "no bindings", fn: "f", json: `{"bindings":[]}`, wantErr: "exactly one trigger"},
		{
			// The host forwards the raw HTTP request only to functions with
			// exactly one httpTrigger in and one http out. With an extra
			// serviceBus output it would POST an invocation payload to
			// /<name> instead, which our HTTP handlers never see: the route
			// would silently stop working in Azure while working locally.
			name: "http with an extra serviceBus output binding (not forwarded)", fn: "requests-create",
			json: `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["post"],"route":"requests"},
				{"type":"http","direction":"out","name":"res"},
				{"type":"serviceBus","direction":"out","name":"next","queueName":"dsr-intake","connection":"C"}]}`,
			wantErr: "forwarded",
		},
		{
			name: "http without an http output (not forwarded)", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"x"}]}`,
			wantErr: "forwarded",
		},
		{
			name: "http with a blob input (not forwarded)", fn: "f",
			json: `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"x"},
				{"type":"blob","direction":"in","name":"b","path":"c/b"},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "forwarded",
		},
		{
			name: "http whose only output is not http", fn: "f",
			json: `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"x"},
				{"type":"serviceBus","direction":"out","name":"res","queueName":"q","connection":"c"}]}`,
			wantErr: "forwarded",
		},
		{
			name: "http without route", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"]},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "route",
		},
		{
			name: "http with absolute route", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"/x"},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "route",
		},
		{
			name: "http without methods", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","route":"x"},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "methods",
		},
		{
			name: "http with optional route parameter", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"x/{id?}"},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "optional",
		},
		{
			name: "http route a ServeMux cannot serve", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["get"],"route":"x/{id=5}"},{"type":"http","direction":"out","name":"res"}]}`,
			wantErr: "route",
		},
		{
			name: "serviceBus without queueName", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","connection":"C"}]}`,
			wantErr: "queueName",
		},
		{
			name: "serviceBus without connection", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"msg","queueName":"q"}]}`,
			wantErr: "connection",
		},
		{
			name: "timer without schedule", fn: "f",
			json:    `{"bindings":[{"type":"timerTrigger","direction":"in","name":"t"}]}`,
			wantErr: "schedule",
		},
		{
			name: "bad direction", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","direction":"inout","name":"msg","queueName":"q","connection":"C"}]}`,
			wantErr: "direction",
		},
		{
			name: "missing direction", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","name":"msg","queueName":"q","connection":"C"}]}`,
			wantErr: "direction",
		},
		{
			name: "trigger bound as output", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","direction":"out","name":"msg","queueName":"q","connection":"C"}]}`,
			wantErr: "direction",
		},
		{
			name: "http trigger and http output swapped", fn: "f",
			json:    `{"bindings":[{"type":"httpTrigger","direction":"out","name":"req","methods":["get"],"route":"x"},{"type":"http","direction":"in","name":"res"}]}`,
			wantErr: "direction",
		},
		{
			name: "binding without a name", fn: "f",
			json:    `{"bindings":[{"type":"serviceBusTrigger","direction":"in","queueName":"q","connection":"C"}]}`,
			wantErr: "name",
		},
		{
			name: "unsupported trigger", fn: "f",
			json:    `{"bindings":[{"type":"blobTrigger","direction":"in","name":"b","path":"c/{name}"}]}`,
			wantErr: "not supported",
		},
		{name: "invalid name: starts with a digit", fn: "1discover", json: sbJSON, wantErr: "invalid function name"},
		{name: "invalid name: dot", fn: "dis.cover", json: sbJSON, wantErr: "invalid function name"},
		{name: "invalid name: empty", fn: "", json: sbJSON, wantErr: "invalid function name"},
		{name: "invalid name: too long", fn: "a" + strings.Repeat("b", 128), json: sbJSON, wantErr: "invalid function name"},
		{name: "not JSON", fn: "f", json: `{"bindings":`, wantErr: "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := funchost.ParseFunction(tt.fn, []byte(tt.json))
			if err == nil {
				t.Fatal("ParseFunction accepted it")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		route   string
		methods []string
		want    []string
	}{
		{"requests", []string{"post"}, []string{"POST /api/requests"}},
		{"requests/{id}", []string{"get"}, []string{"GET /api/requests/{id}"}},
		{"requests/{id:guid}", []string{"get"}, []string{"GET /api/requests/{id}"}},
		{"requests/{id:int:min(1)}/export-link", []string{"post"}, []string{"POST /api/requests/{id}/export-link"}},
		{"a/{x:alpha}/b/{y:length(3)}", []string{"GET", "delete"}, []string{"GET /api/a/{x}/b/{y}", "DELETE /api/a/{x}/b/{y}"}},
		{"files/{*path}", []string{"get"}, []string{"GET /api/files/{path...}"}},
		{"dup", []string{"get", "GET"}, []string{"GET /api/dup"}},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			f := funchost.Function{Name: "f", Bindings: []funchost.Binding{
				{Type: funchost.HTTPTrigger, Direction: "in", Name: "req", Route: tt.route, Methods: tt.methods},
				{Type: "http", Direction: "out", Name: "res"},
			}}
			if got := f.Patterns(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Patterns() = %q, want %q", got, tt.want)
			}
		})
	}
	sb, err := funchost.ParseFunction("q", []byte(sbJSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.Patterns(); got != nil {
		t.Errorf("serviceBus function Patterns() = %q, want nil", got)
	}
}

func httpFn(methods, route string) string {
	return `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","methods":["` + methods + `"],"route":"` + route + `"},
		{"type":"http","direction":"out","name":"res"}]}`
}

func TestLoadFunctions(t *testing.T) {
	tests := []struct {
		name      string
		fsys      fstest.MapFS
		wantNames []string
		wantErr   string
	}{
		{
			name: "valid set",
			fsys: fstest.MapFS{
				"requests-create/function.json": {Data: []byte(httpJSON)},
				"requests-get/function.json":    {Data: []byte(httpFn("get", "requests/{id}"))},
				"requests-list/function.json":   {Data: []byte(httpFn("get", "requests"))},
				"discover/function.json":        {Data: []byte(sbJSON)},
				"discover/main.go":              {Data: []byte("package discover")},
				"host.json":                     {Data: []byte(`{"version":"2.0"}`)},
				"nested/deeper/function.json":   {Data: []byte("ignored: not directly under the root")},
			},
			wantNames: []string{"discover", "requests-create", "requests-get", "requests-list"},
		},
		{
			name: "duplicate route",
			fsys: fstest.MapFS{
				"a/function.json": {Data: []byte(httpFn("get", "requests"))},
				"b/function.json": {Data: []byte(httpFn("get", "requests"))},
			},
			wantErr: "also served by a",
		},
		{
			name: "duplicate route through a constraint",
			fsys: fstest.MapFS{
				"a/function.json": {Data: []byte(httpFn("get", "requests/{id}"))},
				"b/function.json": {Data: []byte(httpFn("get", "requests/{id:guid}"))},
			},
			wantErr: "also served by a",
		},
		{
			// Different wildcard names match the same requests: the host
			// could not tell them apart either, and a ServeMux panics.
			name: "conflicting routes",
			fsys: fstest.MapFS{
				"a/function.json": {Data: []byte(httpFn("get", "requests/{id}"))},
				"b/function.json": {Data: []byte(httpFn("get", "requests/{rid}"))},
			},
			wantErr: `conflicts with "GET /api/requests/{id}" of a`,
		},
		{
			name: "same route, other method",
			fsys: fstest.MapFS{
				"a/function.json": {Data: []byte(httpFn("get", "requests"))},
				"b/function.json": {Data: []byte(httpFn("post", "requests"))},
			},
			wantNames: []string{"a", "b"},
		},
		{
			name:    "invalid definition",
			fsys:    fstest.MapFS{"a/function.json": {Data: []byte(`{"bindings":[]}`)}},
			wantErr: "function a",
		},
		{
			name:    "invalid folder name",
			fsys:    fstest.MapFS{"my func/function.json": {Data: []byte(sbJSON)}},
			wantErr: "invalid function name",
		},
		{
			name:    "no definitions",
			fsys:    fstest.MapFS{"host.json": {Data: []byte(`{}`)}},
			wantErr: "no */function.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fns, err := funchost.LoadFunctions(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadFunctions error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFunctions: %v", err)
			}
			var names []string
			for _, f := range fns {
				names = append(names, f.Name)
			}
			if !reflect.DeepEqual(names, tt.wantNames) {
				t.Errorf("functions = %q, want %q", names, tt.wantNames)
			}
		})
	}
}

func TestQueueOf(t *testing.T) {
	fns, err := funchost.LoadFunctions(fstest.MapFS{
		"discover/function.json":        {Data: []byte(sbJSON)},
		"requests-create/function.json": {Data: []byte(httpJSON)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"discover": "dsr-discover", "requests-create": "", "missing": ""} {
		if got := funchost.QueueOf(fns, name); got != want {
			t.Errorf("QueueOf(%s) = %q, want %q", name, got, want)
		}
	}
}

// TestRealDefinitions checks the app's own function.json files.
func TestRealDefinitions(t *testing.T) {
	fns, err := functions.Definitions()
	if err != nil {
		t.Fatalf("functions.Definitions: %v", err)
	}
	var queues, https, timers []string
	for _, f := range fns {
		tr := f.Trigger()
		switch tr.Type {
		case funchost.HTTPTrigger:
			https = append(https, f.Name)
			want := "function"
			if f.Name == "health" || f.Name == "openapi" || f.Name == "webhook-callback" || f.Name == "console" || f.Name == "portal" || f.Name == "transmit-key" {
				// The callback checks each delivery's signature; the
				// console signs people in itself.
				want = "anonymous"
			}
			if tr.AuthLevel != want {
				t.Errorf("%s: authLevel %q, want %q", f.Name, tr.AuthLevel, want)
			}
			if len(f.Patterns()) == 0 {
				t.Errorf("%s: no route patterns", f.Name)
			}
		case funchost.ServiceBusTrigger:
			queues = append(queues, tr.QueueName)
			if tr.Connection != "ServiceBusConnection" {
				t.Errorf("%s: connection %q, want ServiceBusConnection", f.Name, tr.Connection)
			}
			if strings.HasSuffix(tr.QueueName, "/$deadletterqueue") != strings.HasSuffix(f.Name, "-deadletter") {
				t.Errorf("%s listens on %s: dead-letter functions and queues must match", f.Name, tr.QueueName)
			}
		case funchost.TimerTrigger:
			timers = append(timers, f.Name+" "+tr.Schedule)
			if _, err := f.Schedule(); err != nil {
				t.Errorf("%s: %v", f.Name, err)
			}
		default:
			t.Errorf("%s: unexpected trigger %s", f.Name, tr.Type)
		}
	}
	if !contains(https, "health") {
		t.Errorf("no health function among %q", https)
	}
	sort.Strings(queues)
	want := []string{"dsr-discover", "dsr-discover/$deadletterqueue", "dsr-erase", "dsr-erase/$deadletterqueue", "dsr-export", "dsr-export/$deadletterqueue", "dsr-intake", "dsr-scan", "dsr-verify", "dsr-verify/$deadletterqueue"}
	if !reflect.DeepEqual(queues, want) {
		t.Errorf("queues = %q, want %q", queues, want)
	}
	if want := []string{"sweeper 0 */5 * * * *"}; !reflect.DeepEqual(timers, want) {
		t.Errorf("timers = %q, want %q", timers, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

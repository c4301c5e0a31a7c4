package funchost_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dsr-functions/dsr/shared/funchost"
)

// hostPayload is the reference document's example, verbatim: what the
// Functions host POSTs for a queue message whose body is {"id":"42"}.
const hostPayload = `{"Data":{"msg":"\"{\\\"id\\\":\\\"42\\\"}\""},
 "Metadata":{"DeliveryCount":"1","MessageId":"\"a1b2\"","SequenceNumber":"17","ContentType":"\"application/json\"",
   "EnqueuedTimeUtc":"2025-05-01T12:34:56","ApplicationProperties":{"tenant":"t1"},"UserProperties":{"tenant":"t1"},
   "sys":{"MethodName":"discover","UtcNow":"2025-05-01T12:34:57.12Z","RandGuid":"..."}}}`

// hostEncode encodes a message body as the host does for a string-bound
// trigger: JsonConvert.SerializeObject(body), then that string inside the
// payload.
func hostEncode(body []byte) json.RawMessage {
	once, _ := json.Marshal(string(body))
	twice, _ := json.Marshal(string(once))
	return twice
}

func decodeInvoke(t *testing.T, payload string) *funchost.InvokeRequest {
	t.Helper()
	var req funchost.InvokeRequest
	if err := json.Unmarshal([]byte(payload), &req); err != nil {
		t.Fatalf("payload does not decode: %v", err)
	}
	return &req
}

func TestDecodeQueueMessageShapes(t *testing.T) {
	enqueued := time.Date(2025, 5, 1, 12, 34, 56, 0, time.UTC)
	tests := []struct {
		name    string
		payload string
		want    funchost.QueueMessage
	}{
		{
			name:    "host shape (double-encoded), verbatim from the reference",
			payload: hostPayload,
			want: funchost.QueueMessage{
				Function: "discover", Body: []byte(`{"id":"42"}`), MessageID: "a1b2", DeliveryCount: 1,
				EnqueuedTime: enqueued, ContentType: "application/json", Properties: map[string]any{"tenant": "t1"},
			},
		},
		{
			name:    "docs shape (encoded once), as in the brief",
			payload: `{"Data":{"msg":{"id":"42"}},"Metadata":{"DeliveryCount":1,"MessageId":"a1b2"}}`,
			want:    funchost.QueueMessage{Body: []byte(`{"id":"42"}`), MessageID: "a1b2", DeliveryCount: 1},
		},
		{
			name: "docs shape with every field",
			payload: `{"Data":{"msg":{"id":"42"}},"Metadata":{"DeliveryCount":1,"MessageId":"a1b2","SequenceNumber":17,
				"ContentType":"application/json","EnqueuedTimeUtc":"2025-05-01T12:34:56Z","ApplicationProperties":{"tenant":"t1"},
				"sys":{"MethodName":"discover"}}}`,
			want: funchost.QueueMessage{
				Function: "discover", Body: []byte(`{"id":"42"}`), MessageID: "a1b2", DeliveryCount: 1,
				EnqueuedTime: enqueued, ContentType: "application/json", Properties: map[string]any{"tenant": "t1"},
			},
		},
		{
			name: "host shape, dead-lettered, UserProperties only, third delivery",
			payload: `{"Data":{"msg":"\"{\\\"id\\\":\\\"42\\\"}\""},"Metadata":{"DeliveryCount":"3","MessageId":"\"a1b2\"",
				"DeadLetterSource":"\"dsr-discover\"","EnqueuedTimeUtc":"2025-05-01T12:34:56",
				"UserProperties":{"DeadLetterReason":"MaxDeliveryCountExceeded","DeadLetterErrorDescription":"too many"}}}`,
			want: funchost.QueueMessage{
				Body: []byte(`{"id":"42"}`), MessageID: "a1b2", DeliveryCount: 3, EnqueuedTime: enqueued,
				Properties:       map[string]any{"DeadLetterReason": "MaxDeliveryCountExceeded", "DeadLetterErrorDescription": "too many"},
				DeadLetterReason: "MaxDeliveryCountExceeded", DeadLetterDescription: "too many", DeadLetterSource: "dsr-discover",
			},
		},
		{
			name:    "no DeliveryCount means first delivery",
			payload: `{"Data":{"msg":"\"abc\""},"Metadata":{}}`,
			want:    funchost.QueueMessage{Body: []byte("abc"), DeliveryCount: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := funchost.DecodeQueueMessage(decodeInvoke(t, tt.payload), "msg")
			if err != nil {
				t.Fatalf("DecodeQueueMessage: %v", err)
			}
			if got.EnqueuedTime.Location() != time.UTC {
				t.Errorf("EnqueuedTime location = %v, want UTC", got.EnqueuedTime.Location())
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("decoded\n got %+v (body %s)\nwant %+v (body %s)", *got, got.Body, tt.want, tt.want.Body)
			}
		})
	}
}

func TestDecodeQueueMessageMissingBinding(t *testing.T) {
	if _, err := funchost.DecodeQueueMessage(decodeInvoke(t, hostPayload), "message"); err == nil {
		t.Fatal("a payload without Data.message decoded")
	}
}

func TestUnwrapBodyString(t *testing.T) {
	tests := []struct {
		name       string
		raw        string
		wantUnwrap string
		wantBody   string
		wantString string
	}{
		{"object, host", `"\"{\\\"id\\\":\\\"42\\\"}\""`, `{"id":"42"}`, `{"id":"42"}`, `{"id":"42"}`},
		{"object, docs", `{"id":"42"}`, `{"id":"42"}`, `{"id":"42"}`, `{"id":"42"}`},
		{"object, string once", `"{\"id\":\"42\"}"`, `{"id":"42"}`, `{"id":"42"}`, `{"id":"42"}`},
		{"array, host", `"\"[1,2]\""`, `[1,2]`, `[1,2]`, `[1,2]`},
		{"not JSON, host", `"\"abc\""`, `"abc"`, `abc`, `abc`},
		{"not JSON, docs", `"abc"`, `"abc"`, `abc`, `abc`},
		{"number, host", `"4"`, `4`, `4`, `4`},
		{"number, docs", `4`, `4`, `4`, `4`},
		{"negative float, host", `"-1.5e3"`, `-1.5e3`, `-1.5e3`, `-1.5e3`},
		{"string body that looks like a number, host", `"\"12345\""`, `12345`, `12345`, `12345`},
		{"string body that looks like a number, docs", `"12345"`, `12345`, `12345`, `12345`},
		{"leading zeros are not a number, host", `"\"007\""`, `"007"`, `007`, `007`},
		{"leading zeros are not a number, docs", `"007"`, `"007"`, `007`, `007`},
		{"bool, host", `"true"`, `true`, `true`, `true`},
		{"null", `null`, `null`, `null`, ``},
		{"empty string, host", `"\"\""`, `""`, ``, ``},
		{"empty string, docs", `""`, `""`, ``, ``},
		{"blank string", `"   "`, `"   "`, `   `, `   `},
		{"surrounding space", " \t\"4\"\n", `4`, `4`, `4`},
		{"unicode escapes", `"\"caf\\u00e9\""`, `"caf\u00e9"`, `café`, `café`},
		{"date, host", `"2025-05-01T12:34:56"`, `"2025-05-01T12:34:56"`, `2025-05-01T12:34:56`, `2025-05-01T12:34:56`},
		{"invalid JSON passes through", `{"id":`, `{"id":`, `{"id":`, `{"id":`},
		{"broken string passes through", `"abc`, `"abc`, `"abc`, `"abc`},
		{"six layers deep", layers(`{"a":1}`, 6), `{"a":1}`, `{"a":1}`, `{"a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := json.RawMessage(tt.raw)
			if got := string(funchost.Unwrap(raw)); got != tt.wantUnwrap {
				t.Errorf("Unwrap(%s) = %s, want %s", tt.raw, got, tt.wantUnwrap)
			}
			if got := string(funchost.Body(raw)); got != tt.wantBody {
				t.Errorf("Body(%s) = %q, want %q", tt.raw, got, tt.wantBody)
			}
			if got := funchost.String(raw); got != tt.wantString {
				t.Errorf("String(%s) = %q, want %q", tt.raw, got, tt.wantString)
			}
		})
	}
}

// layers wraps v in n JSON string layers.
func layers(v string, n int) string {
	for range n {
		b, _ := json.Marshal(v)
		v = string(b)
	}
	return v
}

func TestBodyRoundTripsHostEncoding(t *testing.T) {
	bodies := []string{`{"id":"42"}`, `[{"a":[1,2]}]`, `abc`, `12345`, `not "json"`, `<b>&amp;</b>`, "line\nbreak", `{"x":"\u2028"}`, ` padded `}
	for _, body := range bodies {
		t.Run(body, func(t *testing.T) {
			want := body
			if json.Valid([]byte(body)) {
				want = strings.TrimSpace(body)
			}
			if got := string(funchost.Body(hostEncode([]byte(body)))); got != want {
				t.Errorf("Body(host(%q)) = %q", body, got)
			}
		})
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		raw     string
		want    int64
		wantErr bool
	}{
		{`"1"`, 1, false},
		{`1`, 1, false},
		{`"\"17\""`, 17, false},
		{`"-3"`, -3, false},
		{`"9223372036854775807"`, 9223372036854775807, false},
		{`"1.5"`, 0, true},
		{`"abc"`, 0, true},
		{`null`, 0, true},
		{``, 0, true},
		{`"99999999999999999999"`, 0, true},
	}
	for _, tt := range tests {
		got, err := funchost.Int(json.RawMessage(tt.raw))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("Int(%s) = %d, %v; want %d, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestTime(t *testing.T) {
	at := time.Date(2025, 5, 1, 12, 34, 56, 0, time.UTC)
	tests := []struct {
		raw     string
		want    time.Time
		wantErr bool
	}{
		{`"2025-05-01T12:34:56"`, at, false}, // host: second precision, no zone
		{`"\"2025-05-01T12:34:56\""`, at, false},
		{`"2025-05-01T12:34:56Z"`, at, false},
		{`"2025-05-01T14:34:56+02:00"`, at, false},
		{`"2025-05-01T12:34:56.1234567"`, at.Add(123456700), false},
		{`"2025-05-01T12:34:56.12Z"`, at.Add(120 * time.Millisecond), false},
		{`"05/01/2025 12:34:56"`, at, false},
		{`"yesterday"`, time.Time{}, true},
		{`null`, time.Time{}, true},
		{``, time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := funchost.Time(json.RawMessage(tt.raw))
		if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
			t.Errorf("Time(%s) = %v, %v; want %v, error %v", tt.raw, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.Location() != time.UTC {
			t.Errorf("Time(%s) location = %v, want UTC", tt.raw, got.Location())
		}
	}
}

func TestObject(t *testing.T) {
	tests := []struct {
		raw  string
		want map[string]any
	}{
		{`{"tenant":"t1","n":2}`, map[string]any{"tenant": "t1", "n": 2.0}},
		{`"{\"tenant\":\"t1\"}"`, map[string]any{"tenant": "t1"}},
		{`{}`, map[string]any{}},
		{`null`, nil},
		{`[1]`, nil},
		{`"abc"`, nil},
		{``, nil},
	}
	for _, tt := range tests {
		if got := funchost.Object(json.RawMessage(tt.raw)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Object(%s) = %#v, want %#v", tt.raw, got, tt.want)
		}
	}
}

// FuzzUnwrap: the decoders never panic; a value encoded twice (host) unwraps
// to the same JSON as the value encoded once (docs); string bodies survive
// the host's double encoding.
func FuzzUnwrap(f *testing.F) {
	for _, s := range []string{
		`{"id":"42"}`, `"\"{\\\"id\\\":\\\"42\\\"}\""`, `"\"abc\""`, `"abc"`, `4`, `"4"`, `"\"12345\""`,
		`null`, `""`, `"   "`, `[1,"2",{"3":4}]`, `"2025-05-01T12:34:56"`, `{"id":`, `"abc`, ` "4" `,
		layers(`{"a":1}`, 5), layers("1", 8), "\"\xff\"", `"\u00a0{}"`, "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw := json.RawMessage(data)
		u := funchost.Unwrap(raw)
		_ = funchost.Body(raw)
		_ = funchost.String(raw)
		_, _ = funchost.Int(raw)
		_, _ = funchost.Time(raw)
		_ = funchost.Object(raw)
		if json.Valid(data) && !json.Valid(u) {
			t.Fatalf("Unwrap(%q) = %q: valid JSON in, invalid out", data, u)
		}
		if !utf8.Valid(data) {
			return // json.Marshal replaces invalid UTF-8, so re-encoding is lossy
		}
		if json.Valid(data) {
			twice, _ := json.Marshal(string(data))
			if got, want := funchost.Unwrap(twice), funchost.Unwrap(raw); !bytes.Equal(got, want) {
				t.Fatalf("Unwrap(twice-encoded %q) = %q, Unwrap(once) = %q", data, got, want)
			}
		}
		if !json.Valid(bytes.TrimSpace(data)) {
			// A body that is not JSON arrives intact through both encodings.
			if got := funchost.Body(hostEncode(data)); !bytes.Equal(got, data) {
				t.Fatalf("Body(host(%q)) = %q", data, got)
			}
			docs, _ := json.Marshal(string(data))
			if got := funchost.Body(docs); !bytes.Equal(got, data) {
				t.Fatalf("Body(docs(%q)) = %q", data, got)
			}
		}
	})
}

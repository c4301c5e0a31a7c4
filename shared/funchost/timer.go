package funchost

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/dsr-functions/dsr/shared/ncrontab"
)

// TimerFunc handles one timer tick. An error fails the invocation (non-2xx);
// the host does not retry a timer (the next tick comes on schedule). The
// error text reaches logs: it must not hold personal data.
type TimerFunc func(ctx context.Context, info *TimerInfo) error

// TimerInfo is what a timer-triggered function is told, as the host sends it
// in Data.<binding>:
//
//	{"Schedule":{"AdjustForDST":true},
//	 "ScheduleStatus":{"Last":"…","Next":"…","LastUpdated":"…"},
//	 "IsPastDue":false}
type TimerInfo struct {
	Function     string
	InvocationID string
	AdjustForDST bool
	// Last, Next and LastUpdated come from ScheduleStatus; zero when the
	// host sent none (the first run, or no storage for schedule monitoring).
	Last, Next, LastUpdated time.Time
	// IsPastDue: this tick is late (the app was down when it was due).
	IsPastDue bool
}

// DecodeTimerInfo reads the trigger value of a timer invocation whose
// trigger binding is named binding. It tolerates the value sent as an
// object or serialised into a string, field names in any case, booleans as
// strings, and the host's date-time shapes; a missing ScheduleStatus is fine.
func DecodeTimerInfo(req *InvokeRequest, binding string) (*TimerInfo, error) {
	raw, ok := req.Data[binding]
	if !ok {
		return nil, fmt.Errorf("invocation has no Data.%s", binding)
	}
	var v struct {
		Schedule       map[string]json.RawMessage `json:"Schedule"`
		ScheduleStatus map[string]json.RawMessage `json:"ScheduleStatus"`
		IsPastDue      json.RawMessage            `json:"IsPastDue"`
	}
	inner := Unwrap(raw)
	if string(inner) != "null" {
		if err := json.Unmarshal(inner, &v); err != nil {
			return nil, fmt.Errorf("Data.%s is not timer information: %w", binding, err)
		}
	}
	info := &TimerInfo{IsPastDue: String(v.IsPastDue) == "true" || String(v.IsPastDue) == "True"}
	lookup := func(m map[string]json.RawMessage, key string) json.RawMessage {
		if r, ok := m[key]; ok {
			return r
		}
		for k, r := range m {
			if strings.EqualFold(k, key) {
				return r
			}
		}
		return nil
	}
	if d := String(lookup(v.Schedule, "AdjustForDST")); d == "true" || d == "True" {
		info.AdjustForDST = true
	}
	for key, dst := range map[string]*time.Time{"Last": &info.Last, "Next": &info.Next, "LastUpdated": &info.LastUpdated} {
		if r := lookup(v.ScheduleStatus, key); r != nil {
			if t, err := Time(r); err == nil {
				*dst = t
			}
		}
	}
	if sys := Object(req.Metadata["sys"]); sys != nil {
		if name, ok := sys["MethodName"].(string); ok {
			info.Function = name
		}
	}
	return info, nil
}

// TimerPayload encodes a timer tick as the Functions host does: the timer
// information as an object in Data.<binding> (ScheduleStatus dates in ISO
// 8601 with their offset), and sys metadata.
func TimerPayload(f Function, last, next time.Time, pastDue bool, now time.Time) ([]byte, error) {
	iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.0000000+00:00") }
	status := map[string]string{"Next": iso(next), "LastUpdated": iso(now)}
	if !last.IsZero() {
		status["Last"] = iso(last)
	} else {
		status["Last"] = "0001-01-01T00:00:00"
	}
	info := map[string]any{
		"Schedule":       map[string]bool{"AdjustForDST": true},
		"ScheduleStatus": status,
		"IsPastDue":      pastDue,
	}
	md := map[string]any{
		"sys": map[string]string{"MethodName": f.Name, "UtcNow": now.UTC().Format(time.RFC3339Nano), "RandGuid": newGUID()},
	}
	b, err := json.Marshal(map[string]any{"Data": map[string]any{f.Trigger().Name: info}, "Metadata": md})
	if err != nil {
		return nil, fmt.Errorf("encode timer invocation: %w", err)
	}
	return b, nil
}

// Schedule parses a timer function's NCRONTAB schedule.
func (f Function) Schedule() (*ncrontab.Schedule, error) {
	t := f.Trigger()
	if t.Type != TimerTrigger {
		return nil, fmt.Errorf("function %s is not timer triggered", f.Name)
	}
	return ncrontab.Parse(t.Schedule)
}

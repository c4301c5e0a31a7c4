package multi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsr-functions/dsr/shared/sources"
)

// memory is an in-memory connector over fixed records per dataset.
type memory struct {
	records   map[string][]sources.Record
	fail      error
	delay     time.Duration
	delegates bool
	// gate, when set, makes Discover wait until every part has started:
	// it completes only if the parts run concurrently.
	gate    *sync.WaitGroup
	applied []string
	calls   atomic.Int32
}

func (m *memory) Discover(ctx context.Context, _ sources.Subject) (*sources.Discovery, error) {
	m.calls.Add(1)
	if m.gate != nil {
		m.gate.Done()
		done := make(chan struct{})
		go func() { m.gate.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			return nil, errors.New("the other parts never started: discovery is not concurrent")
		}
	}
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if m.fail != nil {
		return nil, m.fail
	}
	d := &sources.Discovery{}
	for name, recs := range m.records {
		dm := sources.DatasetMatches{Dataset: name, Records: int64(len(recs))}
		if len(recs) > 0 {
			loc := sources.Location{Blob: name}
			for i := range recs {
				loc.Ordinals = append(loc.Ordinals, int64(i))
			}
			dm.Locations = []sources.Location{loc}
		}
		d.Datasets = append(d.Datasets, dm)
	}
	return d, nil
}

func (m *memory) Read(_ context.Context, dm sources.DatasetMatches, emit func(sources.Record) error) error {
	for _, r := range m.records[dm.Dataset] {
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}

func (m *memory) Delegates(string) bool { return m.delegates }

func (m *memory) Apply(_ context.Context, dataset string, ch sources.Change) (sources.ChangeResult, error) {
	m.applied = append(m.applied, dataset+":"+ch.Action)
	return sources.ChangeResult{Deleted: int64(len(m.records[dataset]))}, nil
}

// rewriting is a memory connector that can also rewrite.
type rewriting struct{ memory }

func (r *rewriting) Rewrite(_ context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	var res sources.RewriteResult
	for _, o := range loc.Ordinals {
		next, err := edit(o, r.records[dataset][o])
		if err != nil {
			return res, err
		}
		if next == nil {
			res.Deleted++
		} else {
			res.Replaced++
		}
	}
	return res, nil
}

func rec(v string) sources.Record {
	return sources.Record{Fields: []sources.Field{{Name: "v", Value: v}}}
}

func TestDiscoverMergesInOrderAndKeepsOthersWhenOneFails(t *testing.T) {
	gate := &sync.WaitGroup{}
	gate.Add(3)
	blob := &rewriting{memory{records: map[string][]sources.Record{"contacts": {rec("a"), rec("b")}, "notes": nil}, gate: gate}}
	pg := &rewriting{memory{records: map[string][]sources.Record{"pg-contacts": {rec("c")}}, gate: gate}}
	hook := &memory{fail: errors.New("HTTP 503 after 5 attempts"), delegates: true, gate: gate}
	c, err := New([]string{"pg-contacts", "contacts", "billing", "notes"},
		Part{Name: "blob", Datasets: []string{"contacts", "notes"}, Connector: blob},
		Part{Name: "crm-db", Datasets: []string{"pg-contacts"}, Connector: pg},
		Part{Name: "billing-system", Datasets: []string{"billing"}, Connector: hook},
	)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Discover(context.Background(), sources.Subject{})
	if err != nil {
		t.Fatal(err)
	}
	for _, dm := range d.Datasets {
		if strings.Contains(dm.Error, "not concurrent") {
			t.Fatal(dm.Error)
		}
	}
	var names []string
	for _, dm := range d.Datasets {
		names = append(names, dm.Dataset)
	}
	if want := []string{"pg-contacts", "contacts", "billing", "notes"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("datasets %v, want %v", names, want)
	}
	if d.Datasets[0].Records != 1 || d.Datasets[1].Records != 2 || d.Datasets[3].Records != 0 {
		t.Errorf("counts wrong: %+v", d.Datasets)
	}
	if got := d.Datasets[2].Error; got != "billing-system: HTTP 503 after 5 attempts" {
		t.Errorf("failed dataset error %q", got)
	}
	if f := d.Failed(); len(f) != 1 || f[0].Dataset != "billing" {
		t.Errorf("Failed() = %+v", f)
	}
	if d.Total() != 3 {
		t.Errorf("Total %d, want 3", d.Total())
	}
	// Reads go to the right part; a failed dataset cannot be read.
	var got []string
	if err := c.Read(context.Background(), d.Datasets[1], func(r sources.Record) error {
		got = append(got, r.Fields[0].Value.(string))
		return nil
	}); err != nil || !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("Read(contacts) = %v, %v", got, err)
	}
	if err := c.Read(context.Background(), d.Datasets[2], func(sources.Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "not discovered") {
		t.Errorf("Read(failed dataset) = %v", err)
	}
}

func TestDispatchRewriteAndApply(t *testing.T) {
	blob := &rewriting{memory{records: map[string][]sources.Record{"contacts": {rec("a")}}}}
	hook := &memory{records: map[string][]sources.Record{"billing": {rec("x"), rec("y")}}, delegates: true}
	plain := &memory{records: map[string][]sources.Record{"readonly": {rec("z")}}}
	c, err := New([]string{"contacts", "billing", "readonly"},
		Part{Name: "blob", Datasets: []string{"contacts"}, Connector: blob},
		Part{Name: "billing", Datasets: []string{"billing"}, Connector: hook},
		Part{Name: "ro", Datasets: []string{"readonly"}, Connector: plain},
	)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Rewrite(context.Background(), "contacts", sources.Location{Blob: "contacts", Ordinals: []int64{0}}, func(int64, sources.Record) (*sources.Record, error) { return nil, nil })
	if err != nil || res.Deleted != 1 {
		t.Errorf("Rewrite(contacts) = %+v, %v", res, err)
	}
	if _, err := c.Rewrite(context.Background(), "readonly", sources.Location{}, nil); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Errorf("Rewrite(readonly) = %v", err)
	}
	if c.Delegates("contacts") || !c.Delegates("billing") || c.Delegates("nope") {
		t.Error("Delegates answers wrongly")
	}
	cr, err := c.Apply(context.Background(), "billing", sources.Change{Action: "erasure", RequestID: "r1"})
	if err != nil || cr.Deleted != 2 || !reflect.DeepEqual(hook.applied, []string{"billing:erasure"}) {
		t.Errorf("Apply = %+v, %v, applied %v", cr, err, hook.applied)
	}
	if _, err := c.Apply(context.Background(), "contacts", sources.Change{Action: "erasure"}); err == nil {
		t.Error("Apply on a non-delegating dataset succeeded")
	}
	if _, err := c.Rewrite(context.Background(), "nope", sources.Location{}, nil); err == nil {
		t.Error("Rewrite on an unknown dataset succeeded")
	}
}

func TestDiscoverFailsOnChangeAndOnCancel(t *testing.T) {
	moved := &memory{fail: sources.ErrChanged}
	ok := &memory{records: map[string][]sources.Record{"a": nil}}
	c, err := New([]string{"a", "b"}, Part{Name: "x", Datasets: []string{"a"}, Connector: ok}, Part{Name: "y", Datasets: []string{"b"}, Connector: moved})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Discover(context.Background(), sources.Subject{}); !errors.Is(err, sources.ErrChanged) {
		t.Errorf("Discover = %v, want ErrChanged", err)
	}
	c, _ = New([]string{"a", "b"}, Part{Name: "blob", Datasets: []string{"a"}, Connector: &memory{fail: errors.New("container not found")}, Required: true},
		Part{Name: "y", Datasets: []string{"b"}, Connector: &memory{records: map[string][]sources.Record{"b": nil}}})
	if _, err := c.Discover(context.Background(), sources.Subject{}); err == nil || !strings.Contains(err.Error(), "blob: container not found") {
		t.Errorf("Discover with a failing required part = %v", err)
	}
	c, _ = New([]string{"a", "b"}, Part{Name: "x", Datasets: []string{"a"}, Connector: ok},
		Part{Name: "async-hook", Datasets: []string{"b"}, Connector: &memory{fail: fmt.Errorf("webhook: accepted: %w", sources.ErrPending)}})
	if _, err := c.Discover(context.Background(), sources.Subject{}); !errors.Is(err, sources.ErrPending) || !strings.Contains(err.Error(), "async-hook") {
		t.Errorf("Discover with a pending part = %v, want ErrPending naming the part", err)
	}
	d, err := c.Discover(GiveUpWaiting(context.Background()), sources.Subject{})
	if err != nil || !strings.Contains(d.Datasets[1].Error, "async-hook: no answer in time") || d.Datasets[0].Error != "" {
		t.Errorf("Discover giving up on a pending part = %+v, %v", d, err)
	}
	slow := &memory{records: map[string][]sources.Record{"a": nil}, delay: time.Minute}
	c, _ = New([]string{"a"}, Part{Name: "slow", Datasets: []string{"a"}, Connector: slow})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Discover(ctx, sources.Subject{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Discover after cancel = %v", err)
	}
}

func TestNewRejectsInconsistentParts(t *testing.T) {
	m := &memory{}
	if _, err := New([]string{"a"}, Part{Name: "x", Datasets: []string{"a"}, Connector: m}, Part{Name: "y", Datasets: []string{"a"}, Connector: m}); err == nil {
		t.Error("a dataset in two parts was accepted")
	}
	if _, err := New([]string{"a", "b"}, Part{Name: "x", Datasets: []string{"a"}, Connector: m}); err == nil {
		t.Error("a dataset in no part was accepted")
	}
	if _, err := New([]string{"a"}, Part{Name: "x", Datasets: []string{"a"}}); err == nil {
		t.Error("a part without a connector was accepted")
	}
	long := &memory{fail: errors.New(strings.Repeat("x", 1000))}
	c, _ := New([]string{"a"}, Part{Name: "x", Datasets: []string{"a"}, Connector: long})
	d, err := c.Discover(context.Background(), sources.Subject{})
	if err != nil || len(d.Datasets[0].Error) > maxReason+10 {
		t.Errorf("a long reason is not bounded: %d bytes, %v", len(d.Datasets[0].Error), err)
	}
}

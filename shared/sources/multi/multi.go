// Package multi combines the connectors of a sources config into one: it
// discovers over every system at once and sends each dataset's reads and
// changes to the connector that holds it. A system that fails discovery
// marks its datasets with the reason and leaves the others' results intact.
package multi

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Part is one connector and the datasets it holds.
type Part struct {
	// Name names the system in failure reasons: a connection name, or
	// "blob" for the app's Blob datasets.
	Name string
	// Datasets are the names of the datasets the connector holds.
	Datasets []string
	// Connector serves them; it may also be a sources.Rewriter and a
	// sources.Delegator.
	Connector sources.Connector
	// Required parts fail the whole discovery when they fail (the app's
	// own storage: if it fails, nothing else can work); the others only
	// mark their datasets.
	Required bool
}

// Connector dispatches to the parts by dataset name.
type Connector struct {
	order  []string
	parts  []Part
	byName map[string]*Part
}

var (
	_ sources.Connector = (*Connector)(nil)
	_ sources.Rewriter  = (*Connector)(nil)
	_ sources.Delegator = (*Connector)(nil)
)

// New combines parts. order lists every dataset once, in the order
// discoveries report them (the sources config's order); each must belong to
// exactly one part.
func New(order []string, parts ...Part) (*Connector, error) {
	c := &Connector{order: order, parts: parts, byName: map[string]*Part{}}
	for i := range c.parts {
		p := &c.parts[i]
		if p.Connector == nil {
			return nil, fmt.Errorf("multi: part %s has no connector", p.Name)
		}
		for _, d := range p.Datasets {
			if c.byName[d] != nil {
				return nil, fmt.Errorf("multi: dataset %s is in parts %s and %s", d, c.byName[d].Name, p.Name)
			}
			c.byName[d] = p
		}
	}
	if len(order) != len(c.byName) {
		return nil, fmt.Errorf("multi: order lists %d datasets, the parts hold %d", len(order), len(c.byName))
	}
	for _, d := range order {
		if c.byName[d] == nil {
			return nil, fmt.Errorf("multi: dataset %s is in no part", d)
		}
	}
	return c, nil
}

func (c *Connector) part(dataset string) (*Part, error) {
	p := c.byName[dataset]
	if p == nil {
		return nil, fmt.Errorf("multi: unknown dataset %q", dataset)
	}
	return p, nil
}

// Discover runs every part's discovery concurrently and merges the results
// in dataset order. If a part will answer later (sources.ErrPending), the
// whole discovery fails with an error wrapping sources.ErrPending, so the
// caller asks again later. A part that fails has each of its datasets reported
// with the reason in DatasetMatches.Error; Discover itself fails only when
// ctx ends, when a required part fails, or when a part reports
// sources.ErrChanged (the data moved under it: the caller retries).
func (c *Connector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	type result struct {
		disc *sources.Discovery
		err  error
	}
	results := make([]result, len(c.parts))
	var wg sync.WaitGroup
	for i := range c.parts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d, err := c.parts[i].Connector.Discover(ctx, subj)
			results[i] = result{d, err}
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	byName := map[string]sources.DatasetMatches{}
	var pending []string
	var pendingErrs []error
	for i, r := range results {
		p := &c.parts[i]
		if r.err != nil && errors.Is(r.err, sources.ErrPending) {
			if !givingUp(ctx) {
				pending = append(pending, p.Name)
				pendingErrs = append(pendingErrs, r.err)
				continue
			}
			r.err = errors.New("no answer in time: the system accepted the request but never delivered its result")
		}
		if r.err != nil {
			if errors.Is(r.err, sources.ErrChanged) || p.Required {
				return nil, fmt.Errorf("%s: %w", p.Name, r.err)
			}
			for _, d := range p.Datasets {
				byName[d] = sources.DatasetMatches{Dataset: d, Error: reason(p.Name, r.err)}
			}
			continue
		}
		for _, dm := range r.disc.Datasets {
			if c.byName[dm.Dataset] != p {
				return nil, fmt.Errorf("multi: part %s reported dataset %q it does not hold", p.Name, dm.Dataset)
			}
			byName[dm.Dataset] = dm
		}
		for _, d := range p.Datasets {
			if _, ok := byName[d]; !ok {
				byName[d] = sources.DatasetMatches{Dataset: d}
			}
		}
	}
	if len(pending) > 0 {
		// The parts' own errors are kept: they may say how far they have
		// got and when to ask again (a fanned-out scan).
		return nil, fmt.Errorf("waiting for %s: %w", strings.Join(pending, ", "), errors.Join(pendingErrs...))
	}
	out := &sources.Discovery{Datasets: make([]sources.DatasetMatches, 0, len(c.order))}
	for _, d := range c.order {
		out.Datasets = append(out.Datasets, byName[d])
	}
	return out, nil
}

type giveUpKey struct{}

// GiveUpWaiting returns ctx for a Discover that no longer waits: parts that
// would answer later are reported as failed instead.
func GiveUpWaiting(ctx context.Context) context.Context {
	return context.WithValue(ctx, giveUpKey{}, true)
}

func givingUp(ctx context.Context) bool { v, _ := ctx.Value(giveUpKey{}).(bool); return v }

// maxReason bounds a failure reason kept on a request.
const maxReason = 300

// reason is the failure kept on the request: the system's name and the
// connector's error, which connectors keep free of personal data.
func reason(system string, err error) string {
	s := system + ": " + err.Error()
	if len(s) > maxReason {
		s = s[:maxReason] + "…"
	}
	return s
}

// Read streams one dataset's discovered records from its connector.
func (c *Connector) Read(ctx context.Context, m sources.DatasetMatches, emit func(sources.Record) error) error {
	if m.Error != "" {
		return fmt.Errorf("multi: dataset %s was not discovered: %s", m.Dataset, m.Error)
	}
	p, err := c.part(m.Dataset)
	if err != nil {
		return err
	}
	return p.Connector.Read(ctx, m, emit)
}

// Rewrite changes records through the dataset's connector.
func (c *Connector) Rewrite(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit) (sources.RewriteResult, error) {
	p, err := c.part(dataset)
	if err != nil {
		return sources.RewriteResult{}, err
	}
	rw, ok := p.Connector.(sources.Rewriter)
	if !ok {
		return sources.RewriteResult{}, fmt.Errorf("multi: %s cannot change records of dataset %s", p.Name, dataset)
	}
	return rw.Rewrite(ctx, dataset, loc, edit)
}

// RewritePlanned changes records through the dataset's connector with
// plan when that connector can plan, else as Rewrite does (BeforeCommit is
// then not called, and the caller records what was done afterwards).
func (c *Connector) RewritePlanned(ctx context.Context, dataset string, loc sources.Location, edit sources.Edit, plan sources.CommitPlan) (sources.RewriteResult, error) {
	p, err := c.part(dataset)
	if err != nil {
		return sources.RewriteResult{}, err
	}
	if prw, ok := p.Connector.(sources.PlannedRewriter); ok {
		return prw.RewritePlanned(ctx, dataset, loc, edit, plan)
	}
	return c.Rewrite(ctx, dataset, loc, edit)
}

// Committed asks the dataset's connector whether a planned rewrite
// committed.
func (c *Connector) Committed(ctx context.Context, dataset, blob string, plan sources.PlanRef) (bool, string, error) {
	p, err := c.part(dataset)
	if err != nil {
		return false, "", err
	}
	prw, ok := p.Connector.(sources.PlannedRewriter)
	if !ok {
		return false, "", fmt.Errorf("multi: %s cannot tell whether a planned rewrite of dataset %s committed", p.Name, dataset)
	}
	return prw.Committed(ctx, dataset, blob, plan)
}

// Delegates reports whether the dataset's system applies changes itself.
func (c *Connector) Delegates(dataset string) bool {
	p := c.byName[dataset]
	if p == nil {
		return false
	}
	d, ok := p.Connector.(sources.Delegator)
	return ok && d.Delegates(dataset)
}

// Apply asks the dataset's system to make a change.
func (c *Connector) Apply(ctx context.Context, dataset string, ch sources.Change) (sources.ChangeResult, error) {
	p, err := c.part(dataset)
	if err != nil {
		return sources.ChangeResult{}, err
	}
	d, ok := p.Connector.(sources.Delegator)
	if !ok || !d.Delegates(dataset) {
		return sources.ChangeResult{}, fmt.Errorf("multi: %s does not apply changes to dataset %s itself", p.Name, dataset)
	}
	return d.Apply(ctx, dataset, ch)
}

var _ sources.PlannedRewriter = (*Connector)(nil)

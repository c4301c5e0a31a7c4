// Package blobdataset is the connector for NDJSON, CSV and JSON-array
// datasets in Blob Storage. Discovery streams every blob once per pass,
// rejects records with a byte-level prefilter before parsing, matches
// identifiers exactly after normalisation, searches free text for whole
// email tokens and phone numbers, and follows relations until no new record
// joins. The blobs of a dataset are streamed a few at a time, and one pass
// can serve many subjects (DiscoverMany). It records positions pinned to
// ETags: each matched record's ordinal and its byte offset and length. Read
// fetches those records back with ranged reads (or, for positions without
// byte offsets, by streaming the blob), refusing data that changed since
// discovery.
package blobdataset

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/sources"
)

// Connector reads Blob datasets described by a sources config. It is safe
// for concurrent use.
type Connector struct {
	cfg *sources.Config
	svc *service.Client
	// store is where discovery lists and streams blobs.
	store blobStore
	// reader is where Read reads blobs (nil on connectors that only
	// discover).
	reader blobReader
	// parallelism is how many blobs of one dataset a scan reads at once.
	parallelism int
	// fanout, when set, scans large datasets over the scan queue (fanout.go).
	fanout *Fanout
	// shardMatchers are the matchers of the jobs whose shards run here.
	shardMatchers matcherCache
	// index is the identifier index (nil: off); indexErr says why
	// WithIndex left it off.
	index    *indexer
	indexErr error
	// recent keeps the records the latest scans matched, for a Read
	// soon after (recent.go); nil: off.
	recent *recentRecords
	// largeBlobs are the single blobs ("container/name") found too large
	// to open early (early.go).
	largeBlobs sync.Map
}

var _ sources.Connector = (*Connector)(nil)

// DefaultParallelism is how many blobs of one dataset discovery scans at the
// same time unless WithParallelism says otherwise. Each scan streams its
// blob through a buffer of about 1 MiB (more only for longer records), so
// memory stays flat; four keeps two cores busy while other blobs wait on the
// network.
const DefaultParallelism = 4

// Option configures a Connector.
type Option func(*Connector)

// WithParallelism sets how many blobs of one dataset (a prefix holding many
// blobs) discovery scans at the same time; values below 1 mean 1. The
// result does not depend on it.
func WithParallelism(n int) Option {
	return func(c *Connector) { c.parallelism = max(1, n) }
}

// WithoutRecentRecords turns off the short-lived memory of matched records
// (recent.go): every Read downloads its records.
func WithoutRecentRecords() Option {
	return func(c *Connector) { c.recent = nil }
}

// New returns a connector over the datasets of cfg in the account of svc.
func New(cfg *sources.Config, svc *service.Client, opts ...Option) *Connector {
	st := azureStore{svc: svc}
	c := &Connector{cfg: cfg, svc: svc, store: st, reader: st, parallelism: DefaultParallelism, recent: newRecentRecords()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// keySet holds, per dataset and field, the values of the subject's matched
// records that other datasets reference.
type keySet map[string]map[string]map[string]struct{}

func (k keySet) add(dataset, field, value string) bool {
	if k[dataset] == nil {
		k[dataset] = map[string]map[string]struct{}{}
	}
	if k[dataset][field] == nil {
		k[dataset][field] = map[string]struct{}{}
	}
	if _, ok := k[dataset][field][value]; ok {
		return false
	}
	k[dataset][field][value] = struct{}{}
	return true
}

func (k keySet) has(dataset, field, value string) bool {
	_, ok := k[dataset][field][value]
	return ok
}

func (k keySet) size(dataset string) int {
	n := 0
	for _, vals := range k[dataset] {
		n += len(vals)
	}
	return n
}

// Discover finds the subject's records in every dataset. Datasets are
// scanned referenced-first; a dataset is scanned again only when the keys it
// relates to grew after its last scan, so the result is the fixed point.
//
// Matching is monotone (keys only grow, so a rescan matches a superset), so
// every pass but the last adds at least one record and discovery ends after
// at most one pass per matched record, however long a chain of relations
// (through cycles or a dataset relating to itself) is. A rescan that
// matches fewer records than before means the data changed during
// discovery: that fails with sources.ErrChanged rather than loop.
//
// The blobs of a dataset are scanned up to the connector's parallelism at a
// time; the result is the same as one by one (Locations in blob name order).
func (c *Connector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	ds, err := c.DiscoverMany(ctx, []sources.Subject{subj})
	if err != nil {
		return nil, err
	}
	return ds[0], nil
}

// subjectState is one subject's progress towards its fixed point.
type subjectState struct {
	subj    sources.Subject
	keys    keySet
	results map[string]*sources.DatasetMatches
	// seen[d] is, per referenced dataset, the key count when d was last
	// scanned for this subject.
	seen map[string]map[string]int
}

// due reports whether dataset d must be scanned (again) for the subject:
// never scanned, or the keys it relates to grew since.
func (st *subjectState) due(d *sources.Dataset) bool {
	prev, ok := st.seen[d.Name]
	if !ok {
		return true
	}
	for _, r := range d.Relations {
		if st.keys.size(r.References) != prev[r.References] {
			return true
		}
	}
	return false
}

// dependencyLevels groups datasets in Order into levels: a dataset's level
// is one more than the highest level of the datasets before it in order
// that it references (a reference to one after it, in a cycle, is followed
// on the next pass, as in order). The datasets of one level need nothing
// from each other within a pass, so DiscoverMany scans them together: a
// request waits for the longest chain of relations, not for every dataset
// one after another.
func dependencyLevels(order []*sources.Dataset) [][]*sources.Dataset {
	pos := make(map[string]int, len(order))
	for i, d := range order {
		pos[d.Name] = i
	}
	level := make(map[string]int, len(order))
	var out [][]*sources.Dataset
	for i, d := range order {
		l := 0
		for _, r := range d.Relations {
			if j, ok := pos[r.References]; ok && j < i {
				l = max(l, level[r.References]+1)
			}
		}
		level[d.Name] = l
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], d)
	}
	return out
}

// DiscoverMany discovers several subjects in one go: result i is what
// Discover(ctx, subjects[i]) returns. Each pass reads every blob once for
// all the subjects it is due for: one combined prefilter over every
// subject's identifiers and relation keys rejects lines, and only the
// lines it accepts are parsed and matched exactly, each against the
// subjects whose identifiers it holds. Relations are followed per subject
// to that subject's fixed point; a dataset is scanned again only for the
// subjects whose keys it relates to grew, and passes continue only while
// some subject's keys still grow. Within a pass, the datasets of one
// dependency level (dependencyLevels) are scanned together, up to the
// connector's parallelism at a time.
//
// A dataset whose data cannot be read (a DataError: a missing blob, a
// candidate record that cannot be parsed, a malformed or oversized line)
// is reported failed, permanently, for the subjects it was due for, and
// the other datasets go on. Other errors are shared: a blob that cannot be
// read for now, or a cancelled ctx, fails the whole call. Subjects may repeat; an empty list
// returns an empty result.
func (c *Connector) DiscoverMany(ctx context.Context, subjects []sources.Subject) ([]*sources.Discovery, error) {
	levels := dependencyLevels(c.cfg.Order())
	states := make([]*subjectState, len(subjects))
	for i, s := range subjects {
		keys := keySet{}
		for ds, fields := range c.cfg.SeedKeys(s) {
			for f, vals := range fields {
				for _, v := range vals {
					keys.add(ds, f, v)
				}
			}
		}
		states[i] = &subjectState{subj: s, keys: keys, results: map[string]*sources.DatasetMatches{}, seen: map[string]map[string]int{}}
	}
	// The small blobs of the later levels are downloaded now, while the
	// first level is scanned (early.go); the downloads stop when the
	// discovery returns.
	var early *earlyOpens
	if len(levels) > 1 && len(subjects) > 0 {
		ectx, cancel := context.WithCancel(ctx)
		defer cancel()
		early = c.openEarly(ectx, levels[1:])
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := false
		for _, level := range levels {
			// The level's due datasets are scanned together, then their
			// results are taken in order, as if scanned one by one.
			type levelScan struct {
				d     *sources.Dataset
				due   []*subjectState
				found []scanResult
				err   error
			}
			var scans []*levelScan
			for _, d := range level {
				var due []*subjectState
				for _, st := range states {
					if st.due(d) {
						due = append(due, st)
					}
				}
				if len(due) == 0 {
					continue
				}
				for _, st := range due {
					snap := map[string]int{}
					for _, r := range d.Relations {
						snap[r.References] = st.keys.size(r.References)
					}
					st.seen[d.Name] = snap
				}
				scans = append(scans, &levelScan{d: d, due: due})
			}
			_ = forEachN(ctx, len(scans), c.parallelism, func(ctx context.Context, i int) error {
				scans[i].found, scans[i].err = c.scan(ctx, scans[i].d, scans[i].due, early)
				return nil // every dataset's outcome is taken below
			})
			for _, sc := range scans {
				d, due, found, err := sc.d, sc.due, sc.found, sc.err
				var bad *sources.DataError
				if errors.As(err, &bad) {
					// Only this dataset's part fails, at once; the others go on.
					for _, st := range due {
						if old := st.results[d.Name]; old == nil || old.Error != bad.Error() {
							changed = true
						}
						st.results[d.Name] = &sources.DatasetMatches{Dataset: d.Name, Error: bad.Error(), Permanent: true}
					}
					continue
				}
				if err != nil {
					return nil, err
				}
				for k, st := range due {
					m := found[k]
					old := st.results[d.Name]
					if old != nil && m.matches.Records < old.Records {
						return nil, fmt.Errorf("dataset %s: %w (fewer records matched on a later pass)", d.Name, sources.ErrChanged)
					}
					if old == nil || old.Records != m.matches.Records {
						changed = true
					}
					st.results[d.Name] = &m.matches
					for _, kv := range m.keys {
						st.keys.add(d.Name, kv.field, kv.value)
					}
				}
			}
		}
		if !changed {
			break
		}
	}
	out := make([]*sources.Discovery, len(states))
	for i, st := range states {
		out[i] = &sources.Discovery{}
		for _, d := range c.cfg.Datasets {
			out[i].Datasets = append(out[i].Datasets, *st.results[d.Name])
		}
	}
	return out, nil
}

// rules are the exact matching rules of dataset d for one subject, with
// the keys of the subject's own records found so far (only read).
func rules(cfg *sources.Config, d *sources.Dataset, subj sources.Subject, keys keySet) *sources.Rules {
	r := &sources.Rules{Identifiers: d.Identifiers, FreeText: d.FreeText, Subject: subj, Region: cfg.DefaultPhoneRegion}
	for _, rel := range d.Relations {
		r.RelationFields = append(r.RelationFields, rel.Field)
	}
	r.Related = func(i int, v string) bool {
		rel := d.Relations[i]
		return keys.has(rel.References, rel.ReferencesField, v)
	}
	return r
}

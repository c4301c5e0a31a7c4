// Package blobdataset is the connector for NDJSON, CSV and JSON-array
// datasets in Blob Storage. Discovery streams every blob once per pass,
// rejects records with a byte-level prefilter before parsing, matches
// identifiers exactly after normalisation, searches free text for whole
// email tokens and phone numbers, and follows relations until no new record
// joins. It records positions pinned to ETags; Read streams those records
// back, refusing data that changed since discovery.
package blobdataset

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/dsr-functions/dsr/shared/match"
	"github.com/dsr-functions/dsr/shared/sources"
)

// Connector reads Blob datasets described by a sources config.
type Connector struct {
	cfg *sources.Config
	svc *service.Client
}

var _ sources.Connector = (*Connector)(nil)

// New returns a connector over the datasets of cfg in the account of svc.
func New(cfg *sources.Config, svc *service.Client) *Connector {
	return &Connector{cfg: cfg, svc: svc}
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
func (c *Connector) Discover(ctx context.Context, subj sources.Subject) (*sources.Discovery, error) {
	order := c.order()
	keys := keySet{}
	results := map[string]*sources.DatasetMatches{}
	// seen[d] is, per referenced dataset, the key count when d was last scanned.
	seen := map[string]map[string]int{}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		changed := false
		for _, d := range order {
			if prev, ok := seen[d.Name]; ok {
				stale := false
				for _, r := range d.Relations {
					if keys.size(r.References) != prev[r.References] {
						stale = true
					}
				}
				if !stale {
					continue
				}
			}
			snap := map[string]int{}
			for _, r := range d.Relations {
				snap[r.References] = keys.size(r.References)
			}
			seen[d.Name] = snap
			m, err := c.scan(ctx, d, subj, keys)
			if err != nil {
				return nil, err
			}
			old := results[d.Name]
			if old != nil && m.Records < old.Records {
				return nil, fmt.Errorf("dataset %s: %w (fewer records matched on a later pass)", d.Name, sources.ErrChanged)
			}
			if old == nil || old.Records != m.Records {
				changed = true
			}
			results[d.Name] = m
		}
		if !changed {
			break
		}
	}
	out := &sources.Discovery{}
	for _, d := range c.cfg.Datasets {
		out.Datasets = append(out.Datasets, *results[d.Name])
	}
	return out, nil
}

// order sorts datasets so that referenced datasets come before those that
// reference them (cycles are allowed and settle through extra passes).
func (c *Connector) order() []*sources.Dataset {
	var out []*sources.Dataset
	state := map[string]int{}
	var visit func(d *sources.Dataset)
	visit = func(d *sources.Dataset) {
		if state[d.Name] != 0 {
			return
		}
		state[d.Name] = 1
		for _, r := range d.Relations {
			visit(c.cfg.Dataset(r.References))
		}
		state[d.Name] = 2
		out = append(out, d)
	}
	for i := range c.cfg.Datasets {
		visit(&c.cfg.Datasets[i])
	}
	return out
}

// referencedFields are the fields of dataset d that other datasets reference.
func (c *Connector) referencedFields(d string) []string {
	var out []string
	for _, o := range c.cfg.Datasets {
		for _, r := range o.Relations {
			if r.References == d && !contains(out, r.ReferencesField) {
				out = append(out, r.ReferencesField)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// blobs lists the dataset's blobs in name order.
func (c *Connector) blobs(ctx context.Context, d *sources.Dataset) ([]string, error) {
	if d.Blob != "" {
		return []string{d.Blob}, nil
	}
	var names []string
	pager := c.svc.NewContainerClient(d.Container).NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: to.Ptr(d.Prefix)})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: list blobs: %w", d.Name, err)
		}
		for _, it := range page.Segment.BlobItems {
			names = append(names, *it.Name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// scan finds the subject's records in one dataset given the keys found so
// far, and adds the referenced fields of its matches to keys.
func (c *Connector) scan(ctx context.Context, d *sources.Dataset, subj sources.Subject, keys keySet) (*sources.DatasetMatches, error) {
	m := newMatcher(c.cfg, d, subj, keys)
	refs := c.referencedFields(d.Name)
	names, err := c.blobs(ctx, d)
	if err != nil {
		return nil, err
	}
	res := &sources.DatasetMatches{Dataset: d.Name}
	for _, name := range names {
		resp, err := c.svc.NewContainerClient(d.Container).NewBlobClient(name).DownloadStream(ctx, nil)
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) && d.Blob != "" {
			return nil, fmt.Errorf("dataset %s: blob %s/%s not found", d.Name, d.Container, name)
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %s: read blob %s: %w", d.Name, name, err)
		}
		loc := sources.Location{Blob: name, ETag: string(*resp.ETag)}
		err = iterate(ctx, resp.Body, d.Format, func(r *rawRecord) error {
			if !r.candidate(m.prefilter) {
				return nil
			}
			fields, err := r.fields()
			if err != nil {
				return fmt.Errorf("record %d is not a valid %s record", r.ordinal, d.Format)
			}
			if !m.matches(fields) {
				return nil
			}
			loc.Ordinals = append(loc.Ordinals, r.ordinal)
			for _, f := range refs {
				if v, ok := relationValue(fields, f); ok {
					keys.add(d.Name, f, v)
				}
			}
			return nil
		})
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("dataset %s: blob %s: %w", d.Name, name, err)
		}
		if len(loc.Ordinals) > 0 {
			res.Locations = append(res.Locations, loc)
			res.Records += int64(len(loc.Ordinals))
		}
	}
	return res, nil
}

// Read streams the records discovery found in one dataset, reading each blob
// conditionally on the ETag discovery saw.
func (c *Connector) Read(ctx context.Context, dm sources.DatasetMatches, emit func(sources.Record) error) error {
	d := c.cfg.Dataset(dm.Dataset)
	if d == nil {
		return fmt.Errorf("dataset %s: %w (no longer configured)", dm.Dataset, sources.ErrChanged)
	}
	for _, loc := range dm.Locations {
		etag := azcore.ETag(loc.ETag)
		resp, err := c.svc.NewContainerClient(d.Container).NewBlobClient(loc.Blob).DownloadStream(ctx, &blob.DownloadStreamOptions{
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfMatch: &etag}},
		})
		if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return fmt.Errorf("dataset %s: blob %s: %w", d.Name, loc.Blob, sources.ErrChanged)
		}
		if err != nil {
			return fmt.Errorf("dataset %s: read blob %s: %w", d.Name, loc.Blob, err)
		}
		next := 0
		err = iterate(ctx, resp.Body, d.Format, func(r *rawRecord) error {
			if next == len(loc.Ordinals) {
				return errStop
			}
			if r.ordinal != loc.Ordinals[next] {
				return nil
			}
			next++
			rec, err := r.ordered()
			if err != nil {
				return fmt.Errorf("record %d is not a valid %s record", r.ordinal, d.Format)
			}
			return emit(rec)
		})
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("dataset %s: blob %s: %w", d.Name, loc.Blob, err)
		}
		if next != len(loc.Ordinals) {
			return fmt.Errorf("dataset %s: blob %s: %w (records missing)", d.Name, loc.Blob, sources.ErrChanged)
		}
	}
	return nil
}

// lookup resolves a dotted field path in a parsed record.
func lookup(fields map[string]any, path string) any {
	if v, ok := fields[path]; ok {
		return v
	}
	var cur any = fields
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// scalar renders a string, number or bool value as a string.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, x != ""
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// relationValue is the value of a relation field (on either side of a
// relation), trimmed like ids; blank values relate nothing.
func relationValue(fields map[string]any, path string) (string, bool) {
	v, ok := scalar(lookup(fields, path))
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	return v, v != ""
}

// textValues yields every string inside a value (free text may be nested).
func textValues(v any, yield func(string) bool) bool {
	switch x := v.(type) {
	case string:
		return yield(x)
	case []any:
		for _, e := range x {
			if !textValues(e, yield) {
				return false
			}
		}
	case map[string]any:
		for _, e := range x {
			if !textValues(e, yield) {
				return false
			}
		}
	}
	return true
}

// matcher decides whether a record of one dataset belongs to the subject.
type matcher struct {
	d      *sources.Dataset
	subj   sources.Subject
	keys   keySet
	region string
	pf     *match.Prefilter
	// phoneTails are the last 7 digits of each subject phone, searched in
	// the digits of a line.
	phoneTails [][]byte
	digits     []byte
}

func newMatcher(cfg *sources.Config, d *sources.Dataset, subj sources.Subject, keys keySet) *matcher {
	m := &matcher{d: d, subj: subj, keys: keys, region: cfg.DefaultPhoneRegion}
	var pats []string
	pats = append(pats, subj.Emails...)
	for _, v := range subj.IDs {
		pats = append(pats, v)
	}
	for _, r := range d.Relations {
		for v := range keys[r.References][r.ReferencesField] {
			pats = append(pats, v)
		}
	}
	m.pf = match.NewPrefilter(pats)
	for _, p := range subj.Phones {
		tail := p
		if len(tail) > 7 {
			tail = tail[len(tail)-7:]
		}
		m.phoneTails = append(m.phoneTails, []byte(tail))
	}
	return m
}

// prefilter reports whether raw bytes may hold one of the subject's values.
func (m *matcher) prefilter(raw []byte) bool {
	if m.pf.Match(raw) {
		return true
	}
	if len(m.phoneTails) == 0 {
		return false
	}
	m.digits = match.AppendDigits(m.digits[:0], raw)
	for _, t := range m.phoneTails {
		if strings.Contains(string(m.digits), string(t)) {
			return true
		}
	}
	return false
}

// matches applies the exact rules to a parsed record.
func (m *matcher) matches(fields map[string]any) bool {
	for _, id := range m.d.Identifiers {
		v, ok := scalar(lookup(fields, id.Field))
		if !ok {
			continue
		}
		switch id.Kind {
		case sources.KindEmail:
			if e, err := match.NormalizeEmail(v); err == nil && contains(m.subj.Emails, e) {
				return true
			}
		case sources.KindPhone:
			if len(m.subj.Phones) > 0 {
				if p, err := match.NormalizePhone(v, m.region); err == nil && contains(m.subj.Phones, p) {
					return true
				}
			}
		case sources.KindID:
			name := id.IDName
			if name == "" {
				name = id.Field
			}
			if want, ok := m.subj.IDs[name]; ok && strings.TrimSpace(v) == want {
				return true
			}
		}
	}
	for _, r := range m.d.Relations {
		if v, ok := relationValue(fields, r.Field); ok && m.keys.has(r.References, r.ReferencesField, v) {
			return true
		}
	}
	for _, f := range m.d.FreeText {
		found := false
		textValues(lookup(fields, f), func(s string) bool {
			for _, e := range m.subj.Emails {
				if match.ContainsEmailToken(s, e) {
					found = true
					return false
				}
			}
			for _, p := range m.subj.Phones {
				if match.ContainsPhone(s, p, m.region) {
					found = true
					return false
				}
			}
			return true
		})
		if found {
			return true
		}
	}
	return false
}

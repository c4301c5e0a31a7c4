package blobdataset

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/dsr-functions/dsr/shared/sample"
	"github.com/dsr-functions/dsr/shared/sources"
)

// sampleConfig is sample/sources.json pointed at the fixture's container.
func (f *fixture) sampleConfig(keep ...string) *sources.Config {
	f.t.Helper()
	b, err := os.ReadFile("../../../sample/sources.json")
	if err != nil {
		f.t.Fatal(err)
	}
	cfg, err := sources.Parse(b)
	if err != nil {
		f.t.Fatalf("sample/sources.json: %v", err)
	}
	var ds []sources.Dataset
	for _, d := range cfg.Datasets {
		if d.Container != sample.Container {
			f.t.Fatalf("dataset %s is in container %s, not %s", d.Name, d.Container, sample.Container)
		}
		d.Container = f.c
		if len(keep) == 0 || slices.Contains(keep, d.Name) {
			ds = append(ds, d)
		}
	}
	cfg.Datasets = ds
	if err := cfg.Validate(); err != nil {
		f.t.Fatal(err)
	}
	return cfg
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// putSample generates the named sample files straight into the fixture's
// container and returns the number of bytes uploaded.
func (f *fixture) putSample(size sample.Size, seed uint64, files ...sample.File) int64 {
	f.t.Helper()
	var total int64
	for _, file := range files {
		pr, pw := io.Pipe()
		cw := &countingWriter{w: pw}
		go func() { pw.CloseWithError(sample.Generate(cw, file, size, seed)) }()
		_, err := f.acct.Service.NewContainerClient(f.c).NewBlockBlobClient(file.Name).UploadStream(f.ctx, pr,
			&blockblob.UploadStreamOptions{BlockSize: 8 << 20, Concurrency: 4})
		pr.CloseWithError(err)
		if err != nil {
			f.t.Fatalf("upload %s: %v", file.Name, err)
		}
		total += cw.n
	}
	return total
}

// TestDiscoverSample discovers the generator's demo subject in the full
// sample with sample/sources.json and checks the counts the generator
// guarantees (sample.Demo), dataset by dataset.
func TestDiscoverSample(t *testing.T) {
	for _, tc := range []struct {
		size string
		seed uint64
	}{{"small", 1}, {"tiny", 42}} {
		t.Run(fmt.Sprintf("%s seed %d", tc.size, tc.seed), func(t *testing.T) {
			size, err := sample.ParseSize(tc.size)
			if err != nil {
				t.Fatal(err)
			}
			f := newFixture(t)
			f.putSample(size, tc.seed, sample.Files()...)
			cfg := f.sampleConfig()
			c := New(cfg, f.acct.Service)
			demo := sample.Demo(size)

			subjects := []struct {
				name    string
				subject sources.Subject
				want    map[string]int
			}{
				{"email, phone and contactId", sources.Subject{
					Emails: []string{sample.DemoEmail}, Phones: []string{sample.DemoPhone},
					IDs: map[string]string{"contactId": sample.DemoContactID},
				}, demo.Records},
				{"email and contactId", sources.Subject{
					Emails: []string{sample.DemoEmail}, IDs: map[string]string{"contactId": sample.DemoContactID},
				}, demo.RecordsWithoutPhone},
				// Her contact record holds her email, so the email alone
				// reaches every record the contactId does.
				{"email only", sources.Subject{Emails: []string{sample.DemoEmail}}, demo.RecordsWithoutPhone},
			}
			for _, s := range subjects {
				t.Run(s.name, func(t *testing.T) {
					d := f.discover(c, s.subject)
					var total int64
					for _, ds := range cfg.Datasets {
						m := matchesOf(t, d, ds.Name)
						want, ok := s.want[ds.Blob]
						if !ok {
							t.Fatalf("sample.Demo has no count for blob %s", ds.Blob)
						}
						if m.Records != int64(want) {
							t.Errorf("dataset %s (%s): %d records, want %d", ds.Name, ds.Blob, m.Records, want)
						}
						for _, loc := range m.Locations {
							if loc.Blob != ds.Blob {
								t.Errorf("dataset %s: Location in blob %s", ds.Name, loc.Blob)
							}
						}
						total += int64(want)
						// Read gives back exactly the discovered records.
						recs := mustRead(t, c, m)
						if int64(len(recs)) != m.Records {
							t.Errorf("dataset %s: Read %d records, discovered %d", ds.Name, len(recs), m.Records)
						}
						if ds.Name == "contacts" && len(recs) == 1 {
							if !strings.Contains(recs[0], `"contactid":"`+sample.DemoContactID+`"`) {
								t.Errorf("contacts: read %s, not her contact", recs[0])
							}
							if got := m.Locations[0].Ordinals[0]; got != int64(demo.ContactIndex) {
								t.Errorf("contacts: ordinal %d, want %d", got, demo.ContactIndex)
							}
						}
					}
					if d.Total() != total {
						t.Errorf("Total %d, want %d", d.Total(), total)
					}
				})
			}

			// Somebody the sample does not know has no records.
			unknown := sources.Subject{Emails: []string{"nobody@contoso.example"}, IDs: map[string]string{"contactId": "00000000-0000-0000-0000-000000000000"}}
			d := f.discover(c, unknown)
			if d.Total() != 0 {
				t.Errorf("unknown email matched %d records", d.Total())
			}

			// All of them at once: each gets its own result.
			all := []sources.Subject{unknown}
			for _, s := range subjects {
				all = append(all, s.subject)
			}
			checkManyEqualsOne(t, c, all)
		})
	}
}

// BenchmarkDiscoverNDJSON discovers the demo subject in the "medium" sample's
// contacts and activity log (NDJSON, about 110 MB), uploaded once.
func BenchmarkDiscoverNDJSON(b *testing.B) {
	if testing.Short() {
		b.Skip("uploads about 110 MB to Azurite")
	}
	size, err := sample.ParseSize("medium")
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b)
	files := []sample.File{{Container: sample.Container, Name: sample.ContactsBlob}, {Container: sample.Container, Name: sample.ActivityBlob}}
	n := f.putSample(size, 1, files...)
	cfg := f.sampleConfig("contacts", "activity-log")
	c := New(cfg, f.acct.Service)
	subj := sources.Subject{
		Emails: []string{sample.DemoEmail}, Phones: []string{sample.DemoPhone},
		IDs: map[string]string{"contactId": sample.DemoContactID},
	}
	demo := sample.Demo(size)
	b.SetBytes(n)
	for b.Loop() {
		d, err := c.Discover(context.Background(), subj)
		if err != nil {
			b.Fatal(err)
		}
		for _, ds := range cfg.Datasets {
			if got, want := matchesOf(b, d, ds.Name).Records, int64(demo.Records[ds.Blob]); got != want {
				b.Fatalf("dataset %s: %d records, want %d", ds.Name, got, want)
			}
		}
	}
}

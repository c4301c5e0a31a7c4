package sample

import "math/rand/v2"

// Tags separate the random streams of different kinds of draws, so that
// (seed, tag, a, b) names one independent stream.
const (
	tagContact uint64 = iota + 1
	tagContactID
	tagCaseCount
	tagCase
	tagIncidentID
	tagHasSurvey
	tagSurvey
	tagAgent
	tagAgentID
	tagAgentNames
	tagEvent
)

// mix is the splitmix64 finaliser: a bijective 64-bit hash.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// rng is a PCG source re-seeded for every record. Its methods never
// allocate, and it has no state besides the PCG, so re-seeding fully
// determines what it draws next.
type rng struct{ p rand.PCG }

// at seeds the stream (seed, tag, a, b) and returns r.
func (r *rng) at(seed, tag uint64, a, b int) *rng {
	r.p.Seed(mix(seed+mix(tag)), mix(mix(uint64(a)^tag<<58)+uint64(b)))
	return r
}

func (r *rng) u64() uint64 { return r.p.Uint64() }

// intn returns a number in [0, n); n must be positive. The modulo bias is
// far below anything that matters for sample data.
func (r *rng) intn(n int) int { return int(r.p.Uint64() % uint64(n)) }

// chance reports true with the given probability in percent.
func (r *rng) chance(percent int) bool { return r.intn(100) < percent }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

// guid formats two random words as a lower-case version-4 GUID.
func guid(a, b uint64) string {
	const hex = "0123456789abcdef"
	a = a&^0xf000 | 0x4000
	b = b&^(0xc<<60) | 0x8<<60
	var out [36]byte
	pos := 0
	put := func(v uint64, digits int) {
		for i := digits - 1; i >= 0; i-- {
			out[pos] = hex[(v>>(4*uint(i)))&0xf]
			pos++
		}
	}
	put(a>>32, 8)
	out[pos] = '-'
	pos++
	put(a>>16, 4)
	out[pos] = '-'
	pos++
	put(a, 4)
	out[pos] = '-'
	pos++
	put(b>>48, 4)
	out[pos] = '-'
	pos++
	put(b, 12)
	return string(out[:])
}

// guidOf draws a GUID from r.
func guidOf(r *rng) string { return guid(r.u64(), r.u64()) }

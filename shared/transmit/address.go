// Package transmit sends a portability package straight to another
// controller (GDPR Art. 20(2)): one signed HTTPS POST of the ZIP to the
// address the person named.
//
// That address comes from the internet, so the package treats it as
// hostile: only https, no credentials in the URL, and never an address of
// our own network (loopback, private, link-local, carrier-grade NAT,
// unique-local, cloud metadata and the other special-purpose ranges). The
// check runs twice: on the URL when the request is submitted, and on every
// address the host name resolves to when the package is sent, dialling the
// very address that passed (a name that resolves elsewhere by then, DNS
// rebinding, gains nothing). Redirects are not followed. An operator may
// exempt named hosts (a controller behind a private endpoint).
package transmit

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// MaxURLLen bounds a transmitTo address.
const MaxURLLen = 2048

// ErrRefused is wrapped by every refusal of an address: it is never
// retried.
var ErrRefused = errors.New("address refused")

// refusedPrefixes are the special-purpose ranges (RFC 6890 and its IANA
// registries) beyond what netip's predicates cover: nothing a controller
// on the internet is reachable at.
var refusedPrefixes = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{
		"0.0.0.0/8",       // this network
		"100.64.0.0/10",   // carrier-grade NAT
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved
		"64:ff9b::/96",    // NAT64: may embed a private IPv4 address
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments (Teredo, ORCHID, ...)
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: may embed a private IPv4 address
		"fec0::/10",       // site-local (deprecated)
	} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// Refused reports whether ip is an address a package is never sent to.
func Refused(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() ||
		ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() || ip.Zone() != "" {
		return true
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// localNames are host names that only ever mean this machine or this
// network.
var localSuffixes = []string{".localhost", ".local", ".internal", ".home.arpa", ".localdomain"}

// CheckURL says what is wrong with a transmitTo address, without repeating
// it; nil if it may be tried. Host names are resolved only when sending.
func CheckURL(raw string) error {
	if len(raw) > MaxURLLen {
		return errors.New("must be at most 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return errors.New("must be an absolute URL such as https://receiver.example/import")
	}
	if u.Scheme != "https" {
		return errors.New("must use https")
	}
	if u.User != nil {
		return errors.New("must not carry a user name or password")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("must name a host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if Refused(ip) {
			return errors.New("must not be a private, loopback, link-local or other special-purpose address")
		}
		return nil
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || !strings.Contains(h, ".") {
		return errors.New("must be a public host name, not a local one")
	}
	for _, s := range localSuffixes {
		if strings.HasSuffix(h, s) {
			return errors.New("must be a public host name, not a local one")
		}
	}
	if p := u.Port(); p != "" && (p == "0" || len(p) > 5) {
		return errors.New("has an invalid port")
	}
	return nil
}

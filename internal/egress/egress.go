// Package egress guards the requests Greffier sends to addresses its users
// chose (webhooks): such a URL must not make the server call what only the
// server can reach, such as a cloud metadata service, an admin port on
// loopback or a host of the internal network. It checks a URL's addresses
// when the URL is given, and again on every connection (the name may
// resolve elsewhere by then), and never follows redirects. It is a leaf:
// it imports nothing of Greffier.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// DeniedError says a destination is an internal address.
type DeniedError struct {
	Host string     // as the URL named it
	Addr netip.Addr // what it resolved to
	Kind string     // "loopback", "private", "link-local"…
}

func (e *DeniedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("%s resolves to %s, a %s address", e.Host, e.Addr, e.Kind)
	}
	return fmt.Sprintf("%s is a %s address", e.Addr, e.Kind)
}

// RedirectError is a redirect answer, which a Client never follows.
type RedirectError struct {
	Status   string
	Location string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("answered %s, a redirect to %q, which is not followed: use the final URL", e.Status, e.Location)
}

// deniedPrefixes are ranges beyond what netip's predicates name: shared
// address space (carrier-grade NAT), "this network", IETF protocol
// assignments, benchmarking, reserved and broadcast, IPv6 discard-only and
// the deprecated site-local.
var deniedPrefixes = []struct {
	p    netip.Prefix
	kind string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Classify says which kind of internal address a is, or "" when a is a
// public one.
func Classify(a netip.Addr) string {
	a = a.Unmap()
	// IPv6 forms that carry an IPv4 address reach that address.
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return Classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		case sixToFour.Contains(a):
			return Classify(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, d := range deniedPrefixes {
		if d.p.Contains(a) {
			return d.kind
		}
	}
	return ""
}

// Guard checks destinations. The zero value denies internal addresses.
type Guard struct {
	// AllowPrivate lets every address through (an operator whose
	// receivers are on the internal network). Redirects are still not
	// followed.
	AllowPrivate bool
	// Resolver looks names up; default net.DefaultResolver.
	Resolver *net.Resolver
}

// CheckURL checks that raw is an absolute http(s) URL whose host resolves
// only to addresses the guard allows. The error says what is wrong; it is
// a *DeniedError for an internal address.
func (g Guard) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
		return errors.New("not an absolute http(s) URL")
	}
	if g.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		r := g.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if addrs, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return fmt.Errorf("its host %s could not be resolved: %w", host, err)
		}
	}
	for _, a := range addrs {
		if kind := Classify(a); kind != "" {
			return &DeniedError{Host: host, Addr: a.Unmap(), Kind: kind}
		}
	}
	return nil
}

// control refuses a connection to an internal address, after resolution:
// whatever a name resolved to, this is the address dialled.
func (g Guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("egress: unexpected dial address %q: %w", address, err)
	}
	if kind := Classify(ap.Addr()); kind != "" {
		return &DeniedError{Addr: ap.Addr().Unmap(), Kind: kind}
	}
	return nil
}

// Client is an HTTP client for guarded destinations: every connection's
// address is checked as it is dialled, no proxy is used (the check would
// see the proxy's address), and redirects are returned as the answer,
// never followed (see IsRedirect). timeout bounds each request.
func (g Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Resolver: g.Resolver}
	if !g.AllowPrivate {
		d.Control = g.control
	}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           d.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          16,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Redirect returns a *RedirectError when resp is a redirect, nil otherwise.
func Redirect(resp *http.Response) error {
	if resp.StatusCode < 300 || resp.StatusCode > 399 || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	return &RedirectError{Status: resp.Status, Location: resp.Header.Get("Location")}
}

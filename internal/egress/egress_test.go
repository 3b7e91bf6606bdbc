package egress

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClassifyNamesEveryInternalRange(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "127.8.9.10": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"10.0.0.1": "private", "172.31.255.255": "private", "192.168.0.1": "private", "fd12::1": "private",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"0.0.0.0": "unspecified", "::": "unspecified", "0.1.2.3": "\"this network\"",
		"100.64.0.1": "shared (carrier-grade NAT)", "100.127.255.254": "shared (carrier-grade NAT)",
		"224.0.0.1": "link-local", "239.1.2.3": "multicast", "ff02::1": "link-local", "ff0e::1": "multicast",
		"255.255.255.255": "broadcast", "240.0.0.1": "reserved", "198.18.0.1": "benchmarking",
		"64:ff9b::a9fe:a9fe": "link-local", "2002:7f00:1::": "loopback", "fec0::1": "site-local",
		"93.184.216.34": "", "2606:4700::1111": "", "100.128.0.1": "", "64:ff9b::5db8:d822": "",
	} {
		require.Equal(t, want, Classify(netip.MustParseAddr(addr)), addr)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var strict, open Guard
	open.AllowPrivate = true
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/x", "https://[::1]/", "http://169.254.169.254/"} {
		err := strict.CheckURL(ctx, u)
		var de *DeniedError
		require.True(t, errors.As(err, &de), "%s: %v", u, err)
		require.NoError(t, open.CheckURL(ctx, u))
	}
	require.NoError(t, strict.CheckURL(ctx, "https://93.184.216.34/hook"))
	for _, u := range []string{"ftp://93.184.216.34/", "/relative", "http://", "::"} {
		require.Error(t, open.CheckURL(ctx, u), u)
	}
}

// The check at dial time holds whatever the URL said when it was checked.
func TestClientRefusesInternalAddressesAndRedirects(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	_, err := Guard{}.Client(5 * time.Second).Get(target.URL)
	var de *DeniedError
	require.True(t, errors.As(err, &de), "%v", err)
	require.Equal(t, "loopback", de.Kind)
	require.Zero(t, hits.Load())

	c := Guard{AllowPrivate: true}.Client(5 * time.Second)
	resp, err := c.Get(redirect.URL)
	require.NoError(t, err)
	resp.Body.Close()
	var re *RedirectError
	require.True(t, errors.As(Redirect(resp), &re))
	require.Equal(t, target.URL, re.Location)
	require.Zero(t, hits.Load(), "the redirect was not followed")

	resp, err = c.Get(target.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, Redirect(resp))
	require.Equal(t, int32(1), hits.Load())
}

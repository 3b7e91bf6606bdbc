package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/minutes"
)

// TestAJoinTokenMayLetItsBearerChooseTheirName: only a token with the name
// right may rename itself, within bounds, and the token it gets back is
// the same token (id, identity, rights, expiry) with that name.
func TestAJoinTokenMayLetItsBearerChooseTheirName(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		path := "/v1/meetings/" + b.m.ID
		named := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens",
			`{"identity":"guest-1","display_name":"Guest","rights":["publish","listen","name"]}`), http.StatusCreated)
		plain := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"bob"}`), http.StatusCreated)
		a := b.call(t, "POST", path+"/tokens", `{"identity":"x","rights":["choose"]}`)
		require.Equal(t, "bad_participant", errorCode(t, a))

		choose := func(raw, body string) answer {
			return b.as(t, raw, "POST", path+"/name", body)
		}
		out := decode[struct {
			DisplayName string `json:"display_name"`
			Token       string `json:"token"`
		}](t, choose(named.Token, `{"display_name":"  Zoé Durand "}`), http.StatusOK)
		require.Equal(t, "Zoé Durand", out.DisplayName)
		before, err := b.signer.Verify(named.Token)
		require.NoError(t, err)
		after, err := b.signer.Verify(out.Token)
		require.NoError(t, err)
		require.Equal(t, "Zoé Durand", after.DisplayName)
		after.DisplayName = before.DisplayName
		require.Equal(t, before, after, "only the name changes")

		for _, c := range []struct {
			raw, body, code string
			status          int
		}{
			{plain.Token, `{"display_name":"Mallory"}`, "unauthorized", http.StatusUnauthorized},
			{apiToken, `{"display_name":"Mallory"}`, "unauthorized", http.StatusUnauthorized},
			{"", `{"display_name":"Mallory"}`, "unauthorized", http.StatusUnauthorized},
			{named.Token, `{"display_name":"   "}`, "bad_name", http.StatusBadRequest},
			{named.Token, `{"display_name":"` + strings.Repeat("é", 201) + `"}`, "bad_name", http.StatusBadRequest},
			{named.Token, `{"display_name":"a\u0007b"}`, "bad_name", http.StatusBadRequest},
		} {
			a := choose(c.raw, c.body)
			require.Equal(t, c.status, a.status, "%s: %s", c.body, a.body)
			require.Equal(t, c.code, errorCode(t, a))
		}

		// Another meeting's token with the right is refused here.
		other := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings",
			`{"title":"Other","participants":[{"identity":"eve","rights":["name"]}]}`), http.StatusCreated)
		require.Equal(t, http.StatusUnauthorized, choose(other.Join[0].Token, `{"display_name":"Eve"}`).status)

		// A revoked token may not.
		require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", path+"/tokens/"+named.TokenID, "").status)
		require.Equal(t, http.StatusUnauthorized, choose(named.Token, `{"display_name":"Zoé"}`).status)
		require.Equal(t, http.StatusUnauthorized, choose(out.Token, `{"display_name":"Zoé"}`).status,
			"the renamed token is the same token: revoked with it")
	})
}

// TestAJoinTokenWithTheMinutesRightReadsItsOwnMeetingsMinutesOnly: the
// participant's link reads the minutes of its meeting, in every
// rendering, and nothing else; a token without the right reads nothing.
func TestAJoinTokenWithTheMinutesRightReadsItsOwnMeetingsMinutesOnly(t *testing.T) {
	eachDialect(t, func(t *testing.T, b *bundle) {
		ctx := context.Background()
		path := "/v1/meetings/" + b.m.ID
		reader := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens",
			`{"identity":"alice","rights":["publish","listen","minutes"]}`), http.StatusCreated)
		plain := decode[joinAnswer](t, b.call(t, "POST", path+"/tokens", `{"identity":"bob"}`), http.StatusCreated)
		other := decode[meetingAnswer](t, b.call(t, "POST", "/v1/meetings",
			`{"title":"Other","participants":[{"identity":"eve","rights":["minutes"]}]}`), http.StatusCreated)

		a := b.as(t, reader.Token, "GET", path+"/minutes", "")
		require.Equal(t, http.StatusNotFound, a.status, "%s", a.body)
		require.Equal(t, "no_minutes", errorCode(t, a), "before the minutes: the route answers, not 401")

		_, err := b.store.Join(ctx, b.m.ID, "alice", "Alice")
		require.NoError(t, err)
		_, err = b.store.Transition(ctx, b.m.ID, store.MeetingEnded, "")
		require.NoError(t, err)
		_, _, err = b.store.SaveMinutes(ctx, b.m.ID, "d1", minutesDoc(t, b.m, 1, "Bonjour à tous."))
		require.NoError(t, err)

		doc := decode[minutes.Document](t, b.as(t, reader.Token, "GET", path+"/minutes", ""), http.StatusOK)
		require.Equal(t, "Bonjour à tous.", doc.Turns[0].Text)
		md := b.as(t, reader.Token, "GET", path+"/minutes.md", "")
		require.Equal(t, http.StatusOK, md.status)
		require.Contains(t, string(md.body), "Bonjour à tous.")

		for who, raw := range map[string]string{"no minutes right": plain.Token, "another meeting's": other.Join[0].Token} {
			a := b.as(t, raw, "GET", path+"/minutes", "")
			require.Equal(t, http.StatusUnauthorized, a.status, who)
			require.Equal(t, "unauthorized", errorCode(t, a), who)
		}
		// Nothing but the minutes.
		for _, p := range []string{path, path + "/participants", path + "/events", path + "/tracks", path + "/mix.flac",
			"/v1/search?q=Bonjour", "/v1/meetings"} {
			require.Equal(t, http.StatusUnauthorized, b.as(t, reader.Token, "GET", p, "").status, p)
		}
		// Revoked: no more.
		require.Equal(t, http.StatusNoContent, b.call(t, "DELETE", path+"/tokens/"+reader.TokenID, "").status)
		require.Equal(t, http.StatusUnauthorized, b.as(t, reader.Token, "GET", path+"/minutes", "").status)

		c, err := b.signer.Verify(other.Join[0].Token)
		require.NoError(t, err)
		require.True(t, c.Can(token.RightMinutes))
	})
}

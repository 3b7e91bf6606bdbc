package summarize_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/summarize/summarizetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const model = "test-chat-model"

type testBundle struct {
	srv *summarizetest.Server
	cfg summarize.Config
}

// setup starts a double with opts and a config pointing at it, with short
// retry waits.
func setup(t *testing.T, opts summarizetest.Options) *testBundle {
	t.Helper()
	srv := summarizetest.NewServer(opts)
	t.Cleanup(srv.Close)
	return &testBundle{srv: srv, cfg: summarize.Config{
		BaseURL: srv.BaseURL(), APIKey: opts.APIKey, Model: model,
		RetryBackoff: time.Millisecond, MaxRetryWait: 100 * time.Millisecond,
	}}
}

func (b *testBundle) summarize(t *testing.T, tr summarize.Transcript) (*summarize.Summary, error) {
	t.Helper()
	s, err := summarize.New(b.cfg)
	require.NoError(t, err)
	return s.Summarize(t.Context(), tr)
}

func turn(speaker, name string, startMS, endMS int64, text string) summarize.Turn {
	return summarize.Turn{Speaker: speaker, Name: name, Start: summarize.Seconds(startMS), End: summarize.Seconds(endMS), Text: text}
}

// budgetMeeting is a small meeting in English with one decision and two
// action items, times given to the millisecond.
func budgetMeeting() summarize.Transcript {
	return summarize.Transcript{Language: "en", Title: "Budget review", Turns: []summarize.Turn{
		turn("alice", "Alice Martin", 1_250, 6_480, "Welcome everyone, today we review the budget forecast."),
		turn("bob", "Bob Stone", 7_010, 15_900, "The budget forecast for marketing is too high."),
		turn("alice", "Alice Martin", 16_300, 24_120, "Then we decided to cut the marketing budget by ten percent."),
		turn("carol", "Carol Diaz", 24_500, 31_075, "Bob Stone will send the revised forecast by Friday."),
		turn("bob", "Bob Stone", 30_900, 36_333, "Fine. Carol will book the room for the next review."),
		turn("alice", "Alice Martin", 194_905, 220_010, "Thank you all, see you next week."),
	}}
}

// requireRealCitations checks that every citation is a turn of tr, with
// that turn's exact times and speaker, and that every point has one.
func requireRealCitations(t *testing.T, tr summarize.Transcript, s *summarize.Summary) {
	t.Helper()
	points := []summarize.Point{s.Abstract}
	points = append(points, s.Topics...)
	points = append(points, s.Decisions...)
	for _, it := range s.ActionItems {
		points = append(points, it.Point)
	}
	for _, p := range points {
		require.NotEmpty(t, p.Citations, "point %q", p.Text)
		for _, c := range p.Citations {
			require.GreaterOrEqual(t, c.Turn, 0)
			require.Less(t, c.Turn, len(tr.Turns))
			want := tr.Turns[c.Turn]
			require.Equal(t, summarize.Citation{Turn: c.Turn, Start: want.Start, End: want.End, Speaker: want.Speaker}, c)
		}
	}
}

func citedTurns(p summarize.Point) []int {
	var out []int
	for _, c := range p.Citations {
		out = append(out, c.Turn)
	}
	return out
}

func TestSummarizeSmallMeeting(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{APIKey: "sk-test", MaxContextTokens: summarize.DefaultMaxContextTokens})
	tr := budgetMeeting()
	s, err := b.summarize(t, tr)
	require.NoError(t, err)

	// The server was given the whole transcript, with ids, times and names.
	got := b.srv.Received()
	require.Len(t, got, 1)
	req := got[0]
	require.False(t, req.Combine)
	require.Equal(t, model, req.Model)
	require.Equal(t, "json_object", req.ResponseFormat)
	require.Equal(t, "en", req.Language)
	require.Contains(t, req.User, "Meeting: Budget review\n")
	require.Contains(t, req.User, "[T3 00:00:24–00:00:31] Carol Diaz: Bob Stone will send the revised forecast by Friday.\n")
	require.Len(t, req.Turns, len(tr.Turns))
	for i, rt := range req.Turns {
		want := tr.Turns[i]
		require.Equal(t, i, rt.ID)
		require.Equal(t, want.Name, rt.Name)
		require.Equal(t, want.Text, rt.Text)
		require.Equal(t, time.Duration(want.Start.MS()/1000)*time.Second, rt.Start)
		require.Equal(t, time.Duration(want.End.MS()/1000)*time.Second, rt.End)
	}
	require.LessOrEqual(t, req.PromptTokens+req.MaxTokens, summarize.DefaultMaxContextTokens)

	// The summary is the double's reading of this transcript, cited with
	// the turns' exact times (not the seconds the model saw).
	requireRealCitations(t, tr, s)
	require.Equal(t, "en", s.Language)
	require.Equal(t, model, s.Model)
	require.Equal(t, 1, s.Parts)
	require.Empty(t, s.Notes)
	require.Equal(t, []int{0, 5}, citedTurns(s.Abstract))
	require.Equal(t, summarize.Seconds(194_905), s.Abstract.Citations[1].Start)
	require.Len(t, s.Decisions, 1)
	require.Equal(t, tr.Turns[2].Text, s.Decisions[0].Text)
	require.Equal(t, []int{2}, citedTurns(s.Decisions[0]))
	require.Len(t, s.ActionItems, 2)
	require.Equal(t, "send the revised forecast", s.ActionItems[0].Text)
	require.Equal(t, "Bob Stone", s.ActionItems[0].Owner)
	require.Equal(t, "bob", s.ActionItems[0].OwnerSpeaker)
	require.Equal(t, "Friday", s.ActionItems[0].Due)
	require.Equal(t, []int{3}, citedTurns(s.ActionItems[0].Point))
	require.Equal(t, "Carol", s.ActionItems[1].Owner)
	require.Equal(t, "carol", s.ActionItems[1].OwnerSpeaker)
	require.Empty(t, s.ActionItems[1].Due)
	require.Equal(t, []int{4}, citedTurns(s.ActionItems[1].Point))
	require.NotEmpty(t, s.Topics)
	for _, tp := range s.Topics {
		word := strings.TrimPrefix(tp.Text, "topic: ")
		for _, c := range tp.Citations {
			require.Contains(t, strings.ToLower(tr.Turns[c.Turn].Text), word, "topic %q cites turn %d", word, c.Turn)
		}
	}
	require.Equal(t, "topic: budget", s.Topics[0].Text)
	require.Equal(t, []int{0, 1, 2}, citedTurns(s.Topics[0]))
}

// longMeeting has n turns of about 150 bytes, and three decisions and three
// action items spread over them.
func longMeeting(n int) (tr summarize.Transcript, decisions, actions []int) {
	period := n / 3
	names := []string{"Alice Martin", "Bob Stone", "Carol Diaz"}
	tr.Language = "en"
	for i := range n {
		who := i % len(names)
		text := fmt.Sprintf("Point %d about the quarterly roadmap and the hiring plan for the platform team, with some more words to make it long.", i)
		switch {
		case i%period == 7:
			text = fmt.Sprintf("We decided to freeze feature %d until the audit.", i)
			decisions = append(decisions, i)
		case i%period == 11:
			text = fmt.Sprintf("Alice Martin will write report %d by June %d.", i, 1+i%28)
			actions = append(actions, i)
		}
		start := int64(i)*9_000 + 137
		tr.Turns = append(tr.Turns, turn(strings.ToLower(names[who][:3]), names[who], start, start+8_500, text))
	}
	return tr, decisions, actions
}

func TestSummarizeLongMeetingInParts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		turns  int
		rounds bool // expect several combining calls
	}{
		{"one combine", 60, false},
		{"combines in rounds", 300, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const context, answer = 1600, 300
			b := setup(t, summarizetest.Options{MaxContextTokens: context})
			b.cfg.MaxContextTokens, b.cfg.MaxAnswerTokens = context, answer
			tr, decisions, actions := longMeeting(tc.turns)
			s, err := b.summarize(t, tr)
			require.NoError(t, err)

			var partCalls, combineCalls int
			next := 0
			for _, r := range b.srv.Received() {
				require.LessOrEqual(t, r.PromptTokens+r.MaxTokens, context, "every call fits the context")
				require.Equal(t, answer, r.MaxTokens)
				if r.Combine {
					combineCalls++
					continue
				}
				partCalls++
				// Concurrency may reorder arrivals; each part is a run.
				require.NotEmpty(t, r.Turns)
				for j, rt := range r.Turns {
					if j > 0 {
						require.Equal(t, r.Turns[j-1].ID+1, rt.ID)
					}
					require.Equal(t, tr.Turns[rt.ID].Text, rt.Text)
				}
				next += len(r.Turns)
			}
			t.Logf("%d turns: %d part calls, %d combining calls", len(tr.Turns), partCalls, combineCalls)
			require.Equal(t, len(tr.Turns), next, "every turn was shown exactly once")
			require.Greater(t, partCalls, 1)
			require.Equal(t, partCalls, s.Parts)
			if tc.rounds {
				require.Greater(t, combineCalls, 1)
			} else {
				require.Equal(t, 1, combineCalls)
			}

			requireRealCitations(t, tr, s)
			require.Empty(t, s.Notes)
			require.Equal(t, []int{0, len(tr.Turns) - 1}, citedTurns(s.Abstract))
			var gotDecisions, gotActions []int
			for _, d := range s.Decisions {
				gotDecisions = append(gotDecisions, citedTurns(d)...)
			}
			for _, a := range s.ActionItems {
				gotActions = append(gotActions, citedTurns(a.Point)...)
				require.Equal(t, "ali", a.OwnerSpeaker)
				require.True(t, strings.HasPrefix(a.Due, "June "), a.Due)
			}
			require.Equal(t, decisions, gotDecisions)
			require.Equal(t, actions, gotActions)
		})
	}
}

func TestSummarizeDropsCitationsOfUnknownTurns(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{UnknownCitations: true})
	tr := budgetMeeting()
	s, err := b.summarize(t, tr)
	require.NoError(t, err)
	requireRealCitations(t, tr, s)
	require.Len(t, s.Decisions, 1, "the decision citing only a turn that does not exist is dropped")
	bogus := fmt.Sprintf("T%d", len(tr.Turns)-1+summarizetest.BogusTurnOffset)
	notes := strings.Join(s.Notes, "\n")
	require.Contains(t, notes, "dropped citations of turns the model was not shown: "+bogus)
	require.Contains(t, notes, `dropped decision "a decision nobody took"`)
}

func TestSummarizeLanguage(t *testing.T) {
	t.Parallel()
	french := summarize.Transcript{Turns: []summarize.Turn{
		turn("a", "Amélie", 0, 4_000, "Bonjour à tous, nous commençons la réunion."),
		turn("b", "Benoît", 4_500, 9_000, "Nous avons décidé de livrer la version le mois prochain."),
		turn("a", "Amélie", 9_500, 12_000, "Benoît will écrire la note by lundi."),
	}}
	for _, tc := range []struct {
		name, given, asked, want string
	}{
		{"meeting language passed through", "DE ", "de", "de"},
		{"transcript's own language when unset", "", "", "fr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, summarizetest.Options{})
			tr := french
			tr.Language = tc.given
			s, err := b.summarize(t, tr)
			require.NoError(t, err)
			got := b.srv.Received()
			require.Len(t, got, 1)
			require.Equal(t, tc.asked, got[0].Language)
			require.Equal(t, tc.want, s.Language)
			require.True(t, strings.HasPrefix(s.Abstract.Text, "("+tc.want+")"), s.Abstract.Text)
			require.Len(t, s.Decisions, 1)
			require.Equal(t, "Benoît", s.ActionItems[0].Owner)
			require.Equal(t, "b", s.ActionItems[0].OwnerSpeaker)
		})
	}
}

func TestSummarizeRetriesTemporaryFailures(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{FailFirst: 2, FailStatus: http.StatusTooManyRequests})
	s, err := b.summarize(t, budgetMeeting())
	require.NoError(t, err)
	require.Equal(t, 3, b.srv.Requests())
	require.Len(t, s.Decisions, 1)
}

func TestSummarizeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		opts      summarizetest.Options
		cfg       func(*summarize.Config)
		status    int
		temporary bool
		requests  int
		retryWait time.Duration
	}{
		{name: "server errors outlast the retries", opts: summarizetest.Options{FailFirst: 10},
			status: http.StatusServiceUnavailable, temporary: true, requests: 1 + summarize.DefaultRetries},
		{name: "wrong key is not retried", opts: summarizetest.Options{APIKey: "right"},
			cfg: func(c *summarize.Config) { c.APIKey = "wrong" }, status: http.StatusUnauthorized, requests: 1},
		{name: "Retry-After beyond MaxRetryWait is handed back", opts: summarizetest.Options{FailFirst: 1, RetryAfter: 2 * time.Second},
			status: http.StatusServiceUnavailable, temporary: true, requests: 1, retryWait: 2 * time.Second},
		{name: "context too small for the server", opts: summarizetest.Options{MaxContextTokens: 1000},
			status: http.StatusBadRequest, requests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.opts)
			if tc.cfg != nil {
				tc.cfg(&b.cfg)
			}
			_, err := b.summarize(t, budgetMeeting())
			var he *summarize.HTTPError
			require.ErrorAs(t, err, &he)
			require.Equal(t, tc.status, he.StatusCode)
			require.Equal(t, tc.temporary, he.Temporary())
			require.Equal(t, tc.retryWait, he.RetryAfter)
			require.NotEmpty(t, he.Message, "the server's own message is kept")
			require.Contains(t, err.Error(), fmt.Sprintf("HTTP %d", tc.status))
			require.Equal(t, tc.requests, b.srv.Requests())
		})
	}
}

func TestSummarizeUnusableAnswers(t *testing.T) {
	t.Parallel()
	t.Run("retried", func(t *testing.T) {
		t.Parallel()
		b := setup(t, summarizetest.Options{BadJSON: 1})
		s, err := b.summarize(t, budgetMeeting())
		require.NoError(t, err)
		require.Equal(t, 2, b.srv.Requests())
		require.Len(t, s.ActionItems, 2)
	})
	t.Run("given up", func(t *testing.T) {
		t.Parallel()
		b := setup(t, summarizetest.Options{BadJSON: 100})
		b.cfg.Retries = 1
		_, err := b.summarize(t, budgetMeeting())
		require.ErrorIs(t, err, summarize.ErrBadAnswer)
		require.Equal(t, 2, b.srv.Requests())
	})
	t.Run("cut off at max tokens", func(t *testing.T) {
		t.Parallel()
		b := setup(t, summarizetest.Options{})
		b.cfg.MaxAnswerTokens, b.cfg.MaxContextTokens = 40, 2000
		_, err := b.summarize(t, budgetMeeting())
		require.ErrorIs(t, err, summarize.ErrBadAnswer)
		require.ErrorContains(t, err, "raise MaxAnswerTokens")
		require.Equal(t, 1, b.srv.Requests(), "the same request would be cut off again: not retried")
	})
	t.Run("JSON in prose from a server without response_format", func(t *testing.T) {
		t.Parallel()
		b := setup(t, summarizetest.Options{Prose: true})
		b.cfg.ResponseFormat = summarize.ResponseFormatNone
		b.cfg.Retries = summarize.NoRetries
		s, err := b.summarize(t, budgetMeeting())
		require.NoError(t, err)
		require.Empty(t, b.srv.Received()[0].ResponseFormat)
		require.Len(t, s.Decisions, 1)
	})
	t.Run("JSON schema", func(t *testing.T) {
		t.Parallel()
		b := setup(t, summarizetest.Options{})
		b.cfg.ResponseFormat = summarize.ResponseFormatJSONSchema
		s, err := b.summarize(t, budgetMeeting())
		require.NoError(t, err)
		require.Equal(t, "json_schema", b.srv.Received()[0].ResponseFormat)
		require.Len(t, s.ActionItems, 2)
	})
}

func TestSummarizeTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{Stall: true})
	b.cfg.Timeout = 50 * time.Millisecond
	b.cfg.Retries = summarize.NoRetries
	_, err := b.summarize(t, budgetMeeting())
	var he *summarize.HTTPError
	require.ErrorAs(t, err, &he)
	require.True(t, he.Timeout)
	require.True(t, he.Temporary())
	require.Zero(t, he.StatusCode)
}

func TestSummarizeCanceled(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{Stall: true})
	s, err := summarize.New(b.cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.Summarize(ctx, budgetMeeting())
		done <- err
	}()
	require.Eventually(t, func() bool { return b.srv.Requests() == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err = <-done
	require.ErrorIs(t, err, context.Canceled)
	var he *summarize.HTTPError
	require.False(t, errors.As(err, &he), "a caller's cancellation is not a backend failure")
}

func TestSummarizeEmptyTranscript(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{})
	_, err := b.summarize(t, summarize.Transcript{Language: "en"})
	require.ErrorIs(t, err, summarize.ErrEmptyTranscript)
	require.Zero(t, b.srv.Requests())
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	_, err := summarize.New(summarize.Config{})
	require.ErrorIs(t, err, summarize.ErrNotConfigured)

	for _, tc := range []struct {
		cfg  summarize.Config
		want string
	}{
		{summarize.Config{BaseURL: "localhost:8000", Model: "m"}, "BaseURL"},
		{summarize.Config{BaseURL: "http://127.0.0.1:1/v1"}, "Model is required"},
		{summarize.Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m", MaxContextTokens: 1000, MaxAnswerTokens: 400}, "MaxContextTokens 1000 is too small"},
		{summarize.Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m", ResponseFormat: "yaml"}, "ResponseFormat"},
		{summarize.Config{BaseURL: "http://127.0.0.1:1/v1", Model: "m", Retries: -2}, "Retries"},
	} {
		_, err := summarize.New(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}

	c := summarize.Config{MaxContextTokens: 4000}.WithDefaults()
	require.Equal(t, 1000, c.MaxAnswerTokens, "a quarter of a small context")
	require.Equal(t, summarize.DefaultRetries, c.Retries)
	require.Zero(t, summarize.Config{Retries: summarize.NoRetries}.WithDefaults().Retries)
	d := summarize.Config{}.WithDefaults()
	require.Equal(t, summarize.DefaultMaxContextTokens, d.MaxContextTokens)
	require.Equal(t, summarize.DefaultMaxAnswerTokens, d.MaxAnswerTokens)
	require.Equal(t, summarize.DefaultResponseFormat, d.ResponseFormat)
}

func TestSummarizeStopsAtTheFirstFailedPart(t *testing.T) {
	t.Parallel()
	b := setup(t, summarizetest.Options{FailFirst: 1000, FailStatus: http.StatusBadGateway})
	b.cfg.MaxContextTokens, b.cfg.MaxAnswerTokens = 1600, 300
	b.cfg.Retries = summarize.NoRetries
	tr, _, _ := longMeeting(300)
	_, err := b.summarize(t, tr)
	var he *summarize.HTTPError
	require.ErrorAs(t, err, &he, "the part's own failure, not the cancellation of the others")
	require.Equal(t, http.StatusBadGateway, he.StatusCode)
	require.ErrorContains(t, err, "part ")
	require.LessOrEqual(t, b.srv.Requests(), summarize.DefaultConcurrency, "no part starts after one failed")
}

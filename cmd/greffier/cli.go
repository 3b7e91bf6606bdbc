package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/greffier/greffier/internal/client"
)

// DefaultServerURL is where the CLI looks for a server without GREFFIER_URL.
const DefaultServerURL = "http://127.0.0.1:8080"

// cli is one client command's context: its flags, the server and how to
// print.
type cli struct {
	fs      *flag.FlagSet
	args    []string // positional arguments, flags removed
	json    bool
	keyFile string
	server  string
	getenv  func(string) string
	stdout  io.Writer
	stderr  io.Writer
	c       *client.Client
}

// runClient runs a client command against a server's public API.
func runClient(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := args[0]
	run := map[string]func(context.Context, *cli) error{
		"meetings": cliMeetings,
		"meeting":  cliMeeting,
		"minutes":  cliMinutes,
		"download": cliDownload,
		"search":   cliSearch,
		"keys":     cliKeys,
	}[cmd]
	if run == nil {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%q: %w", cmd, errUsage)
	}
	c := &cli{fs: flag.NewFlagSet("greffier "+cmd, flag.ContinueOnError), getenv: getenv, stdout: stdout, stderr: stderr}
	c.fs.SetOutput(stderr)
	c.fs.BoolVar(&c.json, "json", false, "print JSON, for scripts")
	c.fs.StringVar(&c.keyFile, "key-file", "", "file holding the API key (default: GREFFIER_API_KEY, GREFFIER_API_KEY_FILE)")
	c.fs.StringVar(&c.server, "url", "", "server URL (default: GREFFIER_URL, else "+DefaultServerURL+")")
	c.args = args[1:]
	return run(ctx, c)
}

// parse reads the command's flags wherever they are among its arguments
// (`minutes ID --format md` as well as `minutes --format md ID`) and makes
// the client.
func (c *cli) parse() error {
	rest := c.args
	c.args = nil
	for {
		if err := c.fs.Parse(rest); err != nil {
			return err
		}
		rest = c.fs.Args()
		if len(rest) == 0 {
			break
		}
		c.args = append(c.args, rest[0])
		rest = rest[1:]
	}
	key := c.getenv("GREFFIER_API_KEY")
	file := c.keyFile
	if file == "" {
		file = c.getenv("GREFFIER_API_KEY_FILE")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("read the API key (--key-file / GREFFIER_API_KEY_FILE): %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		return errors.New("no API key: set GREFFIER_API_KEY, GREFFIER_API_KEY_FILE or --key-file (the server's own is in <data-dir>/api-token)")
	}
	server := c.server
	if server == "" {
		server = c.getenv("GREFFIER_URL")
	}
	if server == "" {
		server = DefaultServerURL
	}
	if u, err := url.Parse(server); err != nil || u.Host == "" {
		return fmt.Errorf("server URL %q (--url / GREFFIER_URL) is not an absolute URL such as %s", server, DefaultServerURL)
	}
	c.c = &client.Client{BaseURL: server, Key: key}
	return nil
}

// want checks the number of positional arguments.
func (c *cli) want(n int, what string) error {
	if len(c.args) != n {
		return fmt.Errorf("usage: %s %s", c.fs.Name(), what)
	}
	return nil
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// meeting is what the CLI shows of a meeting; the JSON output is the
// server's own answer, untouched.
type meetingView struct {
	ID        string     `json:"id"`
	Title     string     `json:"title"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at"`
	Failure   string     `json:"failure"`
	Join      []struct {
		Identity string `json:"identity"`
		Token    string `json:"token"`
		URL      string `json:"url"`
	} `json:"join"`
}

func cliMeetings(ctx context.Context, c *cli) error {
	if err := c.parse(); err != nil {
		return err
	}
	if err := c.want(0, ""); err != nil {
		return err
	}
	raw, err := client.List[json.RawMessage](ctx, c.c, "/v1/meetings", "meetings")
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"meetings": raw})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tCREATED\tTITLE")
	for _, r := range raw {
		var m meetingView
		if err := json.Unmarshal(r, &m); err != nil {
			return fmt.Errorf("read meeting: %w", err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.State, m.CreatedAt.Local().Format("2006-01-02 15:04"), m.Title)
	}
	return tw.Flush()
}

func cliMeeting(ctx context.Context, c *cli) error {
	title := c.fs.String("title", "", "create: the meeting's title")
	language := c.fs.String("language", "", "create: spoken language (e.g. fr), empty to detect")
	recording := c.fs.Bool("recording", true, "create: record from the start (--recording=false: the host starts it)")
	transcription := c.fs.Bool("transcription", true, "create: transcribe what is recorded (--transcription=false: the host starts it)")
	keepAudio := c.fs.Bool("keep-audio", true, "create: keep the audio (--keep-audio=false: only the words transcribed live are kept)")
	var participants []string
	c.fs.Func("participant", "create: a participant, identity or identity=Display Name (repeat)", func(s string) error {
		participants = append(participants, s)
		return nil
	})
	if err := c.parse(); err != nil {
		return err
	}
	if len(c.args) == 0 {
		return errors.New("usage: greffier meeting create|end|rerun [ID], or greffier meeting record|transcribe start|stop ID")
	}
	var (
		out  json.RawMessage
		err  error
		verb = c.args[0]
	)
	switch verb {
	case "create":
		if len(c.args) != 1 {
			return errors.New("usage: greffier meeting create [--title T] [--language L] [--participant ID[=Name], repeated]")
		}
		type participant struct {
			Identity    string `json:"identity"`
			DisplayName string `json:"display_name,omitempty"`
		}
		body := struct {
			Title         string        `json:"title"`
			Language      string        `json:"language,omitempty"`
			Participants  []participant `json:"participants,omitempty"`
			Recording     bool          `json:"recording"`
			Transcription bool          `json:"transcription"`
			KeepAudio     bool          `json:"keep_audio"`
		}{Title: *title, Language: *language, Recording: *recording, Transcription: *transcription, KeepAudio: *keepAudio}
		for _, p := range participants {
			id, name, _ := strings.Cut(p, "=")
			body.Participants = append(body.Participants, participant{id, name})
		}
		err = c.c.Do(ctx, http.MethodPost, "/v1/meetings", body, &out)
	case "end", "rerun":
		if len(c.args) != 2 {
			return fmt.Errorf("usage: greffier meeting %s ID", verb)
		}
		err = c.c.Do(ctx, http.MethodPost, "/v1/meetings/"+url.PathEscape(c.args[1])+"/"+verb, nil, &out)
	case "record", "transcribe":
		return cliSwitch(ctx, c, verb)
	default:
		return fmt.Errorf("greffier meeting %s: want create, end, rerun, record or transcribe", verb)
	}
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(out)
	}
	var m meetingView
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("read meeting: %w", err)
	}
	fmt.Fprintf(c.stdout, "%s\t%s\t%s\n", m.ID, m.State, m.Title)
	for _, j := range m.Join {
		fmt.Fprintf(c.stdout, "  join %s: %s\n", j.Identity, c.c.BaseURL+"/join/#token="+j.Token)
	}
	return nil
}

// cliSwitch starts or stops a live meeting's recording or transcription.
func cliSwitch(ctx context.Context, c *cli, verb string) error {
	if len(c.args) != 3 || (c.args[1] != "start" && c.args[1] != "stop") {
		return fmt.Errorf("usage: greffier meeting %s start|stop ID", verb)
	}
	what := map[string]string{"record": "recording", "transcribe": "transcription"}[verb]
	var out json.RawMessage
	if err := c.c.Do(ctx, http.MethodPost, "/v1/meetings/"+url.PathEscape(c.args[2])+"/"+what+"/"+c.args[1], nil, &out); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(out)
	}
	var sw struct {
		Recording     bool     `json:"recording"`
		Transcription bool     `json:"transcription"`
		Declined      []string `json:"declined"`
	}
	if err := json.Unmarshal(out, &sw); err != nil {
		return fmt.Errorf("read the meeting's switches: %w", err)
	}
	onOff := map[bool]string{true: "on", false: "off"}
	fmt.Fprintf(c.stdout, "%s\trecording %s\ttranscription %s\n", c.args[2], onOff[sw.Recording], onOff[sw.Transcription])
	if len(sw.Declined) > 0 {
		fmt.Fprintf(c.stdout, "  not recorded (declined): %s\n", strings.Join(sw.Declined, ", "))
	}
	return nil
}

func cliMinutes(ctx context.Context, c *cli) error {
	format := c.fs.String("format", "md", "md, vtt, srt, txt or json")
	if err := c.parse(); err != nil {
		return err
	}
	if err := c.want(1, "ID [--format md|vtt|srt|txt|json]"); err != nil {
		return err
	}
	if c.json {
		*format = "json"
	}
	switch *format {
	case "md", "vtt", "srt", "txt", "json":
	default:
		return fmt.Errorf("--format %q: want md, vtt, srt, txt or json", *format)
	}
	resp, err := c.c.Request(ctx, http.MethodGet, "/v1/meetings/"+url.PathEscape(c.args[0])+"/minutes."+*format, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(c.stdout, resp.Body)
	return err
}

func cliSearch(ctx context.Context, c *cli) error {
	// The flags are the API's query parameters, under the same names, so
	// that a search here finds what GET /v1/search finds.
	meetingID := c.fs.String("meeting", "", "only this meeting")
	speaker := c.fs.String("speaker", "", "only this speaker (identity)")
	language := c.fs.String("language", "", "only speech indexed in this language: fr, en or other")
	from := c.fs.String("from", "", "said at or after: a date (2026-12-06) or an RFC 3339 time")
	to := c.fs.String("to", "", "said before this RFC 3339 time, or on or before this date")
	limit := c.fs.Int("limit", 0, "at most this many results (default: the server's)")
	cursor := c.fs.String("cursor", "", "the next page: the cursor a previous search printed, with the same words and flags")
	if err := c.parse(); err != nil {
		return err
	}
	if len(c.args) == 0 {
		return errors.New(`usage: greffier search WORDS... ['"a phrase"'] [prefix*] [--meeting ID] [--speaker IDENTITY] ` +
			`[--language fr|en|other] [--from WHEN] [--to WHEN] [--limit N] [--cursor C]`)
	}
	q := url.Values{"q": {strings.Join(c.args, " ")}}
	for name, v := range map[string]string{"meeting": *meetingID, "speaker": *speaker, "language": *language,
		"from": *from, "to": *to, "cursor": *cursor} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if *limit > 0 {
		q.Set("limit", fmt.Sprint(*limit))
	}
	var out map[string]json.RawMessage
	if err := c.c.Do(ctx, http.MethodGet, "/v1/search?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if c.json {
		return c.printJSON(out)
	}
	var hits []struct {
		MeetingID string  `json:"meeting_id"`
		Title     string  `json:"title"`
		Name      string  `json:"name"`
		Speaker   string  `json:"speaker"`
		Start     float64 `json:"start"`
		Text      string  `json:"text"`
	}
	if err := json.Unmarshal(out["hits"], &hits); err != nil && out["hits"] != nil {
		return fmt.Errorf("read search results: %w", err)
	}
	if len(hits) == 0 {
		fmt.Fprintln(c.stdout, "no results")
		return nil
	}
	for _, h := range hits {
		who := h.Name
		if who == "" {
			who = h.Speaker
		}
		at := time.Duration(h.Start * float64(time.Second)).Truncate(time.Second)
		fmt.Fprintf(c.stdout, "%s  %s  %s  %s: %s\n", h.MeetingID, h.Title, at, who, h.Text)
	}
	// A page, not every hit: say how to get the next one, on standard
	// error so that the results stay one hit a line.
	var next string
	if raw := out["next_cursor"]; raw != nil {
		if err := json.Unmarshal(raw, &next); err != nil {
			return fmt.Errorf("read search results: %w", err)
		}
	}
	if next != "" {
		fmt.Fprintf(c.stderr, "more results: run the same search with --cursor %s\n", next)
	}
	return nil
}

// cliDownload fetches a meeting's tracks, archive and mix (or those
// named) into a directory, resuming what an earlier run left partial.
func cliDownload(ctx context.Context, c *cli) error {
	dir := c.fs.String("dir", ".", "directory to write into (a subdirectory per meeting)")
	if err := c.parse(); err != nil {
		return err
	}
	if len(c.args) == 0 {
		return errors.New("usage: greffier download ID [tracks] [archive] [mix] [--dir DIR]")
	}
	id, kinds := c.args[0], c.args[1:]
	explicit := len(kinds) > 0
	if !explicit {
		kinds = []string{"tracks", "archive", "mix"}
	}
	base := "/v1/meetings/" + url.PathEscape(id)
	type file struct{ path, name string }
	var files []file
	for _, k := range kinds {
		switch k {
		case "tracks":
			var doc struct {
				Tracks []struct {
					ID  string `json:"id"`
					URL string `json:"url"`
				} `json:"tracks"`
			}
			if err := c.c.Do(ctx, http.MethodGet, base+"/tracks", nil, &doc); err != nil {
				return err
			}
			for _, t := range doc.Tracks {
				if t.URL != "" {
					files = append(files, file{t.URL, filepath.Join("tracks", t.ID+".webm")})
				}
			}
		case "archive":
			files = append(files, file{base + "/archive.webm", "meeting.webm"})
		case "mix":
			files = append(files, file{base + "/mix.flac", "mix.flac"})
		default:
			return fmt.Errorf("download %q: want tracks, archive or mix", k)
		}
	}
	type result struct {
		Path   string `json:"path"`
		Bytes  int64  `json:"bytes,omitempty"`
		Status string `json:"status"`
	}
	var results []result
	for _, f := range files {
		dest := filepath.Join(*dir, id, f.name)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return err
		}
		if fi, err := os.Stat(dest); err == nil {
			results = append(results, result{dest, fi.Size(), "already downloaded"})
			continue
		}
		n, err := c.c.Download(ctx, f.path, dest, c.progressBar(f.name))
		var apiErr *client.Error
		if !explicit && errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound || apiErr.Status == http.StatusConflict) {
			// The archive and mix are made after the minutes: say they
			// are not there yet rather than fail the tracks.
			results = append(results, result{dest, 0, "not available: " + apiErr.Message})
			continue
		}
		if err != nil {
			return err
		}
		results = append(results, result{dest, n, "downloaded"})
	}
	if c.json {
		return c.printJSON(map[string]any{"files": results})
	}
	for _, r := range results {
		fmt.Fprintf(c.stdout, "%s\t%d bytes\t%s\n", r.Path, r.Bytes, r.Status)
	}
	return nil
}

// progressBar draws a download's progress on stderr when it is a
// terminal; elsewhere (a pipe, a log) it says nothing.
func (c *cli) progressBar(name string) client.Progress {
	f, ok := c.stderr.(*os.File)
	if !ok || c.json {
		return nil
	}
	if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return drawProgress(f, name)
}

// drawProgress redraws name's bar on w in place, at most ten times a
// second, and always at the end (then with a new line).
func drawProgress(w io.Writer, name string) client.Progress {
	var last time.Time
	return func(done, total int64) {
		if now := time.Now(); now.Sub(last) < 100*time.Millisecond && done != total {
			return
		} else {
			last = now
		}
		if total <= 0 {
			fmt.Fprintf(w, "\r%s %d bytes", name, done)
			return
		}
		const width = 30
		filled := int(width * done / total)
		fmt.Fprintf(w, "\r%s [%s%s] %3d%%", name, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), 100*done/total)
		if done == total {
			fmt.Fprintln(w)
		}
	}
}

// apiKey is a key as the keys API answers it (the secret only at creation).
type apiKey struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Role        string     `json:"role"`
	AllMeetings bool       `json:"all_meetings"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Key         string     `json:"key,omitempty"`
}

// cliKeys lists, creates and revokes API keys (POST/GET /v1/keys,
// DELETE /v1/keys/{id}).
func cliKeys(ctx context.Context, c *cli) error {
	role := c.fs.String("role", "", "create: the key's role (admin, host, archivist, agent)")
	all := c.fs.Bool("all-meetings", false, "create: a host key reaches every meeting, not only those it made (the other roles see every meeting)")
	expires := c.fs.String("expires", "", "create: when the key expires, RFC 3339 (2027-01-31T00:00:00Z) or a duration (720h)")
	if err := c.parse(); err != nil {
		return err
	}
	verb := "list"
	if len(c.args) > 0 {
		verb = c.args[0]
	}
	switch verb {
	case "list":
		keys, err := client.List[apiKey](ctx, c.c, "/v1/keys", "keys")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(map[string]any{"keys": keys})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tALL MEETINGS\tCREATED\tEXPIRES\tLAST USED")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", k.ID, k.Name, k.Role, k.AllMeetings,
				k.CreatedAt.Local().Format("2006-01-02 15:04"), when(k.ExpiresAt, "never"), when(k.LastUsedAt, "never"))
		}
		return tw.Flush()
	case "create":
		if len(c.args) != 2 || *role == "" {
			return errors.New("usage: greffier keys create NAME --role ROLE [--all-meetings] [--expires WHEN]")
		}
		body := struct {
			Name        string     `json:"name"`
			Role        string     `json:"role"`
			AllMeetings bool       `json:"all_meetings"`
			ExpiresAt   *time.Time `json:"expires_at,omitempty"`
		}{Name: c.args[1], Role: *role, AllMeetings: *all}
		if *expires != "" {
			t, err := parseWhen(*expires, time.Now())
			if err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			body.ExpiresAt = &t
		}
		var k apiKey
		if err := c.c.Do(ctx, http.MethodPost, "/v1/keys", body, &k); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(k)
		}
		fmt.Fprintf(c.stdout, "key %s (%s, role %s) created; its secret, shown only now:\n%s\n", k.ID, k.Name, k.Role, k.Key)
		return nil
	case "revoke":
		if len(c.args) != 2 {
			return errors.New("usage: greffier keys revoke ID")
		}
		if err := c.c.Do(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(c.args[1]), nil, nil); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(map[string]string{"revoked": c.args[1]})
		}
		fmt.Fprintf(c.stdout, "key %s revoked\n", c.args[1])
		return nil
	}
	return fmt.Errorf("greffier keys %s: want create or revoke (or nothing, to list)", verb)
}

func when(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.Local().Format("2006-01-02 15:04")
}

// parseWhen reads an instant, or a duration from now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, fmt.Errorf("%q: want a time such as 2027-01-31T00:00:00Z or a duration such as 720h", s)
}

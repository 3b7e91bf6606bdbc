package greffier_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/greffier/greffier"

// importRule is one rule of the import graph: the packages from names
// (less those except names) may import, directly or not, only the
// Greffier packages allow names, when allow is set, and never those deny
// names. A pattern is a package path inside the module, or one ending in
// "/..." for it and every package below it.
type importRule struct {
	rule   string // the rule, as a sentence
	from   []string
	except []string
	allow  []string
	deny   []string
}

// leaves know nothing of meetings, storage or jobs: they import no other
// Greffier package, so that every package can use them.
var leaves = []string{
	"internal/audio",
	"internal/backend",
	"internal/client",
	"internal/egress",
	"internal/httperr",
	"internal/layout",
	"internal/token",
	"internal/upload",
	"internal/usertext",
}

// importRules keeps the data flow one way (see docs/architecture.md).
var importRules = append([]importRule{
	{rule: "nothing imports api but cmd", from: []string{"..."}, except: []string{"api", "cmd/..."}, deny: []string{"api"}},
	{rule: "the meeting's life cycle orders the parts; only cmd and the API call it", from: []string{"..."},
		except: []string{"meeting", "api", "cmd/..."}, deny: []string{"meeting"}},
	{rule: "the LiveKit source knows nothing of Greffier: meeting wires it to the recorder and the store",
		from: []string{"livekit"}, allow: []string{"livekit"}},
	{rule: "recorder never imports sfu", from: []string{"recorder/..."}, deny: []string{"sfu/..."}},
	{rule: "the SFU knows no recorder, store, storage, pipeline, API or speech backend", from: []string{"sfu/..."},
		deny: []string{"recorder/...", "internal/store", "internal/blob", "jobs", "api", "transcribe/...", "diarize/...", "summarize/..."}},
	{rule: "transcription backends know nothing of meetings: only the media toolbox and internal/backend, the leaf all backend clients share",
		from: []string{"transcribe"}, allow: []string{"transcribe", "internal/audio", "internal/backend"}},
	{rule: "transcription doubles share the media toolbox and nothing else of Greffier",
		from:  []string{"transcribe/transcribetest", "transcribe/kyutaitest"},
		allow: []string{"internal/audio", "transcribe/transcribetest", "transcribe/kyutaitest"}},
	{rule: "archive knows nothing of meetings or storage: only the media toolbox",
		from: []string{"archive"}, allow: []string{"archive", "internal/audio"}},
	{rule: "summarize is a leaf, so that minutes can hold a summary; internal/backend is what backend clients share",
		from: []string{"summarize/..."}, allow: []string{"summarize/...", "internal/backend"}},
	{rule: "blob storage knows nothing of meetings: it shares only the backends' retry policy (internal/backend)",
		from: []string{"internal/blob"}, allow: []string{"internal/blob", "internal/backend"}},
	{rule: "diarize knows nothing of storage, the database, jobs or meetings",
		from: []string{"diarize"}, allow: []string{"diarize", "internal/audio", "internal/backend", "internal/httperr"}},
}, leafRules(leaves)...)

func leafRules(leaves []string) []importRule {
	out := make([]importRule, len(leaves))
	for i, l := range leaves {
		out[i] = importRule{rule: l + " is a leaf: it imports nothing of Greffier", from: []string{l}, allow: []string{l}}
	}
	return out
}

// goPackage is what the rules need of `go list -json`.
type goPackage struct {
	ImportPath string
	Deps       []string
	Module     *struct{ Path string }
}

// TestImportRules checks every rule against the module's import graph,
// read once with go list.
func TestImportRules(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.CommandContext(t.Context(), goBin, "list", "-deps", "-json", "./...").Output()
	require.NoError(t, err)
	var pkgs []goPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		if p.Module != nil && p.Module.Path == module {
			pkgs = append(pkgs, p)
		}
	}
	require.NotEmpty(t, pkgs)
	for _, v := range violations(pkgs, importRules) {
		t.Error(v)
	}
}

// TestImportRulesCatchWhatTheyForbid runs the rules over a made-up graph
// that breaks each kind of rule once.
func TestImportRulesCatchWhatTheyForbid(t *testing.T) {
	t.Parallel()
	pkg := func(path string, deps ...string) goPackage {
		p := goPackage{ImportPath: module + "/" + path}
		for _, d := range deps {
			p.Deps = append(p.Deps, module+"/"+d)
		}
		p.Deps = append(p.Deps, "strings") // not Greffier: never counted
		return p
	}
	graph := []goPackage{
		pkg("api", "internal/store"),
		pkg("cmd/greffier", "api", "sfu"),
		pkg("jobs", "api"),
		pkg("recorder", "internal/store", "sfu"),
		pkg("sfu", "internal/httperr"),
		pkg("internal/audio", "internal/store"),
		pkg("transcribe", "internal/backend", "transcribe/internal/oggopus"),
		pkg("transcribe/internal/oggopus"),
	}
	rules := []importRule{
		{rule: "nothing imports api but cmd", from: []string{"..."}, except: []string{"api", "cmd/..."}, deny: []string{"api"}},
		{rule: "recorder never imports sfu", from: []string{"recorder/..."}, deny: []string{"sfu/..."}},
		{rule: "transcribe imports only its own and internal/backend", from: []string{"transcribe"},
			allow: []string{"transcribe", "transcribe/internal/...", "internal/backend"}},
		{rule: "a rule for a package that is gone", from: []string{"summarize"}, allow: []string{"summarize"}},
	}
	rules = append(rules, leafRules([]string{"internal/audio", "transcribe/internal/..."})...)
	require.Equal(t, []string{
		"nothing imports api but cmd: jobs imports api",
		"recorder never imports sfu: recorder imports sfu",
		"a rule for a package that is gone: no package matches [summarize]",
		"internal/audio is a leaf: it imports nothing of Greffier: internal/audio imports internal/store",
	}, violations(graph, rules))
}

// violations lists how pkgs break rules, one sentence a broken import.
func violations(pkgs []goPackage, rules []importRule) []string {
	var out []string
	for _, r := range rules {
		matched := false
		for _, p := range pkgs {
			path := strings.TrimPrefix(p.ImportPath, module+"/")
			if path == p.ImportPath || !matches(path, r.from) || matches(path, r.except) {
				continue
			}
			matched = true
			for _, d := range p.Deps {
				dep, ok := strings.CutPrefix(d, module+"/")
				if !ok || dep == path {
					continue
				}
				if (r.allow != nil && !matches(dep, r.allow)) || matches(dep, r.deny) {
					out = append(out, r.rule+": "+path+" imports "+dep)
				}
			}
		}
		if !matched {
			// A renamed package would make its rule hold for nothing.
			out = append(out, r.rule+": no package matches "+"["+strings.Join(r.from, " ")+"]")
		}
	}
	return out
}

func matches(path string, patterns []string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool {
		if pat == "..." {
			return true
		}
		if dir, ok := strings.CutSuffix(pat, "/..."); ok {
			return path == dir || strings.HasPrefix(path, dir+"/")
		}
		return path == pat
	})
}

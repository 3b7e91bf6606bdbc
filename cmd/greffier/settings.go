package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"
)

// setting is one row of the table Config's tags make.
type setting struct {
	Name    string   // flag name without dashes: data-dir
	Env     string   // GREFFIER_DATA_DIR
	Key     string   // data_dir, in the JSON file
	Type    string   // as -h and the docs show it: string, duration, …
	Default string   // as typed
	Help    string   // one line
	Secret  bool     // masked by `greffier config`; also read from a file
	Aliases []string // former flag names, accepted and not shown
	index   int      // of the Config field
}

// Flags names the setting as the user can set it, for error messages.
func (s setting) Flags() string { return "--" + s.Name + " / " + s.Env }

// settings reads the table from Config's tags.
func settings() []setting {
	t := reflect.TypeFor[Config]()
	out := make([]setting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("setting")
		def, _ := f.Tag.Lookup("default")
		s := setting{Name: name, Env: "GREFFIER_" + envName(name), Key: strings.ReplaceAll(name, "-", "_"),
			Type: typeName(f.Type), Default: def, Help: f.Tag.Get("help"), Secret: f.Tag.Get("secret") == "true", index: i}
		if a := f.Tag.Get("alias"); a != "" {
			s.Aliases = strings.Split(a, ",")
		}
		out = append(out, s)
	}
	return out
}

func envName(name string) string { return strings.ToUpper(strings.ReplaceAll(name, "-", "_")) }

func typeName(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "duration"
	case reflect.TypeFor[ByteSize]():
		return "size"
	case reflect.TypeFor[[]string]():
		return "list"
	}
	return t.Kind().String()
}

// settingByName finds a row; validate names settings through it so a
// renamed one fails its test rather than an error message.
func settingByName(name string) setting {
	for _, s := range settings() {
		if s.Name == name {
			return s
		}
	}
	panic("no setting " + name) // a programming error: TestValidateNamesRealSettings catches it
}

// badSetting is a configuration error naming what the user can change.
func badSetting(name, format string, args ...any) error {
	s := settingByName(name)
	return fmt.Errorf("%s: %s", s.Flags(), fmt.Sprintf(format, args...))
}

// Source says where an effective setting came from.
type Source string

const (
	SourceDefault Source = "default"
	SourceFile    Source = "file"
	SourceEnv     Source = "env"
	SourceFlag    Source = "flag"
)

// LoadConfig reads the file named by --config or GREFFIER_CONFIG, then the
// environment, then the flags in args.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	cfg, _, err := loadConfig("serve", args, getenv, io.Discard)
	return cfg, err
}

// loadConfig is LoadConfig that also says where each setting came from
// and writes -h's answer to help (flag.ErrHelp is returned then).
func loadConfig(command string, args []string, getenv func(string) string, help io.Writer) (Config, map[string]Source, error) {
	cfg := DefaultConfig()
	table := settings()
	src := make(map[string]Source, len(table))
	for _, s := range table {
		src[s.Name] = SourceDefault
	}
	fs := flag.NewFlagSet("greffier "+command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configFile := fs.String("config", getenv("GREFFIER_CONFIG"), "")
	type flagValue struct {
		s        setting
		fromFile bool
		value    string
	}
	var given []*flagValue
	for _, s := range table {
		names := append([]string{s.Name}, s.Aliases...)
		for _, n := range names {
			record := func(v string) error {
				given = append(given, &flagValue{s: s, value: v})
				return nil
			}
			if s.Type == "bool" {
				fs.BoolFunc(n, s.Help, record) // --s3-use-ssl alone means true
			} else {
				fs.Func(n, s.Help, record)
			}
			if s.Secret {
				fs.Func(n+"-file", "", func(v string) error {
					given = append(given, &flagValue{s: s, value: v, fromFile: true})
					return nil
				})
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			writeUsage(help, command, table)
			return cfg, src, err
		}
		return cfg, src, fmt.Errorf("%w (greffier %s -h lists the settings)", err, command)
	}
	if fs.NArg() > 0 {
		return cfg, src, fmt.Errorf("unexpected arguments: %s (greffier %s -h lists the settings)", strings.Join(fs.Args(), " "), command)
	}
	v := reflect.ValueOf(&cfg).Elem()
	set := func(s setting, raw string, fromFile bool, where Source, origin string) error {
		if fromFile {
			b, err := os.ReadFile(raw)
			if err != nil {
				return fmt.Errorf("%s (setting %s): read the secret's file: %w", origin, s.Flags(), err)
			}
			raw = strings.TrimRight(string(b), "\r\n")
		}
		if err := setField(v.Field(s.index), raw); err != nil {
			return fmt.Errorf("%s (setting %s): %w", origin, s.Flags(), err)
		}
		src[s.Name] = where
		return nil
	}
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, src, fmt.Errorf("read config file (--config / GREFFIER_CONFIG): %w", err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(b, &doc); err != nil {
			return cfg, src, fmt.Errorf("config file %s: %w", *configFile, err)
		}
		keys := make([]string, 0, len(doc))
		for k := range doc {
			keys = append(keys, k)
		}
		sort.Strings(keys)
	keysLoop:
		for _, k := range keys {
			for _, s := range table {
				fromFile := s.Secret && k == s.Key+"_file"
				if k != s.Key && !fromFile {
					continue
				}
				raw, err := jsonSettingText(doc[k])
				if err == nil {
					err = set(s, raw, fromFile, SourceFile, "config file "+*configFile+": "+k)
				} else {
					err = fmt.Errorf("config file %s: %s (setting %s): %w", *configFile, k, s.Flags(), err)
				}
				if err != nil {
					return cfg, src, err
				}
				continue keysLoop
			}
			return cfg, src, fmt.Errorf("config file %s: unknown setting %q (greffier %s -h lists them)", *configFile, k, command)
		}
	}
	for _, s := range table {
		direct, file := getenv(s.Env), ""
		if s.Secret {
			file = getenv(s.Env + "_FILE")
		}
		switch {
		case direct != "" && file != "":
			return cfg, src, fmt.Errorf("%s and %s_FILE are both set: keep one", s.Env, s.Env)
		case direct != "":
			if err := set(s, direct, false, SourceEnv, s.Env); err != nil {
				return cfg, src, err
			}
		case file != "":
			if err := set(s, file, true, SourceEnv, s.Env+"_FILE"); err != nil {
				return cfg, src, err
			}
		}
	}
	for _, g := range given {
		origin := "--" + g.s.Name
		if g.fromFile {
			origin += "-file"
		}
		if err := set(g.s, g.value, g.fromFile, SourceFlag, origin); err != nil {
			return cfg, src, err
		}
	}
	return cfg, src, cfg.validate()
}

// jsonSettingText turns a JSON value into the text a flag would hold:
// strings as they are, lists joined by commas, numbers and booleans as
// written.
func jsonSettingText(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return strings.Join(list, ","), nil
	}
	var scalar any
	if err := json.Unmarshal(raw, &scalar); err != nil {
		return "", err
	}
	switch scalar.(type) {
	case float64, bool:
		return string(raw), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or list of strings, got %s", raw)
}

// writeUsage is `serve -h`: every setting with its type, default and
// variable.
func writeUsage(w io.Writer, command string, table []setting) {
	fmt.Fprintf(w, "usage: greffier %s [flags]\n\n", command)
	fmt.Fprintf(w, "Each setting is a flag, a GREFFIER_* variable and a key of the JSON file named by\n")
	fmt.Fprintf(w, "--config / GREFFIER_CONFIG; flags override variables, which override the file.\n")
	fmt.Fprintf(w, "Secrets can also be read from a file: --NAME-file / GREFFIER_NAME_FILE.\n\n")
	fmt.Fprintf(w, "  --config string\n      JSON configuration file (env GREFFIER_CONFIG)\n")
	for _, s := range table {
		def := s.Default
		if def == "" {
			def = "none"
		} else if s.Type == "string" {
			def = fmt.Sprintf("%q", def)
		}
		fmt.Fprintf(w, "  --%s %s\n      %s\n      (env %s, default %s", s.Name, s.Type, s.Help, s.Env, def)
		if s.Secret {
			fmt.Fprintf(w, "; or --%s-file / %s_FILE", s.Name, s.Env)
		}
		fmt.Fprintln(w, ")")
	}
}

// displayValue is a setting's effective value as `greffier config` shows
// it: secrets masked (a URL keeps all but its password).
func displayValue(s setting, cfg Config) string {
	f := reflect.ValueOf(cfg).Field(s.index)
	var text string
	switch x := f.Interface().(type) {
	case []string:
		text = strings.Join(x, ",")
	case ByteSize:
		text = x.String()
	default:
		text = fmt.Sprint(x)
	}
	if !s.Secret || text == "" {
		return text
	}
	if u, err := url.Parse(text); err == nil && u.Scheme != "" && u.Host != "" {
		if _, has := u.User.Password(); has {
			return u.Redacted()
		}
		return text
	}
	return "********"
}

// String writes a size back in the largest unit that divides it.
func (b ByteSize) String() string {
	for i, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		unit := ByteSize(1) << (10 * (4 - i))
		if b != 0 && b%unit == 0 {
			return fmt.Sprintf("%d%s", b/unit, u)
		}
	}
	return fmt.Sprintf("%d", int64(b))
}

// settingsMarkdown is the table in docs/operations.md.
func settingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| Flag | Variable | Type | Default | What it does |\n|---|---|---|---|---|\n")
	for _, s := range settings() {
		def := "`" + s.Default + "`"
		if s.Default == "" {
			def = "(none)"
		}
		env := "`" + s.Env + "`"
		if s.Secret {
			env += " or `" + s.Env + "_FILE`"
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s | %s |\n", s.Name, env, s.Type, def, strings.ReplaceAll(s.Help, "|", "\\|"))
	}
	return b.String()
}

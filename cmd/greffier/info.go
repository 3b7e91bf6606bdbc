package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"text/tabwriter"
)

// printConfig is `greffier config`: the configuration serve would run
// with, from the same flags, variables and file, secrets masked.
func printConfig(args []string, getenv func(string) string, stdout io.Writer) error {
	var asJSON bool
	rest := args[:0:0]
	for _, a := range args {
		if a == "--json" || a == "-json" {
			asJSON = true
			continue
		}
		rest = append(rest, a)
	}
	cfg, src, err := loadConfig("config", rest, getenv, stdout)
	if err != nil {
		return err
	}
	type row struct {
		Setting  string `json:"setting"`
		Variable string `json:"variable"`
		Value    string `json:"value"`
		Source   Source `json:"source"`
	}
	var rows []row
	for _, s := range settings() {
		rows = append(rows, row{s.Name, s.Env, displayValue(s, cfg), src[s.Name]})
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tFROM")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Setting, r.Value, r.Source)
	}
	return tw.Flush()
}

// printVersion is `greffier version`: the module version and the VCS
// revision the binary was built from, as Go recorded them.
func printVersion(stdout io.Writer) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		_, err := fmt.Fprintln(stdout, "greffier (no build information)")
		return err
	}
	fmt.Fprintf(stdout, "greffier %s\n", info.Main.Version)
	fmt.Fprintf(stdout, "go        %s\n", info.GoVersion)
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
			fmt.Fprintf(stdout, "%-9s %s\n", s.Key, s.Value)
		}
	}
	return nil
}

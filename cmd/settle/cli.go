package main

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/settlekit/settle/pipeline"
)

// exitCodesHelp is the exit-code contract, shown by --help (the README's
// "Exit codes" says the same).
const exitCodesHelp = `EXIT CODES:
   0   done: every stage ran and nothing needs a person
   1   failed; a retry is safe (resumes where it stopped)
   2   usage: bad flags, configuration, rules file or credentials; fix, then run again
   3   input: too many rows rejected; nothing paid on the date; fix the data, then run again with --reextract
       (refused once the date's trade files went up: the message says what instead), or raise --max-reject-ratio
   4   finished what it safely could; a person must look (settle status, mismatches.csv)
   75  another run holds the lock of this date; try again later`

// flagCategories groups the flags of run in --help, by name prefix.
var flagCategories = []struct{ prefix, category string }{
	{"database-url", "Database"}, {"source-database-url", "Database"}, {"source-standby-", "Database"}, {"schema", "Database"}, {"database-allow-plaintext", "Database"},
	{"date", "Dates"}, {"from", "Dates"}, {"to", "Dates"}, {"tz", "Dates"}, {"until", "Dates"},
	{"dry-run", "Dates"}, {"reextract", "Dates"}, {"shard", "Dates"},
	{"rules", "Data and rules"}, {"source-query", "Data and rules"}, {"sellers-query", "Data and rules"},
	{"late-refunds-query", "Data and rules"}, {"min-payout", "Data and rules"}, {"recheck-days", "Data and rules"}, {"rejected-watch-days", "Data and rules"}, {"reconcile-all", "Data and rules"}, {"late-orders", "Data and rules"},
	{"max-reject-ratio", "Data and rules"}, {"skip-channel", "Data and rules"},
	{"out", "Reports and metrics"}, {"reports-keep-days", "Reports and metrics"}, {"metrics-", "Reports and metrics"},
	{"payprotocol-", "Pay Protocol"},
	{"infinia-", "Infinia Pay"}, {"platform-id", "Infinia Pay"}, {"sftp-", "Infinia Pay"}, {"work-dir", "Infinia Pay"},
	{"wechat-", "WeChat Pay"},
	{"provider-", "All providers"}, {"parallel", "All providers"},
}

// categorize sets each flag's help category from its name; a flag no
// prefix matches keeps its own.
func categorize(flags []cli.Flag) []cli.Flag {
	for _, f := range flags {
		name := f.Names()[0]
		cat := ""
		for _, c := range flagCategories {
			if name == c.prefix || (strings.HasSuffix(c.prefix, "-") && strings.HasPrefix(name, c.prefix)) ||
				strings.HasPrefix(name, c.prefix+"-") {
				cat = c.category
				break
			}
		}
		if cat == "" {
			continue
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			f.Category = cat
		case *cli.BoolFlag:
			f.Category = cat
		case *cli.IntFlag:
			f.Category = cat
		case *cli.Float64Flag:
			f.Category = cat
		case *cli.DurationFlag:
			f.Category = cat
		case *cli.StringSliceFlag:
			f.Category = cat
		case *cli.Int64Flag:
			f.Category = cat
		}
	}
	return flags
}

func versionCommand(cfg *config) *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the module version, the VCS revision it was built from, and the Go version",
		Action: func(*cli.Context) error {
			info, ok := debug.ReadBuildInfo()
			fmt.Fprintln(cfg.stdout, versionLine(info, ok))
			return nil
		},
	}
}

// versionLine is what settle version prints, from the binary's build
// information.
func versionLine(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "settle (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = "unknown"
	}
	if settings["vcs.modified"] == "true" {
		rev += "+modified"
	}
	line := fmt.Sprintf("settle %s revision %s", version, rev)
	if t := settings["vcs.time"]; t != "" {
		line += " (" + t + ")"
	}
	return line + " " + info.GoVersion
}

// flagDash matches a flag named with Go's single dash in the flag
// package's errors; settle's flags are written with two.
var flagDash = regexp.MustCompile(`(flag provided but not defined: |flag needs an argument: |for flag )-{1,2}([A-Za-z0-9][\w-]*)`)

// requiredFlags matches urfave/cli's message for missing required flags.
var requiredFlags = regexp.MustCompile(`Required flags? "([^"]+)" not set`)

// usageError turns a flag parsing error into a usage error (exit 2) that
// names the flags as they are typed: --rules, not -rules.
func usageError(err error) error {
	msg := flagDash.ReplaceAllString(err.Error(), "$1--$2")
	msg = requiredFlags.ReplaceAllStringFunc(msg, func(m string) string {
		names := strings.Split(requiredFlags.FindStringSubmatch(m)[1], ", ")
		for i, n := range names {
			names[i] = "--" + n
		}
		return "required flag " + strings.Join(names, ", ") + " not set"
	})
	return pipeline.Errorf(pipeline.KindUsage, "usage", "%s (settle COMMAND --help lists the flags)", msg)
}

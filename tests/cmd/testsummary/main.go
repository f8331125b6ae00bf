// Command testsummary reads `go test -json` streams, one per backend, and
// prints what they add up to.
//
// Usage:
//
//	testsummary [-allow-skip REGEXP] [-backends LIST] [-max-output N] [BACKEND=]FILE...
//
// A bare FILE names its backend by the file name without directory and
// extension. For each backend it prints "BACKEND: N passed, N failed, N
// skipped" and the tests that failed, with their output first, and it ends
// with one line of totals: "N passed, N failed, N skipped".
//
// It exits 1 when
//   - any test failed, or a package failed without a failing test (build
//     error, panic, timeout; counted as one failure named after the package),
//   - a backend's file is missing or holds no test events, or no test ran
//     (passed or failed) on a backend,
//   - a test (package and name) was skipped and ran on no backend at all;
//     tests matching -allow-skip (against "importpath.TestName/subtest")
//     are listed but do not fail the run, and so are all such tests when
//     -backends names a backend that has no FILE (a test skipped on the
//     backends that ran may be one for a backend that did not).
//
// It exits 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// event is one line of `go test -json` (cmd/test2json) output.
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	ImportPath  string // build-output and build-fail events
	FailedBuild string // package fail caused by a build failure
}

type testID struct{ pkg, name string }

func (id testID) String() string {
	if id.name == "" {
		return id.pkg
	}
	return id.pkg + "." + id.name
}

type failure struct {
	id     testID
	reason string // empty for an ordinary test failure
	output []string
}

func (f failure) String() string {
	if f.reason == "" {
		return f.id.String()
	}
	return f.id.String() + " [" + f.reason + "]"
}

// backend is what one stream adds up to.
type backend struct {
	name, path string
	passed     int
	failed     int
	skipped    int
	failures   []failure
	ran        map[testID]bool // passed or failed at least once
	skips      map[testID]bool
	problem    string // file missing, unreadable or without events
}

// parse reads one `go test -json` stream.
func parse(name string, r io.Reader) (*backend, error) {
	b := &backend{name: name, ran: map[testID]bool{}, skips: map[testID]bool{}}
	var (
		output      = map[testID][]string{} // pending output per test; "" name for package level
		buildOutput = map[string][]string{} // per import path
		running     = map[testID]bool{}
		pkgFailed   = map[string]string{} // package -> FailedBuild (may be empty)
		pkgOrder    []string
		failedIn    = map[string]bool{} // packages with a failed test
		events      int
	)
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var ev event
			if line[0] != '{' || json.Unmarshal(line, &ev) != nil || ev.Action == "" {
				// Not a test2json line (stray output): keep it with the package-less bucket.
				output[testID{}] = append(output[testID{}], string(line))
			} else {
				events++
				id := testID{ev.Package, ev.Test}
				switch ev.Action {
				case "output":
					output[id] = append(output[id], ev.Output)
				case "build-output":
					buildOutput[ev.ImportPath] = append(buildOutput[ev.ImportPath], ev.Output)
				case "run":
					running[id] = true
				case "pass", "fail", "skip":
					if ev.Test == "" {
						if ev.Action == "fail" {
							if _, seen := pkgFailed[ev.Package]; !seen {
								pkgOrder = append(pkgOrder, ev.Package)
							}
							pkgFailed[ev.Package] = ev.FailedBuild
						}
						break
					}
					delete(running, id)
					switch ev.Action {
					case "pass":
						b.passed++
						b.ran[id] = true
					case "fail":
						b.failed++
						b.ran[id] = true
						failedIn[ev.Package] = true
						b.failures = append(b.failures, failure{id: id, output: output[id]})
					case "skip":
						b.skipped++
						b.skips[id] = true
					}
					delete(output, id)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if events == 0 {
		b.problem = "no go test events"
	}

	// Tests that started but never finished: their package died under them.
	var unfinished []testID
	for id := range running {
		unfinished = append(unfinished, id)
	}
	sortIDs(unfinished)
	for _, id := range unfinished {
		b.failed++
		b.ran[id] = true
		failedIn[id.pkg] = true
		b.failures = append(b.failures, failure{id: id, reason: "did not finish", output: output[id]})
	}

	// Packages that failed with no failing test: build errors, panics in
	// init or TestMain, a nonzero exit after all tests passed.
	for _, pkg := range pkgOrder {
		if failedIn[pkg] {
			continue
		}
		reason, out := "package failed", output[testID{pkg, ""}]
		if fb := pkgFailed[pkg]; fb != "" {
			reason = "build failed"
			out = append(append([]string{}, buildOutput[fb]...), out...)
		}
		b.failed++
		b.failures = append(b.failures, failure{id: testID{pkg: pkg}, reason: reason, output: out})
	}
	return b, nil
}

func sortIDs(ids []testID) {
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].pkg != ids[j].pkg {
			return ids[i].pkg < ids[j].pkg
		}
		return ids[i].name < ids[j].name
	})
}

// input is one BACKEND=FILE argument.
type input struct{ name, path string }

func parseArgs(args []string) ([]input, error) {
	var ins []input
	seen := map[string]bool{}
	for _, a := range args {
		name, path, ok := strings.Cut(a, "=")
		if !ok {
			path = a
			name = strings.TrimSuffix(filepath.Base(a), filepath.Ext(a))
		}
		if name == "" || path == "" {
			return nil, fmt.Errorf("bad argument %q: want [BACKEND=]FILE", a)
		}
		if seen[name] {
			return nil, fmt.Errorf("backend %q given twice", name)
		}
		seen[name] = true
		ins = append(ins, input{name, path})
	}
	if len(ins) == 0 {
		return nil, errors.New("no input files")
	}
	return ins, nil
}

func readBackend(in input) *backend {
	f, err := os.Open(in.path)
	if err != nil {
		return &backend{name: in.name, path: in.path, problem: err.Error()}
	}
	defer f.Close()
	b, err := parse(in.name, f)
	if err != nil {
		return &backend{name: in.name, path: in.path, problem: err.Error()}
	}
	b.path = in.path
	return b
}

// skippedEverywhere lists tests skipped on some backend that ran on none.
func skippedEverywhere(bs []*backend) []testID {
	ran := map[testID]bool{}
	skipped := map[testID]bool{}
	for _, b := range bs {
		for id := range b.ran {
			ran[id] = true
		}
		for id := range b.skips {
			skipped[id] = true
		}
	}
	var out []testID
	for id := range skipped {
		if !ran[id] {
			out = append(out, id)
		}
	}
	sortIDs(out)
	return out
}

// notRun lists the backends of all (space- or comma-separated) that have no
// stream in bs.
func notRun(bs []*backend, all string) []string {
	have := map[string]bool{}
	for _, b := range bs {
		have[b.name] = true
	}
	var missing []string
	for _, name := range strings.FieldsFunc(all, func(r rune) bool { return r == ' ' || r == ',' }) {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	return missing
}

// reportSkips lists the tests skipped on every backend that ran and says
// whether that fails the run: it does for those -allow-skip does not match,
// unless some backends of the suite did not run (a test skipped on the ones
// that ran may run on those).
func reportSkips(w io.Writer, bs []*backend, allow *regexp.Regexp, missing []string) bool {
	var fatal, allowed []string
	for _, id := range skippedEverywhere(bs) {
		if allow != nil && allow.MatchString(id.String()) {
			allowed = append(allowed, id.String())
		} else {
			fatal = append(fatal, id.String())
		}
	}
	if len(allowed) > 0 {
		fmt.Fprintf(w, "skipped on every backend (allowed by -allow-skip): %s\n", strings.Join(allowed, ", "))
	}
	if len(fatal) == 0 {
		return false
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "skipped on every backend that ran (not checked: %s did not run): %s\n",
			strings.Join(missing, ", "), strings.Join(fatal, ", "))
		return false
	}
	fmt.Fprintf(w, "skipped on every backend: %s\n", strings.Join(fatal, ", "))
	return true
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testsummary", flag.ContinueOnError)
	fs.SetOutput(stderr)
	allowSkip := fs.String("allow-skip", "", "regexp of tests (importpath.TestName) that may be skipped on every backend")
	all := fs.String("backends", "", "every backend of the suite, separated by spaces or commas; when some of them have no FILE, skips are listed but do not fail the run")
	maxOutput := fs.Int("max-output", 200, "print at most this many trailing output lines of each failed test")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: testsummary [-allow-skip REGEXP] [-backends LIST] [-max-output N] [BACKEND=]FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var allow *regexp.Regexp
	if *allowSkip != "" {
		var err error
		if allow, err = regexp.Compile(*allowSkip); err != nil {
			fmt.Fprintln(stderr, "testsummary: -allow-skip:", err)
			return 2
		}
	}
	ins, err := parseArgs(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "testsummary:", err)
		fs.Usage()
		return 2
	}

	var bs []*backend
	for _, in := range ins {
		bs = append(bs, readBackend(in))
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	bad := false

	// Output of failures first, so the counts close the report.
	for _, b := range bs {
		for _, f := range b.failures {
			fmt.Fprintf(w, "=== output of failed %s on %s\n", f, b.name)
			out := f.output
			if *maxOutput >= 0 && len(out) > *maxOutput {
				fmt.Fprintf(w, "    ... %d earlier lines left out\n", len(out)-*maxOutput)
				out = out[len(out)-*maxOutput:]
			}
			for _, line := range out {
				io.WriteString(w, "    "+strings.TrimRight(line, "\n")+"\n")
			}
		}
	}
	if len(bs) > 0 {
		fmt.Fprintln(w)
	}

	var passed, failed, skipped int
	for _, b := range bs {
		fmt.Fprintf(w, "%s: %d passed, %d failed, %d skipped\n", b.name, b.passed, b.failed, b.skipped)
		passed += b.passed
		failed += b.failed
		skipped += b.skipped
	}
	for _, b := range bs {
		for _, f := range b.failures {
			fmt.Fprintf(w, "FAIL on %s: %s\n", b.name, f)
			bad = true
		}
	}
	for _, b := range bs {
		switch {
		case b.problem != "":
			fmt.Fprintf(w, "no results from %s (%s): %s\n", b.name, b.path, b.problem)
			bad = true
		case b.passed+b.failed == 0:
			fmt.Fprintf(w, "no test ran on %s (%s)\n", b.name, b.path)
			bad = true
		}
	}

	if reportSkips(w, bs, allow, notRun(bs, *all)) {
		bad = true
	}

	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if bad {
		return 1
	}
	return 0
}

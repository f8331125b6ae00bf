// Command benchratio reads `go test -bench` output and prints, for each
// benchmark that has a baseline and a dynoseal side, how many times slower
// dynoseal is, next to its target.
//
// Usage:
//
//	benchratio [-strict] [-target REGEXP=RATIO]... [FILE...]
//
// It reads the FILEs, or standard input when there are none. Sub-benchmarks
// whose last name element is "raw" or "floor" are baselines, and "dynoseal"
// their counterparts: BenchmarkVsRaw/Put/plain/raw-2 and
// BenchmarkVsRaw/Put/plain/dynoseal-2 make the pair "VsRaw/Put/plain" (the
// "Benchmark" prefix and the -GOMAXPROCS suffix are dropped). Each side's
// time is the median sec/op of its runs (use -count), and the ratio is
// dynoseal's median over the baseline's. When the benchmarks report them,
// the table also shows the same ratio of median CPU time per op
// (cpu-ns/op, less disturbed by other load on the machine than wall time),
// the "client ratio" (the time ratio after taking the in-process fake
// server's median time per op, fake-ns/op, out of each side) and the median
// allocations per op of each side; only the time ratio is held to the
// target.
//
// The target of a pair is that of the first -target whose regular
// expression matches its name, then of the first default that does:
//
//	^VsRaw/[^/]+/plain$   1.10   the library on items without encrypted fields
//	^VsRaw/[^/]+/enc3$    1.5    on items with 3 encrypted fields
//	^SealField$           1.5    sealing and marshalling one value, against the floor
//	^BeaconLookup/bits16$ 1.3    a lookup by beacon, against a query of a plaintext index
//
// A pair no target matches is printed without one.
//
// It exits 0 when it could read its input, whatever the ratios: it reports.
// With -strict it exits 1 when a ratio is over its target, when a baseline
// or dynoseal side has no partner, or when no pair was found. It exits 2 on
// bad usage or input it cannot read.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// target is the largest ratio allowed for the pairs whose name matches re.
type target struct {
	re    *regexp.Regexp
	ratio float64
}

var defaultTargets = []target{
	{regexp.MustCompile(`^VsRaw/[^/]+/plain$`), 1.10},
	{regexp.MustCompile(`^VsRaw/[^/]+/enc3$`), 1.5},
	{regexp.MustCompile(`^SealField$`), 1.5},
	{regexp.MustCompile(`^BeaconLookup/bits16$`), 1.3},
}

// targetFlags collects -target REGEXP=RATIO.
type targetFlags []target

func (f *targetFlags) String() string { return "" }

func (f *targetFlags) Set(s string) error {
	i := strings.LastIndex(s, "=")
	if i < 0 {
		return errors.New("want REGEXP=RATIO")
	}
	re, err := regexp.Compile(s[:i])
	if err != nil {
		return err
	}
	r, err := strconv.ParseFloat(s[i+1:], 64)
	if err != nil || r <= 0 {
		return fmt.Errorf("ratio %q is not a positive number", s[i+1:])
	}
	*f = append(*f, target{re, r})
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchratio", flag.ContinueOnError)
	fs.SetOutput(stderr)
	strict := fs.Bool("strict", false, "exit 1 when a ratio is over its target, a side has no partner or no pair is found")
	var targets targetFlags
	fs.Var(&targets, "target", "REGEXP=RATIO: the target of the pairs REGEXP matches (before the defaults; repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var results []result
	read := func(r io.Reader) error {
		rs, err := parse(r)
		results = append(results, rs...)
		return err
	}
	if fs.NArg() == 0 {
		if err := read(stdin); err != nil {
			fmt.Fprintln(stderr, "benchratio:", err)
			return 2
		}
	}
	for _, name := range fs.Args() {
		f, err := os.Open(name)
		if err == nil {
			err = read(f)
			f.Close()
		}
		if err != nil {
			fmt.Fprintln(stderr, "benchratio:", err)
			return 2
		}
	}
	pairs, unpaired := pairUp(results)
	for _, u := range unpaired {
		fmt.Fprintln(stderr, "benchratio:", u)
	}
	if len(pairs) == 0 {
		fmt.Fprintln(stdout, "benchratio: no pairs of raw (or floor) and dynoseal benchmarks found")
		if *strict {
			return 1
		}
		return 0
	}
	over := report(stdout, pairs, append(slices.Clone([]target(targets)), defaultTargets...))
	if *strict && (over > 0 || len(unpaired) > 0) {
		return 1
	}
	return 0
}

// result is one benchmark line: its measurements by unit ("sec/op" for
// the time per op, which the line gives in ns/op).
type result struct {
	pkg, name string // name without "Benchmark" and -GOMAXPROCS
	metrics   map[string]float64
}

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads the benchmark lines of `go test -bench` output, remembering
// the package each follows ("pkg: ..." lines). Other lines are skipped.
func parse(r io.Reader) ([]result, error) {
	var out []result
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		res := result{pkg: pkg, name: procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), ""), metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return out, fmt.Errorf("%s: bad %s value %q", f[0], f[i+1], f[i])
			}
			if f[i+1] == "ns/op" {
				res.metrics["sec/op"] = v / 1e9
			} else {
				res.metrics[f[i+1]] = v
			}
		}
		if _, ok := res.metrics["sec/op"]; ok {
			out = append(out, res)
		}
	}
	return out, sc.Err()
}

// side is the runs of one side of a pair: each unit's values.
type side map[string][]float64

func (s side) add(r result) {
	for unit, v := range r.metrics {
		s[unit] = append(s[unit], v)
	}
}

// pair is a baseline and its dynoseal counterpart.
type pair struct {
	pkg, name string
	baseline  string // "raw" or "floor"
	base      side
	dyno      side
}

// pairUp groups results by pair, in the order the pairs first appear, and
// describes the sides that have no partner.
func pairUp(results []result) (pairs []*pair, unpaired []string) {
	byKey := map[string]*pair{}
	var order []*pair
	for _, r := range results {
		i := strings.LastIndex(r.name, "/")
		if i < 0 {
			continue
		}
		stem, which := r.name[:i], r.name[i+1:]
		if which != "raw" && which != "floor" && which != "dynoseal" {
			continue
		}
		key := r.pkg + "\x00" + stem
		p := byKey[key]
		if p == nil {
			p = &pair{pkg: r.pkg, name: stem, base: side{}, dyno: side{}}
			byKey[key] = p
			order = append(order, p)
		}
		if which == "dynoseal" {
			p.dyno.add(r)
			continue
		}
		if p.baseline != "" && p.baseline != which {
			unpaired = append(unpaired, fmt.Sprintf("%s has both a raw and a floor side; using %s", stem, p.baseline))
			continue
		}
		p.baseline = which
		p.base.add(r)
	}
	for _, p := range order {
		switch {
		case len(p.base) == 0:
			unpaired = append(unpaired, p.name+"/dynoseal has no raw or floor side")
		case len(p.dyno) == 0:
			unpaired = append(unpaired, p.name+"/"+p.baseline+" has no dynoseal side")
		default:
			pairs = append(pairs, p)
		}
	}
	return pairs, unpaired
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratio is dynoseal's median over the baseline's, in unit; ok is false
// when a side lacks the unit.
func (p *pair) ratio(unit string) (r float64, ok bool) {
	b, d := p.base[unit], p.dyno[unit]
	if len(b) == 0 || len(d) == 0 {
		return 0, false
	}
	return median(d) / median(b), true
}

// clientRatio is the time ratio with the fake server's time (fake-ns/op)
// taken out of both sides: median sec/op minus median fake time.
func (p *pair) clientRatio() (float64, bool) {
	bf, df := p.base["fake-ns/op"], p.dyno["fake-ns/op"]
	if len(bf) == 0 || len(df) == 0 {
		return 0, false
	}
	b := median(p.base["sec/op"]) - median(bf)/1e9
	d := median(p.dyno["sec/op"]) - median(df)/1e9
	if b <= 0 || d <= 0 {
		return 0, false
	}
	return d / b, true
}

func targetFor(name string, targets []target) (float64, bool) {
	for _, t := range targets {
		if t.re.MatchString(name) {
			return t.ratio, true
		}
	}
	return 0, false
}

// report prints the table and returns how many ratios are over target.
// Besides the time ratio, which is held to the target, it shows, when the
// benchmarks report what they need, the ratio of CPU time per op
// (cpu-ns/op), the client ratio (the time ratio with the fake server's
// time, fake-ns/op, taken out of both sides) and the allocations per op.
func report(w io.Writer, pairs []*pair, targets []target) (over int) {
	names := map[string]int{}
	for _, p := range pairs {
		names[p.name]++
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tbaseline\tdynoseal\truns\tratio\ttarget\t\tcpu ratio\tclient ratio\tallocs/op")
	for _, p := range pairs {
		name := p.name
		if names[name] > 1 {
			name += " (" + p.pkg + ")"
		}
		r, _ := p.ratio("sec/op")
		tgt, status := "-", ""
		if t, ok := targetFor(p.name, targets); ok {
			tgt, status = fmt.Sprintf("≤ %.2f×", t), "ok"
			// Compare as printed, so 1.10× is never "over 1.10×".
			if rounded, _ := strconv.ParseFloat(fmt.Sprintf("%.2f", r), 64); rounded > t {
				status = "over"
				over++
			}
		}
		cpu := "-"
		if c, ok := p.ratio("cpu-ns/op"); ok {
			cpu = fmt.Sprintf("%.2f×", c)
		}
		client := "-"
		if c, ok := p.clientRatio(); ok {
			client = fmt.Sprintf("%.2f×", c)
		}
		allocs := "-"
		if b, d := p.base["allocs/op"], p.dyno["allocs/op"]; len(b) > 0 && len(d) > 0 {
			allocs = fmt.Sprintf("%.0f → %.0f", median(b), median(d))
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%d/%d\t%.2f×\t%s\t%s\t%s\t%s\t%s\n", name, p.baseline, duration(median(p.base["sec/op"])),
			duration(median(p.dyno["sec/op"])), len(p.base["sec/op"]), len(p.dyno["sec/op"]), r, tgt, status, cpu, client, allocs)
	}
	tw.Flush()
	return over
}

// duration formats seconds with three significant digits.
func duration(sec float64) string {
	units := []struct {
		scale float64
		name  string
	}{{1, "s"}, {1e-3, "ms"}, {1e-6, "µs"}, {1e-9, "ns"}}
	for _, u := range units {
		if sec >= u.scale || u.name == "ns" {
			v := sec / u.scale
			switch {
			case v >= 100:
				return fmt.Sprintf("%.0f%s", v, u.name)
			case v >= 10:
				return fmt.Sprintf("%.1f%s", v, u.name)
			}
			return fmt.Sprintf("%.2f%s", v, u.name)
		}
	}
	return ""
}

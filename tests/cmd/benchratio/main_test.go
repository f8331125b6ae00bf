package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two runs of the same benchmarks, as `go test -bench -count 2` prints them,
// with lines benchratio must skip.
const sample = `goos: linux
goarch: amd64
pkg: github.com/dynoseal/dynoseal/repo
cpu: Intel(R) Xeon(R) Processor
BenchmarkVsRaw/Put/plain/raw-2         	    3175	     100000 ns/op	  10000 fake-ns/op	         1.000 requests/op	   30517 B/op	     365 allocs/op
BenchmarkVsRaw/Put/plain/dynoseal-2    	    3738	     105000 ns/op	  10000 fake-ns/op	         1.000 requests/op	   31035 B/op	     376 allocs/op
BenchmarkVsRaw/Get/enc3/raw-2          	    2487	     200000 ns/op	   30165 B/op	     375 allocs/op
BenchmarkVsRaw/Get/enc3/dynoseal-2     	    2608	     400000 ns/op	   31529 B/op	     397 allocs/op
BenchmarkSealField/floor-2             	    3561	     1000.5 ns/op	      1022 ns/value	 900 cpu-ns/op
BenchmarkSealField/dynoseal-2          	     416	     1400 ns/op	         1.000 generate/op	 1900 cpu-ns/op
BenchmarkQuery-2                       	      50	   2000000 ns/op
BenchmarkVsRaw/Put/plain/raw-2         	    3175	     120000 ns/op	  10000 fake-ns/op
BenchmarkVsRaw/Put/plain/dynoseal-2    	    3738	     135000 ns/op	  20000 fake-ns/op
BenchmarkVsRaw/Get/enc3/raw-2          	    2487	     220000 ns/op
BenchmarkVsRaw/Get/enc3/dynoseal-2     	    2608	     240000 ns/op
BenchmarkSealField/floor-2             	    3561	     1000.5 ns/op	 1100 cpu-ns/op
BenchmarkSealField/dynoseal-2          	     416	     1600 ns/op	 2100 cpu-ns/op
--- BENCH: BenchmarkSomething
    bench_test.go:12: a log line
PASS
ok  	github.com/dynoseal/dynoseal/repo	6.098s
`

func TestParseSkipsAllButResultLines(t *testing.T) {
	rs, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 13 {
		t.Fatalf("%d results: %+v", len(rs), rs)
	}
	if r := rs[0]; r.pkg != "github.com/dynoseal/dynoseal/repo" || r.name != "VsRaw/Put/plain/raw" || r.metrics["sec/op"] != 100e-6 || r.metrics["allocs/op"] != 365 || r.metrics["requests/op"] != 1 {
		t.Errorf("first result: %+v", r)
	}
	if r := rs[4]; r.name != "SealField/floor" || r.metrics["sec/op"] != 1000.5e-9 || r.metrics["ns/value"] != 1022 {
		t.Errorf("a fractional ns/op: %+v", r)
	}
	// Without the -GOMAXPROCS suffix (GOMAXPROCS=1 prints none).
	rs, _ = parse(strings.NewReader("BenchmarkA/raw \t 10\t 5 ns/op\n"))
	if len(rs) != 1 || rs[0].name != "A/raw" {
		t.Errorf("%+v", rs)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{9, 1, 1, 1, 9, 9}, 5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestPairsRatiosAndTargets(t *testing.T) {
	rs, _ := parse(strings.NewReader(sample))
	pairs, unpaired := pairUp(rs)
	if len(unpaired) != 0 || len(pairs) != 3 {
		t.Fatalf("pairs %d, unpaired %v", len(pairs), unpaired)
	}
	want := map[string]float64{
		"VsRaw/Put/plain": 120000.0 / 110000, // medians of (105k, 135k) over (100k, 120k)
		"VsRaw/Get/enc3":  320000.0 / 210000,
		"SealField":       1500 / 1000.5,
	}
	for _, p := range pairs {
		if got, _ := p.ratio("sec/op"); math.Abs(got-want[p.name]) > 1e-12 {
			t.Errorf("%s: ratio %v, want %v", p.name, got, want[p.name])
		}
	}
	if tg, _ := targetFor("VsRaw/Query1000/plain", defaultTargets); tg != 1.10 {
		t.Errorf("plain target %v", tg)
	}
	if tg, _ := targetFor("VsRaw/BatchPut1000/enc3", defaultTargets); tg != 1.5 {
		t.Errorf("enc3 target %v", tg)
	}
	if tg, _ := targetFor("BeaconLookup/bits16", defaultTargets); tg != 1.3 {
		t.Errorf("BeaconLookup/bits16 target %v, want 1.3", tg)
	}
	if _, ok := targetFor("BeaconLookup/bits10", defaultTargets); ok {
		t.Error("BeaconLookup/bits10, the short beacon's cost, has a target")
	}
	if _, ok := targetFor("VsRaw/Put/other", defaultTargets); ok {
		t.Error("an unknown pair has a target")
	}
}

func TestUnpairedSides(t *testing.T) {
	rs, _ := parse(strings.NewReader(`BenchmarkA/raw-2 1 5 ns/op
BenchmarkB/dynoseal-2 1 5 ns/op
BenchmarkC/raw-2 1 5 ns/op
BenchmarkC/dynoseal-2 1 6 ns/op
`))
	pairs, unpaired := pairUp(rs)
	if len(pairs) != 1 || pairs[0].name != "C" || len(unpaired) != 2 {
		t.Fatalf("pairs %v, unpaired %v", pairs, unpaired)
	}
}

func runWith(t *testing.T, input string, args ...string) (int, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bench.txt")
	if err := os.WriteFile(path, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code := run(append(args, path), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestRunPrintsTheTableAndExitsZeroUnlessStrict(t *testing.T) {
	code, out, _ := runWith(t, sample)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"benchmark        baseline      dynoseal  runs  ratio  target         cpu ratio  client ratio  allocs/op",
		// client: (120k - 15k) / (110k - 10k)
		"VsRaw/Put/plain  raw 110µs     120µs     2/2   1.09×  ≤ 1.10×  ok    -          1.05×         365 → 376",
		"VsRaw/Get/enc3   raw 210µs     320µs     2/2   1.52×  ≤ 1.50×  over  -          -             375 → 397",
		"SealField        floor 1.00µs  1.50µs    2/2   1.50×  ≤ 1.50×  ok    2.00×      -             -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, _, _ := runWith(t, sample, "-strict"); code != 1 {
		t.Errorf("-strict with a ratio over target: exit %d", code)
	}
	if code, out, _ := runWith(t, sample, "-strict", "-target", "Get/enc3$=1.6"); code != 0 || !strings.Contains(out, "1.52×  ≤ 1.60×  ok ") {
		t.Errorf("-target before the defaults: exit %d\n%s", code, out)
	}
}

func TestRunEdgeCases(t *testing.T) {
	if code, out, _ := runWith(t, "PASS\n"); code != 0 || !strings.Contains(out, "no pairs") {
		t.Errorf("no pairs: exit %d, %q", code, out)
	}
	if code, _, _ := runWith(t, "PASS\n", "-strict"); code != 1 {
		t.Errorf("no pairs, -strict: exit %d", code)
	}
	if code, _, errOut := runWith(t, "BenchmarkA/raw-2 1 5 ns/op\nBenchmarkB/raw-2 1 5 ns/op\nBenchmarkB/dynoseal-2 1 5 ns/op\n", "-strict"); code != 1 || !strings.Contains(errOut, "A/raw has no dynoseal side") {
		t.Errorf("unpaired, -strict: exit %d, %q", code, errOut)
	}
	if code, _, _ := runWith(t, sample, "-target", "no-ratio"); code != 2 {
		t.Errorf("bad -target: exit %d", code)
	}
	var out, errOut strings.Builder
	if code := run([]string{filepath.Join(t.TempDir(), "missing.txt")}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Errorf("missing file: exit %d", code)
	}
	if code := run(nil, strings.NewReader(sample), &out, &errOut); code != 0 || !strings.Contains(out.String(), "SealField") {
		t.Errorf("standard input: exit %d\n%s", code, out.String())
	}
}

func TestDuration(t *testing.T) {
	for sec, want := range map[float64]string{1.5: "1.50s", 0.0123: "12.3ms", 123e-6: "123µs", 5e-9: "5.00ns", 0.25e-9: "0.25ns"} {
		if got := duration(sec); got != want {
			t.Errorf("duration(%v) = %q, want %q", sec, got, want)
		}
	}
}

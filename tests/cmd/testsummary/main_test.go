package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const pkg = "example.com/suite"

// stream builds a `go test -json` stream from "action test [output]" specs;
// a test of "-" is package level.
func stream(t *testing.T, specs ...string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range specs {
		f := strings.SplitN(s, " ", 3)
		ev := map[string]string{"Action": f[0], "Package": pkg}
		if len(f) > 1 && f[1] != "-" {
			ev["Test"] = f[1]
		}
		if len(f) > 2 {
			ev["Output"] = f[2] + "\n"
		}
		line, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// writeFiles writes name=content pairs to a temp dir and returns name=path args.
func writeFiles(t *testing.T, files map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	var args []string
	for _, name := range []string{"moto", "strict", "other"} {
		content, ok := files[name]
		if !ok {
			continue
		}
		p := filepath.Join(dir, "it-"+name+".json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, name+"="+p)
	}
	return args
}

func runSummary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(args, &out, &errOut)
	return code, out.String() + errOut.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestCountsAndSkipOnOneBackendOnly(t *testing.T) {
	args := writeFiles(t, map[string]string{
		"moto": stream(t,
			"start -",
			"run TestA", "pass TestA",
			"run TestTx", "pass TestTx",
			"run TestB", "run TestB/sub", "pass TestB/sub", "pass TestB",
			"pass -"),
		"strict": stream(t,
			"start -",
			"run TestA", "pass TestA",
			"run TestTx", "output TestTx dynalite has no transactions", "skip TestTx",
			"run TestB", "run TestB/sub", "pass TestB/sub", "pass TestB",
			"pass -"),
	})
	code, out := runSummary(t, args...)
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	for _, want := range []string{
		"moto: 4 passed, 0 failed, 0 skipped\n",
		"strict: 3 passed, 0 failed, 1 skipped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, want := lastLine(out), "7 passed, 0 failed, 1 skipped"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	if strings.Contains(out, "skipped on every backend") {
		t.Errorf("a test that ran on moto was reported as skipped everywhere:\n%s", out)
	}
}

func TestSkippedOnEveryBackendFails(t *testing.T) {
	files := map[string]string{
		"moto": stream(t,
			"run TestA", "pass TestA",
			"run TestDocker", "skip TestDocker",
			"run TestC", "run TestC/x", "skip TestC/x", "pass TestC",
			"pass -"),
		"strict": stream(t,
			"run TestA", "pass TestA",
			"run TestDocker", "skip TestDocker",
			"run TestC", "run TestC/x", "skip TestC/x", "pass TestC",
			"pass -"),
	}
	args := writeFiles(t, files)
	code, out := runSummary(t, args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	want := "skipped on every backend: " + pkg + ".TestC/x, " + pkg + ".TestDocker\n"
	if !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if got, want := lastLine(out), "4 passed, 0 failed, 4 skipped"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}

	// -allow-skip lets the named ones through, and only those.
	code, out = runSummary(t, append([]string{"-allow-skip", `\.TestDocker$`}, args...)...)
	if code != 1 || !strings.Contains(out, "skipped on every backend: "+pkg+".TestC/x\n") {
		t.Errorf("with -allow-skip TestDocker: exit %d, want 1 and TestC/x listed:\n%s", code, out)
	}
	code, out = runSummary(t, append([]string{"-allow-skip", `TestDocker|TestC/`}, args...)...)
	if code != 0 {
		t.Errorf("with both allowed: exit %d, want 0:\n%s", code, out)
	}
	if !strings.Contains(out, "(allowed by -allow-skip)") {
		t.Errorf("allowed skips are not listed:\n%s", out)
	}
}

func TestSkippedOnTheOnlyBackendFails(t *testing.T) {
	args := writeFiles(t, map[string]string{
		"moto": stream(t, "run TestA", "pass TestA", "run TestB", "skip TestB", "pass -"),
	})
	if code, out := runSummary(t, args...); code != 1 || !strings.Contains(out, "skipped on every backend: "+pkg+".TestB") {
		t.Errorf("exit %d, want 1 with TestB listed:\n%s", code, out)
	}
}

// make integration BACKENDS=moto: a test skipped on moto may run on strict,
// which did not run, so the skip is listed and the run passes.
func TestSkippedOnASubsetOfTheBackendsIsListedOnly(t *testing.T) {
	args := writeFiles(t, map[string]string{
		"moto": stream(t, "run TestA", "pass TestA", "run TestTx", "skip TestTx", "pass -"),
	})
	code, out := runSummary(t, append([]string{"-backends", "moto strict"}, args...)...)
	want := "skipped on every backend that ran (not checked: strict did not run): " + pkg + ".TestTx\n"
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("exit %d, want 0 with %q:\n%s", code, want, out)
	}
	// With every backend of the suite run, the same skip fails.
	code, out = runSummary(t, append([]string{"-backends", "moto"}, args...)...)
	if code != 1 || !strings.Contains(out, "skipped on every backend: "+pkg+".TestTx") {
		t.Errorf("-backends moto: exit %d, want 1:\n%s", code, out)
	}
}

func TestFailuresAreListedWithOutput(t *testing.T) {
	args := writeFiles(t, map[string]string{
		"moto": stream(t, "run TestA", "pass TestA", "run TestB", "pass TestB", "pass -"),
		"strict": stream(t,
			"run TestA", "pass TestA",
			"run TestB", "output TestB     repo_test.go:12: got ErrThrottled",
			"output TestB --- FAIL: TestB (0.01s)", "fail TestB",
			"fail -"),
	})
	code, out := runSummary(t, args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"strict: 1 passed, 1 failed, 0 skipped\n",
		"FAIL on strict: " + pkg + ".TestB\n",
		"got ErrThrottled",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got, want := lastLine(out), "3 passed, 1 failed, 0 skipped"; got != want {
		t.Errorf("last line %q, want %q", got, want)
	}
	// The package-level fail must not add a second failure.
	if n := strings.Count(out, "FAIL on strict"); n != 1 {
		t.Errorf("%d failures listed for strict, want 1:\n%s", n, out)
	}
}

func TestPackageFailureWithoutFailingTest(t *testing.T) {
	build := `{"ImportPath":"example.com/suite [example.com/suite.test]","Action":"build-output","Output":"x_test.go:3:1: syntax error\n"}
{"ImportPath":"example.com/suite [example.com/suite.test]","Action":"build-fail"}
{"Action":"start","Package":"example.com/suite"}
{"Action":"output","Package":"example.com/suite","Output":"FAIL\texample.com/suite [build failed]\n"}
{"Action":"fail","Package":"example.com/suite","FailedBuild":"example.com/suite [example.com/suite.test]"}
`
	args := writeFiles(t, map[string]string{
		"moto": stream(t, "run TestA", "pass TestA", "pass -"),
		// A test that never finished: the binary panicked or timed out.
		"strict": stream(t, "run TestA", "output TestA panic: boom", "fail -") + build,
	})
	code, out := runSummary(t, args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"FAIL on strict: " + pkg + ".TestA [did not finish]\n",
		"panic: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	args = writeFiles(t, map[string]string{"moto": build, "strict": stream(t, "run TestA", "pass TestA", "pass -")})
	code, out = runSummary(t, args...)
	if code != 1 {
		t.Fatalf("build failure: exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{
		"FAIL on moto: " + pkg + " [build failed]\n",
		"syntax error",
		"moto: 0 passed, 1 failed, 0 skipped\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestNoTestsOrMissingFile(t *testing.T) {
	args := writeFiles(t, map[string]string{
		"moto":   stream(t, "start -", "output - ok  \texample.com/suite\t0.01s [no tests to run]", "pass -"),
		"strict": "",
	})
	code, out := runSummary(t, args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	for _, want := range []string{"no test ran on moto", "no results from strict", "0 passed, 0 failed, 0 skipped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out = runSummary(t, "moto="+filepath.Join(t.TempDir(), "missing.json"))
	if code != 1 || !strings.Contains(out, "no results from moto") {
		t.Errorf("missing file: exit %d, want 1:\n%s", code, out)
	}
}

func TestArguments(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "it-moto.json")
	if err := os.WriteFile(p, []byte(stream(t, "run TestA", "pass TestA", "pass -")), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runSummary(t, p)
	if code != 0 || !strings.Contains(out, "it-moto: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("bare file argument: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{nil, {"a=" + p, "a=" + p}, {"=" + p}, {"-allow-skip", "(", p}} {
		if code, out := runSummary(t, args...); code != 2 {
			t.Errorf("args %q: exit %d, want 2:\n%s", args, code, out)
		}
	}
}

package number

import "testing"

func TestCanonicalSpellingsAgree(t *testing.T) {
	same := [][]string{
		{"10", "10.0", "1e1", "+10", "0010", "100e-1", "1.0E1"},
		{"0", "-0", "0.000", "0e5"},
		{"-1.5", "-15e-1", "-1.50"},
		{"123456789012345678901234567890", "1.2345678901234567890123456789e29"},
	}
	for _, group := range same {
		want, err := Canonical(group[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range group[1:] {
			if got, err := Canonical(n); err != nil || got != want {
				t.Errorf("%s gives %q (%v), %s gives %q", n, got, err, group[0], want)
			}
		}
	}
	for _, pair := range [][2]string{{"1", "-1"}, {"1", "10"}, {"1.5", "15"}} {
		a, _ := Canonical(pair[0])
		b, _ := Canonical(pair[1])
		if a == b {
			t.Errorf("%s and %s give the same %q", pair[0], pair[1], a)
		}
	}
	if _, err := Canonical("abc"); err == nil {
		t.Error("abc is a number")
	}
}

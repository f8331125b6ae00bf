// Package number writes DynamoDB numbers in one canonical spelling.
package number

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Canonical rewrites a decimal number so that every spelling of one
// value gives the same text: "-"? digits "E" exponent, where the value is
// 0.digits × 10^exponent, digits has no leading or trailing zeros, and zero
// is "0". So "42", "42.0", "042" and "4.2e1" all become "42E2".
func Canonical(s string) (string, error) {
	bad := func() (string, error) { return "", fmt.Errorf("%q is not a decimal number", s) }
	text := s
	neg := false
	switch {
	case strings.HasPrefix(text, "-"):
		neg, text = true, text[1:]
	case strings.HasPrefix(text, "+"):
		text = text[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToUpper(text), "E")
	exp := 0
	if hasExp {
		e, err := strconv.Atoi(expText)
		if err != nil {
			return bad()
		}
		// DynamoDB numbers stay within 10^±130; anything far beyond is an error
		// rather than an exponent that could overflow below.
		if e > 1_000_000 || e < -1_000_000 {
			return bad()
		}
		exp = e
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole == "" && frac == "" {
		return bad()
	}
	digits := whole + frac
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return bad()
		}
	}
	exp += len(whole)
	trimmed := strings.TrimLeft(digits, "0")
	exp -= len(digits) - len(trimmed)
	trimmed = strings.TrimRight(trimmed, "0")
	if trimmed == "" {
		return "0", nil
	}
	var b bytes.Buffer
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(trimmed)
	b.WriteByte('E')
	b.WriteString(strconv.Itoa(exp))
	return b.String(), nil
}

package fakedynamo

import (
	"cmp"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Scan order: partitions by hashID of their hash key's id (ties by the id),
// each partition's items in range-key order. Segment s of n holds the
// partitions whose hash, scaled to [0, n), is s, so every item is in one
// segment, and a segment is a run of the scan order.

// hashID is the 64-bit FNV-1a hash of id, its bits then mixed (as
// MurmurHash3 finishes) so that the high bits, which pick the segment,
// depend on every byte.
func hashID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	return h ^ h>>33
}

// segmentOf returns the segment, of total, of a partition hashed to h.
func segmentOf(h uint64, total int64) int64 {
	hi, _ := bits.Mul64(h, uint64(total))
	return int64(hi)
}

func comparePartition(p *partition, h uint64, id string) int {
	if c := cmp.Compare(p.h, h); c != 0 {
		return c
	}
	return strings.Compare(p.id, id)
}

// scanOrder returns tb's partitions in scan order, building the order if
// a write has dropped it.
func (tb *table) scanOrder() []*partition {
	tb.orderMu.Lock()
	defer tb.orderMu.Unlock()
	if tb.order == nil && len(tb.parts) > 0 {
		order := make([]*partition, 0, len(tb.parts))
		for _, p := range tb.parts {
			order = append(order, p)
		}
		slices.SortFunc(order, func(a, b *partition) int { return comparePartition(a, b.h, b.id) })
		tb.order = order
	}
	return tb.order
}

// scanInput is a Scan request as sent, before any of it is checked, and
// then its filter parsed.
type scanInput struct {
	exprInput
	table, capacity            string
	start                      *item
	limit, segment, total      int64
	hasLimit, hasSeg, hasTotal bool
	filter                     conditions
}

func (s *scanInput) member(r *reader, m string) *apiError {
	switch m {
	case "TableName":
		s.table = r.str()
	case "ExclusiveStartKey":
		s.start = readItem(r, false)
	case "Limit", "Segment", "TotalSegments":
		s.integer(r, m)
	case "ReturnConsumedCapacity":
		s.capacity = r.str()
	default:
		if s.exprMember(r, m) {
			return nil
		}
		return scanOther(r, m)
	}
	return nil
}

// integer reads the integer member m.
func (s *scanInput) integer(r *reader, m string) {
	switch m {
	case "Limit":
		s.limit, s.hasLimit = r.integer(), true
	case "Segment":
		s.segment, s.hasSeg = r.integer(), true
	default:
		s.total, s.hasTotal = r.integer(), true
	}
}

// scanOther reads the members of a Scan request that change nothing here,
// and refuses those it does not implement.
func scanOther(r *reader, m string) *apiError {
	switch m {
	case "ConsistentRead": // every read is consistent here
		r.boolean()
	case "ProjectionExpression", "IndexName", "Select", "ScanFilter", "ConditionalOperator", "AttributesToGet":
		return unsupported(r, m)
	default:
		r.skip()
	}
	return nil
}

// check checks the request's members that need no table.
func (s *scanInput) check() *apiError {
	if s.hasLimit && s.limit < 1 {
		return validation("1 validation error detected: Value '" + strconv.FormatInt(s.limit, 10) + "' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1")
	}
	if s.capacity != "" && s.capacity != "NONE" {
		return validation("fakedynamo: ReturnConsumedCapacity " + s.capacity + " is not supported for Scan (NONE)")
	}
	if err := s.checkSegments(); err != nil {
		return err
	}
	return s.expressions()
}

// expressions parses the request's filter, checking that every name and
// value given is used.
func (s *scanInput) expressions() *apiError {
	if s.filterExpr == "" && s.names == nil && s.values == nil {
		return nil // a Scan without expressions, the usual one, allocates nothing for them
	}
	usedNames, usedValues := map[string]bool{}, map[string]bool{}
	var err *apiError
	if s.filter, err = s.parseFilter(usedNames, usedValues); err != nil {
		return err
	}
	if err := checkNamesUsed(s.names, usedNames); err != nil {
		return err
	}
	return checkValuesUsed(s.values, usedValues)
}

func (s *scanInput) checkSegments() *apiError {
	switch {
	case s.hasSeg && !s.hasTotal:
		return validation("The TotalSegments parameter is required but was not present in the request when Segment parameter is present")
	case s.hasTotal && !s.hasSeg:
		return validation("The Segment parameter is required but was not present in the request when parameter TotalSegments is present")
	case !s.hasTotal:
		s.segment, s.total = 0, 1
		return nil
	}
	return checkSegmentRange(s.segment, s.total)
}

func checkSegmentRange(seg, total int64) *apiError {
	switch {
	case total < 1 || total > 1000000:
		return validation("1 validation error detected: Value '" + strconv.FormatInt(total, 10) + "' at 'totalSegments' failed to satisfy constraint: Member must have value between 1 and 1000000")
	case seg < 0:
		return validation("1 validation error detected: Value '" + strconv.FormatInt(seg, 10) + "' at 'segment' failed to satisfy constraint: Member must have value greater than or equal to 0")
	case seg >= total:
		return validation("The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: " +
			strconv.FormatInt(seg, 10) + " is not less than TotalSegments: " + strconv.FormatInt(total, 10))
	}
	return nil
}

func (t *Transport) scan(body []byte) ([]byte, *apiError) {
	var s scanInput
	if err := parse(body, s.member); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	tb, err := t.table(s.table)
	if err != nil {
		return nil, err
	}
	parts := tb.segment(s.segment, s.total)
	pi, ii, err := tb.scanCursor(parts, s.start, s.segment, s.total)
	if err != nil {
		return nil, err
	}
	got, size, scanned, last := scanPage(parts, pi, ii, s.filter, pageLimit{limit: s.limit, bytes: t.pageBytes()})
	return appendQueryReply(got, size, scanned, last, tb.keys, nil, false), nil
}

// segment returns the partitions of segment seg of total, in scan order.
func (tb *table) segment(seg, total int64) []*partition {
	order := tb.scanOrder()
	lo, _ := slices.BinarySearchFunc(order, seg, func(p *partition, s int64) int { return cmp.Compare(segmentOf(p.h, total), s) })
	hi, _ := slices.BinarySearchFunc(order[lo:], seg+1, func(p *partition, s int64) int { return cmp.Compare(segmentOf(p.h, total), s) })
	return order[lo : lo+hi]
}

// scanCursor returns where, in parts, a scan from start resumes: the
// partition's index and the item's index in it. A start key resumes the
// scan after its position, whether or not its item still exists.
func (tb *table) scanCursor(parts []*partition, start *item, seg, total int64) (int, int, *apiError) {
	if start == nil {
		return 0, 0, nil
	}
	if err := tb.setKeys(start, true); err != nil {
		return 0, 0, validation("The provided starting key is invalid: " + err.msg)
	}
	h := hashID(start.hash.id)
	if segmentOf(h, total) != seg {
		return 0, 0, validation("The provided Exclusive start key does not map to the provided segment")
	}
	pi, found := slices.BinarySearchFunc(parts, start.hash.id, func(p *partition, id string) int { return comparePartition(p, h, id) })
	if !found {
		return pi, 0, nil
	}
	if len(tb.keys) == 1 {
		return pi + 1, 0, nil
	}
	items := parts[pi].items
	ii, found := slices.BinarySearchFunc(items, start.rng, func(e *item, k keyVal) int { return compareKey(e.rng, k) })
	if found {
		ii++
	}
	return pi, ii, nil
}

// scanPage reads the items of a Scan response from item ii of partition
// pi on, until the page is full, with the results of readPage.
func scanPage(parts []*partition, pi, ii int, filter conditions, lim pageLimit) (got []*item, size, scanned int, last *item) {
	for ; pi < len(parts); pi, ii = pi+1, 0 {
		items := parts[pi].items
		for ; ii < len(items); ii++ {
			it := items[ii]
			scanned, size = scanned+1, size+len(it.raw)
			if filter.holds(it) {
				got = append(got, it)
			}
			if lim.full(scanned, size) {
				return got, size, scanned, lim.last(it, scanned, scanHasNext(parts, pi, ii))
			}
		}
	}
	return got, size, scanned, nil
}

// scanHasNext reports whether an item follows item ii of partition pi;
// partitions are never empty.
func scanHasNext(parts []*partition, pi, ii int) bool {
	return ii+1 < len(parts[pi].items) || pi+1 < len(parts)
}

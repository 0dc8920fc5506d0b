package record

import "iter"

// Batches iterates over the batches packed back to back in b, yielding each
// header with the batch's bytes (a subslice of b, not a copy). It stops
// silently at the first batch whose header is unreadable or that extends
// past the end of b, which is how a fetch response or a torn log tail ends.
// It does not check CRCs; use Validate on each batch for that.
func Batches(b []byte) iter.Seq2[Header, []byte] {
	return func(yield func(Header, []byte) bool) {
		for len(b) >= HeaderSize {
			h, err := ParseHeader(b)
			if err != nil || h.Size() > len(b) {
				return
			}
			if !yield(h, b[:h.Size()]) {
				return
			}
			b = b[h.Size():]
		}
	}
}

// Complete returns the length of the longest prefix of b made only of whole
// batches with readable headers, the part Batches iterates over.
func Complete(b []byte) int {
	n := 0
	for h := range Batches(b) {
		n += h.Size()
	}
	return n
}

package exporter

// Status is the Burrow-style health of a consumer group partition. Larger is
// worse, in Burrow's order, so a group's status is the maximum over its
// partitions.
type Status int

// The statuses, as Burrow names them.
const (
	StatusOK Status = iota
	StatusWarn
	StatusErr
	StatusStop
	StatusStall
	StatusRewind
)

// statuses lists every Status in order; the one-hot metrics emit one series
// for each.
var statuses = [...]Status{StatusOK, StatusWarn, StatusErr, StatusStop, StatusStall, StatusRewind}

var statusNames = [...]string{"OK", "WARN", "ERR", "STOP", "STALL", "REWIND"}

// String returns Burrow's name of the status.
func (s Status) String() string { return statusNames[s] }

// observation is what one collection saw of a group partition. A commit is
// seen as a change of the committed offset between two observations: the
// Kafka protocol does not return commit times, so re-committing the same
// offset cannot be told apart from not committing.
type observation struct {
	unixMs    int64
	committed int64
	end       int64
	lag       int64
}

// window keeps the last observations of one group partition, oldest first.
type window struct {
	obs  []observation
	seen uint64 // the collection that last appended; windows not seen are dropped
}

func (w *window) add(o observation, size int) {
	if len(w.obs) == size {
		copy(w.obs, w.obs[1:])
		w.obs = w.obs[:size-1]
	}
	w.obs = append(w.obs, o)
}

// evaluate applies Burrow's rules (https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules)
// to a window of observations, newest last, with these differences:
//
//   - A partition whose newest lag is 0 is OK, whatever the commits did. An
//     idle topic whose group is caught up therefore never becomes STOP (Burrow
//     #38, #123, #128), and neither does a consumer that has nothing to commit.
//   - REWIND (the committed offset went backwards between two observations) is
//     reported as soon as it is in the window; every other non-OK status needs
//     a full window, so one slow interval does not alarm.
//   - With a full window and lag in every observation: a committed offset
//     that did not move over the whole window is STALL when the group has
//     members (a consumer is there but does not progress) and STOP when it has
//     none (nobody consumes). Lag that grew at every step while the offset
//     moved is ERR (the consumer falls further behind each interval); lag that
//     never decreased and ended higher is WARN.
func evaluate(obs []observation, size int, hasMembers bool) Status {
	n := len(obs)
	if n == 0 || obs[n-1].lag == 0 {
		return StatusOK
	}
	for i := 1; i < n; i++ {
		if obs[i].committed < obs[i-1].committed {
			return StatusRewind
		}
	}
	if n < size {
		return StatusOK
	}
	for _, o := range obs {
		if o.lag == 0 {
			return StatusOK
		}
	}
	first, last := obs[0], obs[n-1]
	if first.committed == last.committed {
		if hasMembers {
			return StatusStall
		}
		return StatusStop
	}
	growing, nonDecreasing := true, true
	for i := 1; i < n; i++ {
		if obs[i].lag <= obs[i-1].lag {
			growing = false
		}
		if obs[i].lag < obs[i-1].lag {
			nonDecreasing = false
		}
	}
	switch {
	case growing:
		return StatusErr
	case nonDecreasing && last.lag > first.lag:
		return StatusWarn
	}
	return StatusOK
}

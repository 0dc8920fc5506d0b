package txn

import "fmt"

// State is a transaction's state, with the byte values Kafka writes in
// TransactionLogValue.TransactionStatus.
type State int8

// The states of Kafka's TransactionState, with their wire values.
const (
	Empty             State = 0
	Ongoing           State = 1
	PrepareCommit     State = 2
	PrepareAbort      State = 3
	CompleteCommit    State = 4
	CompleteAbort     State = 5
	Dead              State = 6
	PrepareEpochFence State = 7
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

// String is the state's name as DescribeTransactions and ListTransactions
// report it ("Ongoing", "PrepareCommit", ...).
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int8(s))
	}
	return stateNames[s]
}

// Valid reports whether s is one of Kafka's states.
func (s State) Valid() bool { return s >= 0 && int(s) < len(stateNames) }

// ParseState returns the state called name, as ListTransactions filters name
// them.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

// validPrevious lists, per state, the states a transaction may move to it
// from: Kafka's TransactionState.validPreviousStates.
var validPrevious = map[State][]State{
	Empty:             {Empty, CompleteCommit, CompleteAbort},
	Ongoing:           {Ongoing, Empty, CompleteCommit, CompleteAbort},
	PrepareCommit:     {Ongoing},
	PrepareAbort:      {Ongoing, PrepareEpochFence},
	CompleteCommit:    {PrepareCommit},
	CompleteAbort:     {PrepareAbort},
	Dead:              {Empty, CompleteCommit, CompleteAbort},
	PrepareEpochFence: {Ongoing},
}

// CanTransition reports whether Kafka allows a transaction in state from to
// move to state to.
func CanTransition(from, to State) bool {
	for _, s := range validPrevious[to] {
		if s == from {
			return true
		}
	}
	return false
}

// complete reports whether no transaction is open or finishing in s: a new
// one may start, and the transactional id may expire.
func (s State) complete() bool { return s == Empty || s == CompleteCommit || s == CompleteAbort }

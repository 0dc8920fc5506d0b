package record

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control record types, the key's type field of Kafka's
// EndTransactionMarker.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// Marker is a transaction marker: the one record of a control batch that
// ends a producer's transaction on a partition.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
}

// BuildMarker returns a control batch (attributes transactional|control)
// holding m's end transaction marker at baseOffset, with timestamp ts and no
// sequence, as Kafka's coordinator has partition leaders write it. The key
// is version 0 and the type (0 abort, 1 commit); the value is version 0 and
// the coordinator epoch.
func BuildMarker(baseOffset, ts int64, m Marker) []byte {
	typ := ControlAbort
	if m.Commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	val := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(m.CoordinatorEpoch))
	h := Header{
		BaseOffset:           baseOffset,
		PartitionLeaderEpoch: -1,
		Attributes:           attrTransactional | attrControl,
		BaseTimestamp:        ts,
		MaxTimestamp:         ts,
		ProducerID:           m.ProducerID,
		ProducerEpoch:        m.ProducerEpoch,
		BaseSequence:         -1,
	}
	return Encode(nil, h, []kmsg.Record{{Key: key, Value: val}})
}

// ParseMarker decodes the end transaction marker of the control batch at
// the start of b (whose CRC the caller has checked). It returns an error
// wrapping kerr.CorruptMessage for a batch that is not a control batch, or
// whose first record is not a version 0 abort or commit marker. Control
// records of other types (Kafka reserves them) are refused too.
func ParseMarker(b []byte) (Marker, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Marker{}, err
	}
	if !h.IsControl() {
		return Marker{}, corrupt("batch at offset %d is not a control batch", h.BaseOffset)
	}
	if h.RecordCount != 1 {
		return Marker{}, corrupt("control batch with %d records", h.RecordCount)
	}
	recs, err := Records(b[:min(len(b), h.Size())])
	if err != nil {
		return Marker{}, err
	}
	k, v := recs[0].Key, recs[0].Value
	if len(k) < 4 || binary.BigEndian.Uint16(k) != 0 {
		return Marker{}, corrupt("control record key %x", k)
	}
	typ := int16(binary.BigEndian.Uint16(k[2:]))
	if typ != ControlAbort && typ != ControlCommit {
		return Marker{}, fmt.Errorf("record: control record type %d: %w", typ, kerr.CorruptMessage)
	}
	if len(v) < 6 || binary.BigEndian.Uint16(v) != 0 {
		return Marker{}, corrupt("end transaction marker value %x", v)
	}
	return Marker{
		ProducerID:       h.ProducerID,
		ProducerEpoch:    h.ProducerEpoch,
		Commit:           typ == ControlCommit,
		CoordinatorEpoch: int32(binary.BigEndian.Uint32(v[2:])),
	}, nil
}

// Transactional reports whether the batch at the start of b has the
// transactional attribute, reading only that field: the produce path asks
// it of every partition, so it does no parsing or checking.
func Transactional(b []byte) bool {
	return len(b) >= HeaderSize && binary.BigEndian.Uint16(b[offAttributes:])&attrTransactional != 0
}

// BuildTransactional is Build for a transactional batch of producer pid at
// epoch without sequence numbers, as a coordinator writes the records of a
// transaction it keeps for the producer (Kafka's transactional offset
// commits in __consumer_offsets).
func BuildTransactional(ts int64, pid int64, epoch int16, recs []kmsg.Record) []byte {
	b := Build(0, ts, recs)
	h, _ := ParseHeader(b)
	h.Attributes |= attrTransactional
	h.ProducerID, h.ProducerEpoch = pid, epoch
	return Encode(nil, h, recs)
}

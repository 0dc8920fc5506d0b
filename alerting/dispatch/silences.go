package dispatch

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/prometheus/alertmanager/silence"
	pb "github.com/prometheus/alertmanager/silence/silencepb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Matcher selects alerts by one label, like a silence matcher of Alertmanager's API v2.
type Matcher struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	IsRegex bool   `json:"isRegex,omitempty"`
	IsEqual *bool  `json:"isEqual,omitempty"` // default true
}

// Silence is a silence as the API shows and takes it.
type Silence struct {
	ID        string    `json:"id,omitempty"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	State     string    `json:"state,omitempty"` // active, pending, expired
}

// ErrBadSilence wraps every reason a silence is refused.
var ErrBadSilence = errors.New("bad silence")

// SetSilence creates a silence (ID empty) or updates one, returning its ID.
func (d *Dispatcher) SetSilence(ctx context.Context, s Silence) (string, error) {
	if len(s.Matchers) == 0 {
		return "", fmt.Errorf("%w: no matchers", ErrBadSilence)
	}
	if s.EndsAt.IsZero() {
		return "", fmt.Errorf("%w: endsAt is required", ErrBadSilence)
	}
	if s.CreatedBy == "" {
		return "", fmt.Errorf("%w: createdBy is required", ErrBadSilence)
	}
	sil := &pb.Silence{Id: s.ID, CreatedBy: s.CreatedBy, Comment: s.Comment, EndsAt: timestamppb.New(s.EndsAt)}
	if !s.StartsAt.IsZero() {
		sil.StartsAt = timestamppb.New(s.StartsAt)
	}
	set := &pb.MatcherSet{}
	for _, m := range s.Matchers {
		if m.Name == "" {
			return "", fmt.Errorf("%w: matcher without name", ErrBadSilence)
		}
		eq := m.IsEqual == nil || *m.IsEqual
		t := pb.Matcher_EQUAL
		switch {
		case m.IsRegex && eq:
			t = pb.Matcher_REGEXP
		case m.IsRegex:
			t = pb.Matcher_NOT_REGEXP
		case !eq:
			t = pb.Matcher_NOT_EQUAL
		}
		if m.IsRegex {
			if _, err := regexp.Compile(m.Value); err != nil {
				return "", fmt.Errorf("%w: matcher %s: %v", ErrBadSilence, m.Name, err)
			}
		}
		set.Matchers = append(set.Matchers, &pb.Matcher{Type: t, Name: m.Name, Pattern: m.Value})
	}
	sil.MatcherSets = []*pb.MatcherSet{set}
	if err := d.silences.Set(ctx, sil); err != nil {
		if errors.Is(err, silence.ErrNotFound) {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", ErrBadSilence, err)
	}
	return sil.Id, nil
}

// ExpireSilence ends a silence now.
func (d *Dispatcher) ExpireSilence(ctx context.Context, id string) error {
	return d.silences.Expire(ctx, id)
}

// ErrSilenceNotFound is returned for an unknown silence ID.
var ErrSilenceNotFound = silence.ErrNotFound

// Silences lists every silence still kept, newest first.
func (d *Dispatcher) Silences(ctx context.Context) ([]Silence, error) {
	sils, _, err := d.silences.Query(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]Silence, 0, len(sils))
	for _, s := range sils {
		o := Silence{ID: s.Id, StartsAt: s.StartsAt.AsTime(), EndsAt: s.EndsAt.AsTime(), CreatedBy: s.CreatedBy, Comment: s.Comment}
		switch {
		case now.Before(o.StartsAt):
			o.State = "pending"
		case now.Before(o.EndsAt):
			o.State = "active"
		default:
			o.State = "expired"
		}
		sets := s.MatcherSets
		if len(sets) == 0 && len(s.Matchers) > 0 {
			sets = []*pb.MatcherSet{{Matchers: s.Matchers}}
		}
		for _, set := range sets {
			for _, m := range set.Matchers {
				f := false
				mm := Matcher{Name: m.Name, Value: m.Pattern}
				switch m.Type {
				case pb.Matcher_REGEXP:
					mm.IsRegex = true
				case pb.Matcher_NOT_EQUAL:
					mm.IsEqual = &f
				case pb.Matcher_NOT_REGEXP:
					mm.IsRegex, mm.IsEqual = true, &f
				}
				o.Matchers = append(o.Matchers, mm)
			}
		}
		out = append(out, o)
	}
	return out, nil
}

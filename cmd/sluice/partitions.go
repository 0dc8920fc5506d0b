package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/clientsec"
)

// runPartitions is `sluice partitions reassign|status|elect-leaders`: partition
// reassignment (KIP-455) and leader elections (KIP-460) through
// AlterPartitionReassignments, ListPartitionReassignments and ElectLeaders, like
// Kafka's kafka-reassign-partitions.sh and kafka-leader-election.sh.
func runPartitions(ctx context.Context, args []string) error {
	return partitionsCommand(ctx, args, os.Stdout)
}

const partitionsUsage = `usage:
  sluice partitions reassign [--bootstrap host:port] [security flags] --plan FILE [--throttle BYTES/S] [--wait]
  sluice partitions reassign [--bootstrap host:port] [security flags] --topic T --partition P --replicas 1,2,3 [--throttle BYTES/S] [--wait]
  sluice partitions reassign [--bootstrap host:port] [security flags] --cancel (--plan FILE | --topic T --partition P)
  sluice partitions status   [--bootstrap host:port] [security flags] [--topic T]
  sluice partitions elect-leaders [--bootstrap host:port] [security flags] [--type preferred|unclean] [--topic T [--partition P]]

FILE is kafka-reassign-partitions.sh's JSON:
  {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[1,2,3]}]}
--throttle sets follower.replication.throttled.rate and
leader.replication.throttled.rate on every broker, which limit the copying of
reassigned replicas; --wait waits until the reassignments are done and then
removes the throttle. status lists reassignments in progress. elect-leaders
elects for every partition unless --topic is given; unclean may lose
acknowledged records and is only done when asked.
`

// reassignmentPlan is kafka-reassign-partitions.sh's reassignment JSON.
type reassignmentPlan struct {
	Version    int `json:"version"`
	Partitions []struct {
		Topic     string  `json:"topic"`
		Partition int32   `json:"partition"`
		Replicas  []int32 `json:"replicas"`
	} `json:"partitions"`
}

// maxPlanBytes bounds a plan file read into memory.
const maxPlanBytes = 64 << 20

func partitionsCommand(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(out, partitionsUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || (args[0] != "reassign" && args[0] != "status" && args[0] != "elect-leaders") {
		fmt.Fprint(os.Stderr, partitionsUsage)
		return errors.New("partitions: want reassign, status or elect-leaders")
	}
	sub := args[0]
	fs := flag.NewFlagSet("partitions "+sub, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), partitionsUsage+"\nflags:\n"); fs.PrintDefaults() }
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	plan := fs.String("plan", "", "reassignment JSON `file` (reassign)")
	topic := fs.String("topic", "", "`topic` of the partition to reassign, list or elect for")
	partition := fs.Int("partition", -1, "`partition` number (reassign, elect-leaders)")
	replicas := fs.String("replicas", "", "comma-separated broker `ids`, the first the preferred leader (reassign)")
	cancel := fs.Bool("cancel", false, "cancel the reassignments named instead of starting them (reassign)")
	throttle := fs.Int64("throttle", 0, "replication throttle in `bytes/s` while reassigning (reassign; 0: none)")
	wait := fs.Bool("wait", false, "wait until the reassignments are done (reassign)")
	timeout := fs.Duration("timeout", 30*time.Minute, "how long --wait waits")
	typ := fs.String("type", "preferred", "election `type`: preferred or unclean (elect-leaders)")
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("partitions %s: unexpected argument %q", sub, fs.Arg(0))
	}
	adm, closeAdm, err := newAdminClient(*bootstrap, &sec)
	if err != nil {
		return err
	}
	defer closeAdm()
	switch sub {
	case "status":
		return reassignmentStatus(ctx, adm, *topic, out)
	case "elect-leaders":
		return electLeaders(ctx, adm, *typ, *topic, int32(*partition), out)
	}

	req := kadm.AlterPartitionAssignmentsReq{}
	switch {
	case *plan != "" && (*topic != "" || *replicas != ""):
		return errors.New("partitions reassign: --plan or --topic/--partition/--replicas, not both")
	case *plan != "":
		p, err := readPlan(*plan)
		if err != nil {
			return err
		}
		for _, pp := range p.Partitions {
			if *cancel {
				req.CancelAssign(pp.Topic, pp.Partition)
			} else {
				req.Assign(pp.Topic, pp.Partition, pp.Replicas)
			}
		}
	case *topic != "" && *partition >= 0:
		if *cancel {
			req.CancelAssign(*topic, int32(*partition))
			break
		}
		ids, err := parseBrokerIDs(*replicas)
		if err != nil {
			return fmt.Errorf("--replicas: %w", err)
		}
		req.Assign(*topic, int32(*partition), ids)
	default:
		return errors.New("partitions reassign: --plan, or --topic and --partition (with --replicas or --cancel), are required")
	}
	if *throttle < 0 {
		return errors.New("--throttle: must not be negative")
	}
	if *throttle > 0 && !*cancel {
		if err := setReplicationThrottle(ctx, adm, strconv.FormatInt(*throttle, 10)); err != nil {
			return err
		}
		fmt.Fprintf(out, "replication throttled to %d bytes/s on every broker\n", *throttle)
	}
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		return fmt.Errorf("partitions reassign: %w", err)
	}
	var failed []string
	res.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s-%d: %v %s", r.Topic, r.Partition, r.Err, r.ErrMessage))
			return
		}
		verb := "reassigning"
		if *cancel {
			verb = "cancelled"
		}
		fmt.Fprintf(out, "%s %s-%d\n", verb, r.Topic, r.Partition)
	})
	sort.Strings(failed)
	if len(failed) > 0 {
		return fmt.Errorf("partitions reassign: %s", strings.Join(failed, "; "))
	}
	if !*wait || *cancel {
		return nil
	}
	wctx, stop := context.WithTimeout(ctx, *timeout)
	defer stop()
	if err := waitReassigned(wctx, adm, req); err != nil {
		return err
	}
	fmt.Fprintln(out, "reassignments complete")
	if *throttle > 0 {
		if err := setReplicationThrottle(ctx, adm, ""); err != nil {
			return err
		}
		fmt.Fprintln(out, "replication throttle removed")
	}
	return nil
}

// adminClient is a kadm client and the kgo client under it, for requests kadm
// does not send as the CLI needs them.
type adminClient struct {
	*kadm.Client
	kcl *kgo.Client
}

// newAdminClient connects to the seed brokers with the CLI's security flags.
func newAdminClient(bootstrap string, sec *clientsec.Config) (*adminClient, func(), error) {
	secOpts, err := sec.Opts()
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...)}, secOpts...)...)
	if err != nil {
		return nil, nil, err
	}
	return &adminClient{Client: kadm.NewClient(cl), kcl: cl}, cl.Close, nil
}

// listReassignments is ListPartitionReassignments for the partitions of set,
// or with set nil for every partition (kadm sends no request for an empty set).
func (a *adminClient) listReassignments(ctx context.Context, set kadm.TopicsSet) (kadm.ListPartitionReassignmentsResponses, error) {
	if set != nil {
		return a.ListPartitionReassignments(ctx, set)
	}
	req := kmsg.NewPtrListPartitionReassignmentsRequest()
	resp, err := req.RequestWith(ctx, a.kcl)
	if err != nil {
		return nil, err
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := kadm.ListPartitionReassignmentsResponses{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if out[t.Topic] == nil {
				out[t.Topic] = map[int32]kadm.ListPartitionReassignmentsResponse{}
			}
			out[t.Topic][p.Partition] = kadm.ListPartitionReassignmentsResponse{Topic: t.Topic, Partition: p.Partition,
				Replicas: p.Replicas, AddingReplicas: p.AddingReplicas, RemovingReplicas: p.RemovingReplicas}
		}
	}
	return out, nil
}

func readPlan(path string) (*reassignmentPlan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--plan: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxPlanBytes))
	dec.DisallowUnknownFields()
	var p reassignmentPlan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("--plan %s: %w", path, err)
	}
	if p.Version != 1 {
		return nil, fmt.Errorf("--plan %s: version: %d, want 1", path, p.Version)
	}
	if len(p.Partitions) == 0 {
		return nil, fmt.Errorf("--plan %s: partitions: empty", path)
	}
	for i, pp := range p.Partitions {
		if pp.Topic == "" || pp.Partition < 0 {
			return nil, fmt.Errorf("--plan %s: partitions[%d]: topic and a partition number >= 0 are required", path, i)
		}
	}
	return &p, nil
}

func parseBrokerIDs(s string) ([]int32, error) {
	if s == "" {
		return nil, errors.New("no broker ids")
	}
	var ids []int32
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 32)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a broker id", f)
		}
		ids = append(ids, int32(n))
	}
	return ids, nil
}

// setReplicationThrottle sets (or with rate empty, removes) the cluster-wide
// leader and follower replication throttle rates.
func setReplicationThrottle(ctx context.Context, adm *adminClient, rate string) error {
	op, val := kadm.SetConfig, kadm.StringPtr(rate)
	if rate == "" {
		op, val = kadm.DeleteConfig, nil
	}
	res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{
		{Op: op, Name: "leader.replication.throttled.rate", Value: val},
		{Op: op, Name: "follower.replication.throttled.rate", Value: val},
	})
	if err == nil {
		for _, r := range res {
			if r.Err != nil {
				err = fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("replication throttle: %w", err)
	}
	return nil
}

// waitReassigned polls ListPartitionReassignments until none of req's partitions
// is being reassigned.
func waitReassigned(ctx context.Context, adm *adminClient, req kadm.AlterPartitionAssignmentsReq) error {
	set := kadm.TopicsSet{}
	for t, ps := range req {
		for p := range ps {
			set.Add(t, p)
		}
	}
	for {
		res, err := adm.listReassignments(ctx, set)
		if err == nil && len(res) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for reassignments: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func reassignmentStatus(ctx context.Context, adm *adminClient, topic string, out io.Writer) error {
	var set kadm.TopicsSet
	if topic != "" {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return fmt.Errorf("partitions status: %w", err)
		}
		set = kadm.TopicsSet{}
		for _, p := range md.Topics[topic].Partitions {
			set.Add(topic, p.Partition)
		}
		if len(set) == 0 {
			return fmt.Errorf("partitions status: topic %q does not exist", topic)
		}
	}
	res, err := adm.listReassignments(ctx, set)
	if err != nil {
		return fmt.Errorf("partitions status: %w", err)
	}
	var rows []kadm.ListPartitionReassignmentsResponse
	res.Each(func(r kadm.ListPartitionReassignmentsResponse) { rows = append(rows, r) })
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Topic != rows[j].Topic {
			return rows[i].Topic < rows[j].Topic
		}
		return rows[i].Partition < rows[j].Partition
	})
	if len(rows) == 0 {
		fmt.Fprintln(out, "no reassignments in progress")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tREPLICAS\tADDING\tREMOVING")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", r.Topic, r.Partition, idList(r.Replicas), idList(r.AddingReplicas), idList(r.RemovingReplicas))
	}
	return tw.Flush()
}

func idList(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

func electLeaders(ctx context.Context, adm *adminClient, typ, topic string, partition int32, out io.Writer) error {
	how := kadm.ElectPreferredReplica
	switch typ {
	case "preferred":
	case "unclean":
		how = kadm.ElectLiveReplica
	default:
		return fmt.Errorf("--type: %q is not preferred or unclean", typ)
	}
	var set kadm.TopicsSet
	if topic != "" {
		set = kadm.TopicsSet{}
		if partition >= 0 {
			set.Add(topic, partition)
		} else {
			md, err := adm.Metadata(ctx, topic)
			if err != nil {
				return fmt.Errorf("partitions elect-leaders: %w", err)
			}
			for _, p := range md.Topics[topic].Partitions {
				set.Add(topic, p.Partition)
			}
			if len(set) == 0 {
				return fmt.Errorf("partitions elect-leaders: topic %q does not exist", topic)
			}
		}
	}
	res, err := adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return fmt.Errorf("partitions elect-leaders: %w", err)
	}
	var rows []kadm.ElectLeadersResult
	for _, ps := range res {
		for _, r := range ps {
			rows = append(rows, r)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Topic != rows[j].Topic {
			return rows[i].Topic < rows[j].Topic
		}
		return rows[i].Partition < rows[j].Partition
	})
	if len(rows) == 0 {
		fmt.Fprintln(out, "no election needed")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tRESULT")
	for _, r := range rows {
		result := "elected"
		if r.Err != nil {
			result = r.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Topic, r.Partition, result)
	}
	return tw.Flush()
}

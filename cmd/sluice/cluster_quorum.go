package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/adminapi"
	"github.com/sluicemq/sluice/broker/clientsec"
)

// The quorum's verbs of `sluice cluster` (DescribeQuorum, AddRaftVoter, RemoveRaftVoter over the
// Kafka protocol, like kafka-metadata-quorum.sh); each parses its own flags with args[0] the verb.
func init() {
	for verb, f := range map[string]func(ctx context.Context, args []string, stdout io.Writer) error{
		"describe-quorum":   runDescribeQuorum,
		"add-controller":    runAddController,
		"remove-controller": runRemoveController,
	} {
		clusterSubcommands[verb] = func(ctx context.Context, args []string, out io.Writer) error {
			return f(ctx, append([]string{verb}, args...), out)
		}
	}
}

// clusterClient parses the common flags of a cluster verb (args[0] is the verb) and
// returns a client of the cluster and the remaining arguments.
func clusterClient(args []string, extra func(fs *flag.FlagSet)) (*kgo.Client, []string, error) {
	fs := flag.NewFlagSet("cluster "+args[0], flag.ContinueOnError)
	bootstrap := fs.String("bootstrap", "127.0.0.1:9092", "brokers: host:port[,host:port]")
	var sec clientsec.Config
	sec.RegisterFlags(fs)
	if extra != nil {
		extra(fs)
	}
	// Flags may come before or after the NODE_ID.
	var rest []string
	for remaining := args[1:]; ; {
		if err := fs.Parse(remaining); err != nil {
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		remaining = fs.Args()[1:]
	}
	secOpts, err := sec.Opts()
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...)}, secOpts...)...)
	if err != nil {
		return nil, nil, err
	}
	return cl, rest, nil
}

// nodeIDArg is the one NODE_ID argument of add-controller and remove-controller.
func nodeIDArg(verb string, rest []string) (int32, error) {
	if len(rest) != 1 {
		return -1, fmt.Errorf("cluster %s: exactly one node id expected", verb)
	}
	id, err := strconv.ParseInt(rest[0], 10, 32)
	if err != nil || id < 0 {
		return -1, fmt.Errorf("cluster %s: %q is not a node id", verb, rest[0])
	}
	return int32(id), nil
}

// runDescribeQuorum prints DescribeQuorum like kafka-metadata-quorum.sh describe
// --status and --replication together.
func runDescribeQuorum(ctx context.Context, args []string, stdout io.Writer) error {
	cl, rest, err := clusterClient(args, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	if len(rest) > 0 {
		return fmt.Errorf("cluster describe-quorum: unexpected arguments %q", rest)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	q, err := adminapi.DescribeQuorum(ctx, cl)
	if err != nil {
		return err
	}
	ids := func(ms []adminapi.QuorumMember) string {
		var s []string
		for _, m := range ms {
			s = append(s, strconv.Itoa(int(m.NodeID)))
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	maxLag := int64(0)
	for _, m := range append(q.Voters, q.Observers...) {
		if m.LogEndOffset >= 0 {
			maxLag = max(maxLag, q.HighWatermark-m.LogEndOffset)
		}
	}
	fmt.Fprintf(stdout, "LeaderId:          %d\nLeaderEpoch:       %d\nHighWatermark:     %d\nMaxFollowerLag:    %d\nCurrentVoters:     %s\nCurrentObservers:  %s\n\n",
		q.LeaderID, q.LeaderEpoch, q.HighWatermark, maxLag, ids(q.Voters), ids(q.Observers))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus")
	row := func(m adminapi.QuorumMember, status string) {
		if m.NodeID == q.LeaderID {
			status = "Leader"
		}
		lag := "-"
		if m.LogEndOffset >= 0 {
			lag = strconv.FormatInt(q.HighWatermark-m.LogEndOffset, 10)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%s\n", m.NodeID, m.LogEndOffset, lag, m.LastFetchTimestamp, m.LastCaughtUpTimestamp, status)
	}
	for _, m := range q.Voters {
		row(m, "Follower")
	}
	for _, m := range q.Observers {
		row(m, "Observer")
	}
	return tw.Flush()
}

func message(m *string) string {
	if m == nil || *m == "" {
		return ""
	}
	return ": " + *m
}

// runAddController is `sluice cluster add-controller NODE_ID`: AddRaftVoter for a node
// that already follows the metadata log as an observer.
func runAddController(ctx context.Context, args []string, stdout io.Writer) error {
	cl, rest, err := clusterClient(args, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	id, err := nodeIDArg(args[0], rest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.VoterID, req.TimeoutMillis, req.AckWhenCommitted = id, 30000, true
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("add controller %d: %w", id, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("add controller %d: %w%s", id, err, message(resp.ErrorMessage))
	}
	fmt.Fprintf(stdout, "node %d is a controller (a voter of the metadata quorum)\n", id)
	return nil
}

// runRemoveController is `sluice cluster remove-controller NODE_ID`: RemoveRaftVoter.
func runRemoveController(ctx context.Context, args []string, stdout io.Writer) error {
	cl, rest, err := clusterClient(args, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	id, err := nodeIDArg(args[0], rest)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID = id
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("remove controller %d: %w", id, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("remove controller %d: %w%s", id, err, message(resp.ErrorMessage))
	}
	fmt.Fprintf(stdout, "node %d is no longer a controller; it follows the metadata log as an observer until it stops\n", id)
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluicemq/sluice/broker/clientsec"
	"github.com/sluicemq/sluice/broker/metadata"
)

// runCluster is `sluice cluster SUBCOMMAND`: the cluster's membership, its brokers (drain,
// unregister) and its metadata quorum (describe-quorum, add-controller, remove-controller in
// cluster_quorum.go).
func runCluster(ctx context.Context, args []string) error {
	return clusterCommand(ctx, args, os.Stdout)
}

// clusterSubcommands are the subcommands of `sluice cluster`, each in a function of its own.
var clusterSubcommands = map[string]func(ctx context.Context, args []string, out io.Writer) error{
	"drain":      clusterDrain,
	"unregister": clusterUnregister,
}

const clusterUsage = `usage:
  sluice cluster drain      [--bootstrap host:port] [security flags] [--timeout D] [--undo] BROKER
  sluice cluster unregister [--bootstrap host:port] [security flags] BROKER
  sluice cluster describe-quorum   [--bootstrap host:port] [security flags]
  sluice cluster add-controller    [--bootstrap host:port] [security flags] NODE_ID
  sluice cluster remove-controller [--bootstrap host:port] [security flags] NODE_ID

drain cordons BROKER (cordoned.log.dirs=*, KIP-1066: no new replicas go to it,
also not from the automatic balancer), moves every replica and so every
leadership off it with AlterPartitionReassignments (rack-aware, to the brokers
with the fewest replicas), waits until the metadata shows it holds nothing,
and reports that it is safe to stop. --undo removes the cordon.
unregister removes a drained, stopped broker from the metadata
(UnregisterBroker); afterwards nothing in the cluster refers to it.
describe-quorum shows the Raft voters and observers; add-controller makes a
node that follows the metadata log with the controller role a voter
(AddRaftVoter); remove-controller makes a voter an observer (RemoveRaftVoter).
`

func clusterCommand(ctx context.Context, args []string, out io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(out, clusterUsage)
		return flag.ErrHelp
	}
	if len(args) == 0 || clusterSubcommands[args[0]] == nil {
		fmt.Fprint(os.Stderr, clusterUsage)
		return errors.New("cluster: unknown or missing subcommand")
	}
	return clusterSubcommands[args[0]](ctx, args[1:], out)
}

// clusterFlags parses the flags shared by the cluster subcommands and the one
// BROKER argument.
func clusterFlags(name string, args []string, extra func(fs *flag.FlagSet)) (bootstrap string, sec *clientsec.Config, broker int32, err error) {
	fs := flag.NewFlagSet("cluster "+name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), clusterUsage+"\nflags:\n"); fs.PrintDefaults() }
	bs := fs.String("bootstrap", "127.0.0.1:9092", "comma-separated `host:port` list of seed brokers")
	sec = &clientsec.Config{}
	sec.RegisterFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return "", nil, 0, err
	}
	if fs.NArg() != 1 {
		return "", nil, 0, fmt.Errorf("cluster %s: want one BROKER id", name)
	}
	n, err := strconv.ParseInt(fs.Arg(0), 10, 32)
	if err != nil || n < 0 {
		return "", nil, 0, fmt.Errorf("cluster %s: %q is not a broker id", name, fs.Arg(0))
	}
	return *bs, sec, int32(n), nil
}

// cordonConfig is the per-broker config that keeps new replicas off a broker
// (KIP-1066); Sluice has one log dir per broker, so "*" cordons the broker.
const cordonConfig = "cordoned.log.dirs"

func clusterDrain(ctx context.Context, args []string, out io.Writer) error {
	var timeout time.Duration
	var undo bool
	bootstrap, sec, id, err := clusterFlags("drain", args, func(fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the replicas to move")
		fs.BoolVar(&undo, "undo", false, "remove the cordon instead: the broker takes replicas again")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	adm, closeAdm, err := newAdminClient(bootstrap, sec)
	if err != nil {
		return err
	}
	defer closeAdm()
	op, val := kadm.SetConfig, kadm.StringPtr("*")
	if undo {
		op, val = kadm.DeleteConfig, nil
	}
	res, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: cordonConfig, Value: val}}, id)
	if err == nil {
		for _, r := range res {
			if r.Err != nil {
				err = fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("cluster drain: cordoning broker %d: %w", id, err)
	}
	if undo {
		fmt.Fprintf(out, "broker %d takes replicas again\n", id)
		return nil
	}
	fmt.Fprintf(out, "broker %d cordoned\n", id)

	wctx, stop := context.WithTimeout(ctx, timeout)
	defer stop()
	// A partition asked to move is not asked again for a while: the Metadata answer
	// of a broker that has not applied the move yet would show it unmoved.
	asked := map[string]time.Time{}
	for {
		moves, hosted, err := drainMoves(wctx, adm, id)
		if err != nil {
			return err
		}
		if hosted == 0 {
			fmt.Fprintf(out, "broker %d holds no replicas and leads no partition: safe to stop\n", id)
			return nil
		}
		req := kadm.AlterPartitionAssignmentsReq{}
		for _, m := range moves {
			key := fmt.Sprintf("%s-%d", m.Topic, m.Partition)
			if time.Since(asked[key]) > 15*time.Second {
				asked[key] = time.Now()
				req.Assign(m.Topic, m.Partition, m.To)
			}
		}
		if len(req) > 0 {
			res, err := adm.AlterPartitionAssignments(wctx, req)
			if err != nil {
				return fmt.Errorf("cluster drain: %w", err)
			}
			started := 0
			res.Each(func(r kadm.AlterPartitionAssignmentsResponse) {
				if r.Err != nil {
					fmt.Fprintf(out, "moving %s-%d failed (will retry): %v %s\n", r.Topic, r.Partition, r.Err, r.ErrMessage)
					delete(asked, fmt.Sprintf("%s-%d", r.Topic, r.Partition))
					return
				}
				started++
			})
			fmt.Fprintf(out, "moving %d partitions off broker %d (%d replicas left on it)\n", started, id, hosted)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("cluster drain: broker %d still holds %d replicas: %w", id, hosted, wctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// drainMoves reads the cluster and returns the moves that take replicas off
// broker id (none for partitions being reassigned already) and how many
// replicas it still holds.
func drainMoves(ctx context.Context, adm *adminClient, id int32) ([]metadata.Move, int, error) {
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster drain: %w", err)
	}
	inFlight, err := adm.listReassignments(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("cluster drain: %w", err)
	}
	var brokers []metadata.BalanceBroker
	for _, b := range md.Brokers {
		bb := metadata.BalanceBroker{ID: b.NodeID, Live: true, Cordoned: b.NodeID == id}
		if b.Rack != nil {
			bb.Rack = *b.Rack
		}
		brokers = append(brokers, bb)
	}
	var parts []metadata.BalancePartition
	hosted := 0
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			bp := metadata.BalancePartition{Topic: t.Topic, Partition: p.Partition, Replicas: p.Replicas}
			if r, ok := inFlight[t.Topic][p.Partition]; ok {
				bp.Replicas, bp.Reassigning = r.Replicas, true
			}
			for _, r := range bp.Replicas {
				if r == id {
					hosted++
				}
			}
			parts = append(parts, bp)
		}
	}
	var moves []metadata.Move
	for _, m := range metadata.PlanBalance(brokers, parts, metadata.BalanceConfig{MaxMoves: len(parts) + 1}) {
		if m.Cause == metadata.CauseDrain {
			moves = append(moves, m)
		}
	}
	return moves, hosted, nil
}

func clusterUnregister(ctx context.Context, args []string, out io.Writer) error {
	bootstrap, sec, id, err := clusterFlags("unregister", args, nil)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	adm, closeAdm, err := newAdminClient(bootstrap, sec)
	if err != nil {
		return err
	}
	defer closeAdm()
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = id
	resp, err := req.RequestWith(ctx, adm.kcl)
	if err != nil {
		return fmt.Errorf("cluster unregister: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		msg := ""
		if resp.ErrorMessage != nil {
			msg = ": " + *resp.ErrorMessage
		}
		return fmt.Errorf("cluster unregister %d: %w%s", id, err, msg)
	}
	fmt.Fprintf(out, "broker %d unregistered\n", id)
	return nil
}
